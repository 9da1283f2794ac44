"""GAN generators and discriminators: DCGAN for images, MLPs for 2-D toy mixtures.

Discriminators return logits; the losses work on logits (softplus form) for numerical
stability, and `probability` gives D(x) in (0, 1) when a person wants to read it.
Images are NHWC and scaled to [-1, 1], matching the generator's tanh. The convolutions are
dlx.models.layers' (nnx.Conv's parameters and function, fast on XLA:CPU).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from dlx.models.layers import Conv, ConvTranspose


def probability(logits: jax.Array) -> jax.Array:
    """D(x) as a probability: sigmoid of the discriminator's logits."""
    return jax.nn.sigmoid(logits)


def _base_size(image_size: int) -> int:
    # Two stride-2 stages: 28 -> 14 -> 7, 8 -> 4 -> 2.
    if image_size % 4:
        raise ValueError(f"image side {image_size} is not divisible by 4")
    return image_size // 4


class Generator(nnx.Module):
    """DCGAN generator: z -> dense -> reshape -> BN -> ReLU -> 2 x (convT 4x4/2) -> tanh.

    With the defaults and image_shape (28, 28, 1) this is the benchmark generator:
    z(64) -> dense 7x7x128 -> BN per channel -> ReLU -> convT to 64 -> BN -> ReLU -> convT to 1.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (28, 28, 1),
        latent_dim: int = 64,
        width: int = 64,
        *,
        rngs: nnx.Rngs,
    ):
        height, _, channels = image_shape
        self.base = _base_size(height)
        self.width = width
        self.dense = nnx.Linear(latent_dim, self.base * self.base * 2 * width, rngs=rngs)
        # momentum 0.9 = PyTorch's 0.1: running stats follow the fast-moving generator. Per
        # channel of the reshaped projection, as DCGAN (and torch_ref.py's BatchNorm2d after
        # its Unflatten) normalise it, not per feature of the flat dense output.
        self.bn0 = nnx.BatchNorm(2 * width, momentum=0.9, rngs=rngs)
        self.up1 = ConvTranspose(2 * width, width, (4, 4), (2, 2), rngs=rngs)
        self.bn1 = nnx.BatchNorm(width, momentum=0.9, rngs=rngs)
        self.up2 = ConvTranspose(width, channels, (4, 4), (2, 2), rngs=rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        h = self.dense(z).reshape(z.shape[0], self.base, self.base, 2 * self.width)
        h = jax.nn.relu(self.bn0(h))  # (B, base, base, 2w)
        h = jax.nn.relu(self.bn1(self.up1(h)))  # (B, 2*base, 2*base, w)
        return jnp.tanh(self.up2(h))  # (B, H, W, C)


class Discriminator(nnx.Module):
    """DCGAN discriminator: 2 x (conv 4x4/2 -> LeakyReLU 0.2) -> flatten -> dense logit."""

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (28, 28, 1),
        width: int = 64,
        *,
        rngs: nnx.Rngs,
    ):
        height, _, channels = image_shape
        base = _base_size(height)
        self.conv1 = Conv(channels, width, (4, 4), (2, 2), rngs=rngs)
        self.conv2 = Conv(width, 2 * width, (4, 4), (2, 2), rngs=rngs)
        self.out = nnx.Linear(base * base * 2 * width, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.leaky_relu(self.conv1(x), 0.2)  # (B, H/2, W/2, w)
        h = jax.nn.leaky_relu(self.conv2(h), 0.2)  # (B, H/4, W/4, 2w)
        return self.out(h.reshape(x.shape[0], -1))[:, 0]  # (B,) logits

    def probability(self, x: jax.Array) -> jax.Array:
        return probability(self(x))


class MLPGenerator(nnx.Module):
    """z -> depth x (dense width -> ReLU) -> dense out_dim, for 2-D toy mixtures."""

    def __init__(
        self,
        latent_dim: int = 2,
        width: int = 128,
        depth: int = 2,
        out_dim: int = 2,
        *,
        rngs: nnx.Rngs,
    ):
        sizes = [latent_dim] + [width] * depth
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
        )
        self.out = nnx.Linear(sizes[-1], out_dim, rngs=rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        h = z
        for layer in self.hidden:
            h = jax.nn.relu(layer(h))
        return self.out(h)  # (B, out_dim)


class MLPDiscriminator(nnx.Module):
    """depth x (dense width -> LeakyReLU 0.2) -> dense logit, on `pack` samples at once.

    With pack K (PacGAN) the input (B, dim) is read as B/K groups of K samples, each
    group concatenated into one (K*dim,) vector, and one logit comes out per group: a
    collapsed generator's groups look too alike to pass as real ones.
    """

    def __init__(
        self,
        in_dim: int = 2,
        width: int = 128,
        depth: int = 2,
        pack: int = 1,
        *,
        rngs: nnx.Rngs,
    ):
        self.pack = pack
        sizes = [in_dim * pack] + [width] * depth
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
        )
        self.out = nnx.Linear(sizes[-1], 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[0] % self.pack:
            raise ValueError(f"batch {x.shape[0]} is not a multiple of pack {self.pack}")
        h = x.reshape(x.shape[0] // self.pack, -1)  # (B/K, K*dim)
        for layer in self.hidden:
            h = jax.nn.leaky_relu(layer(h), 0.2)
        return self.out(h)[:, 0]  # (B/K,) logits

    def probability(self, x: jax.Array) -> jax.Array:
        return probability(self(x))
