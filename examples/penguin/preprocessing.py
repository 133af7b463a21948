"""The penguin pipeline's ``preprocessing_fn`` for the Transform component.

The four measurements are z-scored with the train split's mean and std (a missing
measurement becomes 0, the mean, after scaling); island and sex become vocabulary ids
(a missing sex is out of vocabulary, one extra id); the label, species, becomes its
vocabulary id (most frequent species first).
"""

from __future__ import annotations

import jax.numpy as jnp
from jfx.components import transform as jt

NUMERIC_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL_FEATURES = ["island", "sex"]
LABEL = "species"


def preprocessing_fn(inputs):
    outputs = {}
    for name in NUMERIC_FEATURES:
        outputs[name] = jnp.nan_to_num(jt.scale_to_z_score(inputs[name]), nan=0.0)
    for name in CATEGORICAL_FEATURES:
        outputs[name] = jt.compute_and_apply_vocabulary(inputs[name], num_oov_buckets=1)
    outputs[LABEL] = jt.compute_and_apply_vocabulary(inputs[LABEL])
    return outputs
