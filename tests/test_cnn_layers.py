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


def test_a_move_shifts_every_pixel_and_fills_the_border_with_background():
    import jax.numpy as jnp
    import numpy as np

    from dlx.tasks.cnn_demo import _shifted

    x = jnp.arange(1, 17, dtype=jnp.float32).reshape(1, 4, 4, 1)
    down_left = np.asarray(_shifted(x, (1, -2)))[0, ..., 0]
    np.testing.assert_array_equal(down_left, [[0, 0, 0, 0], [3, 4, 0, 0], [7, 8, 0, 0], [11, 12, 0, 0]])
    signal = jnp.arange(1, 6, dtype=jnp.float32).reshape(1, 5, 1)
    np.testing.assert_array_equal(np.asarray(_shifted(signal, (2,)))[0, :, 0], [0, 0, 1, 2, 3])


def test_invariance_counts_the_predictions_a_move_or_turn_leaves_alone(in_tmp):
    """A model that ignores its input keeps every prediction; cnn-demo reports the three
    fractions, and a 1-pixel move keeps more than a 2-pixel one."""
    import jax.numpy as jnp
    import numpy as np

    from dlx.tasks.cnn_demo import invariance
    from tests.helpers import dlx

    class Constant(nnx.Module):
        def __call__(self, x):
            return jnp.zeros((x.shape[0], 10)).at[:, 3].set(1.0)

    graphdef, params = nnx.split(Constant())
    x = jnp.asarray(np.random.default_rng(0).random((50, 8, 8, 1)), jnp.float32)
    assert invariance(graphdef, params, x) == {"shift_agreement_1px": 1.0, "shift_agreement_2px": 1.0,
                                               "rotation_agreement_15deg": 1.0}
    r = dlx("cnn-demo", "--steps", "200", "--no-mlp-baseline", "--feature-maps", "0", "--channels", "4,8",
            "--hidden", "16", "--json", "--out", "run")
    s = r.summary
    assert 0 <= s["shift_agreement_2px"] < s["shift_agreement_1px"] <= 1 and 0 <= s["rotation_agreement_15deg"] <= 1
