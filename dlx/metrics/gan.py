"""GAN sample-quality measures: toy mixtures with mode coverage, and label/feature
statistics for images judged by a classifier.

Pure functions on numpy arrays (JAX arrays are accepted and converted). The toy
geometry and the mode-coverage definition follow VEEGAN / PacGAN so that the numbers
compare with their tables.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Mixture(NamedTuple):
    """An isotropic Gaussian mixture with equal weights."""

    means: np.ndarray  # (M, 2)
    std: float


def ring8(radius: float = 1.0, std: float = 0.01) -> Mixture:
    """8 Gaussians evenly spaced on a circle (PacGAN: radius 1, std 0.01)."""
    angles = 2 * np.pi * np.arange(8) / 8
    return Mixture(radius * np.stack([np.cos(angles), np.sin(angles)], 1), std)


def grid25(spacing: float = 2.0, std: float = 0.05) -> Mixture:
    """25 Gaussians on {-4,-2,0,2,4}^2 (PacGAN: spacing 2, std 0.05)."""
    ticks = spacing * (np.arange(5) - 2.0)
    xs, ys = np.meshgrid(ticks, ticks, indexing="ij")
    return Mixture(np.stack([xs.ravel(), ys.ravel()], 1), std)


def sample_mixture(mixture: Mixture, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points (n, 2) float32: a uniformly chosen mode plus Gaussian noise."""
    modes = rng.integers(0, len(mixture.means), n)
    noise = rng.standard_normal((n, mixture.means.shape[1]))
    return (mixture.means[modes] + mixture.std * noise).astype(np.float32)


def sample_mixture_jax(mixture: Mixture, key, n: int):
    """As sample_mixture, from a JAX key, traceable inside jit/scan/vmap."""
    import jax
    import jax.numpy as jnp

    kmode, knoise = jax.random.split(key)
    means = jnp.asarray(mixture.means, jnp.float32)
    modes = jax.random.randint(kmode, (n,), 0, means.shape[0])
    return means[modes] + mixture.std * jax.random.normal(knoise, (n, means.shape[1]))


def _nearest_modes(samples, means, std: float, n_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(index of each sample's nearest mode, whether it lies within n_sigma std of it)."""
    samples = np.asarray(samples, np.float64)
    means = np.asarray(means, np.float64)
    dist = np.linalg.norm(samples[:, None, :] - means[None, :, :], axis=-1)  # (N, M)
    nearest = dist.argmin(1)
    return nearest, dist[np.arange(len(samples)), nearest] <= n_sigma * std


def mode_coverage(samples, means, std: float, n_sigma: float = 3.0) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples), as VEEGAN / PacGAN define them.

    A sample is high quality when it lies within n_sigma standard deviations of its
    nearest mode; a mode is covered when at least one high-quality sample is nearest to
    it. The papers measure on 2,500 samples.
    """
    nearest, hq = _nearest_modes(samples, means, std, n_sigma)
    covered = np.unique(nearest[hq]).size
    return int(covered), float(hq.mean()) if len(hq) else 0.0


def reverse_kl(samples, means, std: float, n_sigma: float = 3.0) -> float | None:
    """PacGAN's reverse KL, KL(q || uniform): q the distribution over modes of the
    high-quality samples (each assigned to its nearest mode), against the mixture's equal
    weights. 0 when the high-quality samples spread evenly over every mode, log M when they
    all sit on one; None without a high-quality sample."""
    nearest, hq = _nearest_modes(samples, means, std, n_sigma)
    if not hq.any():
        return None
    q = np.bincount(nearest[hq], minlength=len(means)) / hq.sum()
    q = q[q > 0]
    return float(np.sum(q * np.log(q * len(means))))


def class_coverage(labels, n_classes: int = 10) -> int:
    """How many of the n_classes appear at least once among the predicted labels."""
    labels = np.asarray(labels).ravel()
    return int(np.unique(labels[(labels >= 0) & (labels < n_classes)]).size)


def label_entropy(probs_or_labels, n_classes: int = 10) -> float:
    """Entropy (nats) of the mean predicted label distribution; log(10) = 2.30 is uniform.

    Takes class probabilities (N, n_classes) or integer labels (N,).
    """
    x = np.asarray(probs_or_labels)
    if x.ndim == 1:
        p = np.bincount(x.astype(np.int64), minlength=n_classes)[:n_classes].astype(np.float64)
    else:
        p = x.astype(np.float64).sum(0)
    p = p / p.sum()
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    # Symmetric square root; rounding can leave tiny negative eigenvalues, clip them.
    w, v = np.linalg.eigh(cov)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, F) and (M, F).

    ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)). The last trace is
    computed as the sum of square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2),
    which has the same spectrum as S_a S_b but is symmetric: no complex rounding and no
    failure when a covariance is singular (fewer samples than features, dead features).
    """
    a = np.asarray(feats_a, np.float64)
    b = np.asarray(feats_b, np.float64)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    eig = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = a.mean(0) - b.mean(0)
    fd = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean
    return float(max(fd, 0.0))
