"""The analyzers a ``preprocessing_fn`` uses, and the fitted transform's loader.

Write ``preprocessing_fn(inputs) -> outputs`` in ``jax.numpy`` with these analyzers and
give it to the :class:`~jfx.components.Transform` component::

    import jax.numpy as jnp
    from jfx.components import transform as jt

    def preprocessing_fn(inputs):
        return {
            "bill_length_mm": jnp.nan_to_num(jt.scale_to_z_score(inputs["bill_length_mm"])),
            "island": jt.compute_and_apply_vocabulary(inputs["island"], num_oov_buckets=1),
        }

``inputs`` holds numbers as ``float32`` (missing = NaN; analyzers ignore NaN) and string
columns, which only :func:`compute_and_apply_vocabulary` and :func:`hash_strings` accept.
:func:`load_transform` reads a TransformGraph back; :func:`export_with_transform`
exports a model together with the transform.
"""

from jfx.components._analyzers import (
    bucketize,
    compute_and_apply_vocabulary,
    hash_strings,
    scale_to_0_1,
    scale_to_z_score,
)
from jfx.components._transform_graph import (
    LoadedTransform,
    export_with_transform,
    load_transform,
)

__all__ = [
    "LoadedTransform",
    "bucketize",
    "compute_and_apply_vocabulary",
    "export_with_transform",
    "hash_strings",
    "load_transform",
    "scale_to_0_1",
    "scale_to_z_score",
]
