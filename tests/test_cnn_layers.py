"""cnn-demo's layer table: shapes traced from an abstract model (no parameter is
initialised to print it), checked against the output-size formula and a concrete model."""

import jax
import pytest
from flax import nnx

from dlx.models.cnn import CNN, layer_table
from dlx.train import init_program, param_count


@pytest.mark.parametrize("in_shape, kw", [
    ((8, 8, 1), dict(channels=(8, 16), kernel=3, stride=1, padding="same", pool="max", pool_size=2, hidden=32)),
    ((40, 1), dict(channels=(4, 8), kernel=5, stride=2, padding="valid", pool="avg", pool_size=2, hidden=16)),
    ((28, 28, 1), dict(channels=(4,), kernel=7, stride=1, padding="valid", pool="none", pool_size=2, hidden=None)),
])
def test_layer_table_of_the_abstract_model_equals_the_concrete_ones(in_shape, kw):
    make = lambda rngs: CNN(in_shape, 10, rngs=rngs, **kw)  # noqa: E731
    abstract = nnx.eval_shape(lambda: make(nnx.Rngs(0)))
    assert all(isinstance(v, jax.ShapeDtypeStruct) for v in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    graphdef, state = init_program(lambda: nnx.split(make(nnx.Rngs(0))))()   # one program, not one per layer
    concrete = nnx.merge(graphdef, state)
    opts = dict(kernel=kw["kernel"], stride=kw["stride"], padding=kw["padding"])
    rows = layer_table(abstract, in_shape, **opts)
    assert rows == layer_table(concrete, in_shape, **opts)
    assert all(r["formula_ok"] for r in rows if "formula" in r)
    assert sum(r["params"] for r in rows) == param_count(nnx.state(concrete, nnx.Param))
    x = jax.ShapeDtypeStruct((2, *in_shape), jax.numpy.float32)
    assert rows[-1]["shape"] == [10] and jax.eval_shape(lambda x: nnx.merge(graphdef, state)(x), x).shape == (2, 10)
