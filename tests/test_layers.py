"""dlx's Conv / ConvTranspose / max_pool / linear compute what nnx.Conv / nnx.ConvTranspose /
reduce_window / nnx.Linear compute with the same weights, forward and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dlx.models import layers

TOL = dict(rtol=1e-4, atol=1e-4)


def _pair(ours, stock, x):
    """Copy stock's parameters into ours; return both outputs and the gradients of a
    non-linear loss with respect to the input and both parameters."""
    assert ours.kernel.shape == stock.kernel.shape and ours.bias.shape == stock.bias.shape
    ours.kernel[...] = stock.kernel[...]
    ours.bias[...] = jax.random.normal(jax.random.key(7), stock.bias.shape)
    stock.bias[...] = ours.bias[...]

    @nnx.jit
    def run(m, x):
        def loss(m, x):
            y = m(x)
            return jnp.sum(jnp.sin(y)), y
        (_, y), (g, dx) = nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True)(m, x)
        return y, (g["kernel"][...], g["bias"][...], dx)

    (y, g), (y_ref, g_ref) = run(ours, x), run(stock, x)
    return (y, y_ref), (g, g_ref)


def _check(ours, stock, x):
    (y, y_ref), (g, g_ref) = _pair(ours, stock, x)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, **TOL)
    for a, b, name in zip(g, g_ref, ("kernel", "bias", "input")):
        np.testing.assert_allclose(a, b, err_msg=f"d{name}", **TOL)


CONV_CASES = [
    # (input spatial, in, out, kernel, strides, padding)
    ((9, 8), 1, 4, (3, 3), (1, 1), ((1, 1), (1, 1))),  # few channels: patches @ kernel
    ((8, 8), 8, 5, (3, 3), (1, 1), ((1, 1), (1, 1))),  # stride 1, many channels: lax conv
    ((10, 9), 3, 6, (4, 4), (2, 2), ((1, 1), (1, 1))),  # the DCGAN discriminator's first conv
    ((10, 9), 8, 6, (4, 4), (2, 2), ((1, 1), (1, 1))),  # its second: strided, many channels: lax conv
    ((11, 7), 2, 3, (3, 2), (2, 3), ((0, 2), (1, 0))),  # uneven everything
    ((8, 9), 8, 3, (2, 3), (1, 1), "VALID"),
    ((13,), 3, 4, (5,), (2,), ((2, 1),)),  # 1-D
]


@pytest.mark.parametrize("size, cin, cout, k, s, pad", CONV_CASES)
def test_conv_matches_nnx_conv(size, cin, cout, k, s, pad):
    x = jax.random.normal(jax.random.key(1), (2, *size, cin))
    ours = layers.Conv(cin, cout, k, s, padding=pad, rngs=nnx.Rngs(0))
    stock = nnx.Conv(cin, cout, k, s, padding=pad, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(ours.kernel[...], stock.kernel[...])  # same Rngs, same init
    _check(ours, stock, x)


TRANSPOSE_CASES = [
    ((7, 7), 6, 4, (4, 4), (2, 2), "SAME"),  # the DCGAN generator's layers
    ((5, 4), 2, 3, (3, 2), (3, 2), ((1, 0), (0, 3))),
    ((4, 5), 2, 3, (3, 3), (1, 2), "VALID"),
    ((6,), 3, 2, (4,), (2,), "SAME"),  # 1-D
    ((4,), 2, 2, (2,), (3,), "VALID"),  # kernel shorter than the stride: a phase with no tap
]


@pytest.mark.parametrize("size, cin, cout, k, s, pad", TRANSPOSE_CASES)
def test_conv_transpose_matches_nnx_conv_transpose(size, cin, cout, k, s, pad):
    x = jax.random.normal(jax.random.key(2), (2, *size, cin))
    ours = layers.ConvTranspose(cin, cout, k, s, padding=pad, rngs=nnx.Rngs(0))
    stock = nnx.ConvTranspose(cin, cout, k, s, padding=pad, rngs=nnx.Rngs(0))
    _check(ours, stock, x)


@pytest.mark.parametrize("shape, pads", [((2, 8, 6, 3), None), ((2, 7, 5, 3), ((0, 1), (0, 1))),
                                         ((3, 9, 2), ((0, 1),))])
def test_max_pool_matches_reduce_window(shape, pads):
    x = jax.random.normal(jax.random.key(3), shape)  # continuous: no ties, one argmax per window
    d = len(shape) - 2
    window = (1,) + (2,) * d + (1,)
    padding = ((0, 0),) + (pads or ((0, 0),) * d) + ((0, 0),)

    def ref(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, window, padding)

    def ours(x):
        return layers.max_pool(x, 2, pads)

    np.testing.assert_array_equal(ours(x), ref(x))
    w = jax.random.normal(jax.random.key(4), ref(x).shape)
    np.testing.assert_array_equal(jax.grad(lambda x: jnp.sum(ours(x) * w))(x),
                                  jax.grad(lambda x: jnp.sum(ref(x) * w))(x))


@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 5)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_linear_matches_nnx_linear(shape, use_bias):
    """`linear` (its own kernel gradient: x.T materialised on CPU) is nnx.Linear's function:
    outputs and the gradients of input, kernel and bias, over any leading axes."""
    stock = nnx.Linear(shape[-1], 7, use_bias=use_bias, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), shape)

    def grads(fn):
        def loss(m, x):
            y = fn(m, x)
            return jnp.sum(jnp.sin(y)), y
        (_, y), (g, dx) = nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True)(stock, x)
        return y, jax.tree.leaves(g), dx

    y, g, dx = grads(layers.linear)
    y_ref, g_ref, dx_ref = grads(lambda m, x: m(x))
    np.testing.assert_allclose(y, y_ref, **TOL)
    np.testing.assert_allclose(dx, dx_ref, **TOL)
    assert len(g) == len(g_ref) == (2 if use_bias else 1)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a, b, **TOL)
