import jax.numpy as jnp
import pytest
from flax import nnx

from jfx.core import Categorical, DNNClassifier, DNNRegressor, Numeric, WideAndDeep, feature_spec_from_json, \
    feature_spec_to_json
from jfx.errors import InvalidArgumentError

FEATURES = {"x": jnp.ones((5, 3)), "s": jnp.ones((5,)), "c": jnp.array([0, 1, 2, 3, 4])}


@pytest.mark.parametrize("embedding_dim,width", [(None, 4 + 5), (2, 4 + 2)])
def test_classifier_shapes_with_one_hot_or_embedding(embedding_dim, width):
    spec = {"x": Numeric(3), "s": Numeric(), "c": Categorical(5, embedding_dim)}
    model = DNNClassifier(spec, hidden_units=(8, 4), n_classes=3, rngs=nnx.Rngs(0))
    assert model.inputs.width == width
    assert model(FEATURES).shape == (5, 3)
    has_embed = any("embedding" in str(p) for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param)))
    assert has_embed == (embedding_dim is not None)


def test_regressor_and_wide_and_deep_shapes_and_dtypes():
    reg = DNNRegressor({"s": Numeric()}, hidden_units=(4,), dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    out = reg(FEATURES)
    assert out.shape == (5,) and out.dtype == jnp.bfloat16
    assert reg.head.kernel[...].dtype == jnp.float32
    wd = WideAndDeep({"c": Categorical(5, 3)}, {"x": Numeric(3)}, hidden_units=(4,), n_classes=2,
                     dropout=0.5, rngs=nnx.Rngs(0))
    assert wd(FEATURES).shape == (5, 2)
    wdr = WideAndDeep({"c": Categorical(5)}, {"x": Numeric(3)}, hidden_units=(4,), n_classes=None, rngs=nnx.Rngs(1))
    assert wdr(FEATURES).shape == (5,)


def test_dropout_is_off_in_eval_mode():
    model = DNNClassifier({"x": Numeric(3)}, hidden_units=(16,), dropout=0.5, rngs=nnx.Rngs(0))
    model.eval()
    assert jnp.array_equal(model(FEATURES), model(FEATURES))
    model.train()
    assert not jnp.array_equal(model(FEATURES), model(FEATURES))


def test_spec_errors_and_json_round_trip():
    spec = {"x": Numeric(3), "c": Categorical(5, 2)}
    assert feature_spec_from_json(feature_spec_to_json(spec)) == spec
    with pytest.raises(InvalidArgumentError):
        DNNClassifier({}, rngs=nnx.Rngs(0))
    with pytest.raises(InvalidArgumentError):
        DNNClassifier({"x": "float"}, rngs=nnx.Rngs(0))
    with pytest.raises(InvalidArgumentError, match="'c' is missing"):
        DNNClassifier(spec, hidden_units=(2,), rngs=nnx.Rngs(0))({"x": jnp.ones((2, 3))})
