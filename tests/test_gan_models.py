"""Shapes and ranges of the GAN networks that `dlx train-gan` builds."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from dlx.models.gan import (
    Discriminator,
    Generator,
    MLPDiscriminator,
    MLPGenerator,
    probability,
)


@pytest.mark.parametrize("width, torch_params", [(64, 678_786), (32, 273_858)])
def test_dcgan_has_the_reference_models_parameters(width, torch_params):
    # ../shared/bench/torch_ref.py's dcgan (G and D) at --width 64 and 32, counted in PyTorch.
    # G's first batch norm is per channel of the reshaped projection, as there (per feature
    # of the flat dense output it had 12,288 parameters more at width 64).
    from dlx.train import param_count

    g, d = nnx.eval_shape(lambda: (Generator(width=width, rngs=nnx.Rngs(0)), Discriminator(width=width, rngs=nnx.Rngs(0))))
    assert param_count([nnx.state(g, nnx.Param), nnx.state(d, nnx.Param)]) == torch_params


def test_dcgan_shapes_and_range():
    @jax.jit  # built and run in one compiled program: eager construction costs seconds
    def run(key):
        g = Generator((8, 8, 1), latent_dim=16, width=8, rngs=nnx.Rngs(0))
        d = Discriminator((8, 8, 1), width=8, rngs=nnx.Rngs(1))
        x = g(jax.random.normal(key, (5, 16)))
        return x, d(x), d.probability(x)

    x, logits, p = run(jax.random.key(0))
    assert x.shape == (5, 8, 8, 1)
    assert jnp.all(jnp.abs(x) <= 1.0)  # tanh, to match data in [-1, 1]
    assert logits.shape == (5,)
    assert jnp.all((p > 0) & (p < 1))


def test_dcgan_28x28_shapes():
    def run(z):  # traced only: shapes without compiling or running
        g = Generator((28, 28, 1), latent_dim=16, width=8, rngs=nnx.Rngs(0))
        d = Discriminator((28, 28, 1), width=8, rngs=nnx.Rngs(1))
        x = g(z)
        return x, d(x)

    x, logits = jax.eval_shape(run, jax.ShapeDtypeStruct((5, 16), jnp.float32))
    assert x.shape == (5, 28, 28, 1)
    assert logits.shape == (5,)


def test_benchmark_shapes_by_default():
    # The 28x28 benchmark: z(64) -> dense 7x7x128 -> convT to 64 -> convT to 1.
    g = nnx.eval_shape(lambda: Generator(rngs=nnx.Rngs(0)))
    d = nnx.eval_shape(lambda: Discriminator(rngs=nnx.Rngs(0)))
    assert g.dense.kernel.shape == (64, 7 * 7 * 128)
    assert g.up1.kernel.shape == (4, 4, 128, 64)
    assert g.up2.kernel.shape == (4, 4, 64, 1)
    assert d.conv1.kernel.shape == (4, 4, 1, 64)
    assert d.conv2.kernel.shape == (4, 4, 64, 128)
    assert d.out.kernel.shape == (7 * 7 * 128, 1)


def test_generator_batch_norm_train_vs_eval():
    @jax.jit  # one compiled program rather than dozens of eager conv ops
    def run(z):
        g = Generator((8, 8, 1), latent_dim=4, width=4, rngs=nnx.Rngs(0))
        before = g.bn0.mean[...]
        g.train()
        g(z)
        trained = g.bn0.mean[...]
        g.eval()
        a, b = g(z), g(z[:1])
        return before, trained, g.bn0.mean[...], a, b

    before, trained, after, a, b = run(jax.random.normal(jax.random.key(1), (6, 4)))
    assert not jnp.allclose(trained, before)  # training updates running stats
    assert jnp.allclose(after, trained)  # eval leaves them alone
    assert jnp.allclose(a[:1], b, atol=1e-5)  # and a sample does not depend on its batch


def test_mlp_shapes_and_packing():
    g = MLPGenerator(latent_dim=3, width=16, depth=2, rngs=nnx.Rngs(0))
    x = g(jnp.ones((12, 3)))
    assert x.shape == (12, 2)
    d = MLPDiscriminator(width=16, depth=3, pack=3, rngs=nnx.Rngs(0))
    assert d(x).shape == (4,)  # one logit per group of 3 samples
    p = d.probability(x)
    assert jnp.all((p > 0) & (p < 1))
    with pytest.raises(ValueError, match="multiple of pack"):
        d(x[:10])


def test_probability_is_sigmoid_of_logits():
    logits = jnp.array([-50.0, 0.0, 50.0])
    assert jnp.allclose(probability(logits), jax.nn.sigmoid(logits))
