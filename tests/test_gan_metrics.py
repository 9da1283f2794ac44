"""The sample-quality numbers `dlx train-gan` reports, on inputs with known answers."""

import jax
import numpy as np
import pytest

from dlx.metrics.gan import (
    class_coverage,
    frechet_distance,
    grid25,
    label_entropy,
    mode_coverage,
    ring8,
    sample_mixture,
    sample_mixture_jax,
)


def test_toy_geometry_matches_pacgan():
    ring, grid = ring8(), grid25()
    assert ring.means.shape == (8, 2) and ring.std == 0.01
    assert np.allclose(np.linalg.norm(ring.means, axis=1), 1.0)
    assert grid.means.shape == (25, 2) and grid.std == 0.05
    assert set(np.unique(grid.means)) == {-4.0, -2.0, 0.0, 2.0, 4.0}


@pytest.mark.parametrize("mixture", [ring8(), grid25()])
def test_real_samples_cover_every_mode_with_high_quality(mixture):
    x = sample_mixture(mixture, 2500, np.random.default_rng(0))
    modes, hq = mode_coverage(x, mixture.means, mixture.std)
    assert modes == len(mixture.means)
    assert hq > 0.98  # 3 sigma in 2-D holds 98.9% of a Gaussian


def test_jax_sampler_matches_the_mixture():
    mix = ring8()
    x = np.asarray(sample_mixture_jax(mix, jax.random.key(0), 2500))
    assert x.shape == (2500, 2)
    assert mode_coverage(x, mix.means, mix.std)[0] == 8


def test_one_mode_and_off_mode_points():
    mix = ring8()
    one = np.repeat(mix.means[:1], 100, axis=0)
    assert mode_coverage(one, mix.means, mix.std) == (1, 1.0)
    # Points halfway between neighbouring modes are near nothing: no mode, no quality.
    mid = (mix.means + np.roll(mix.means, 1, axis=0)) / 2
    assert mode_coverage(mid, mix.means, mix.std) == (0, 0.0)
    # Off-mode points count against quality but do not cover the modes they are near.
    mixed = np.concatenate([mix.means[:3], mix.means[3:] * 1.5])
    modes, hq = mode_coverage(mixed, mix.means, mix.std)
    assert modes == 3 and hq == pytest.approx(3 / 8)


def test_class_coverage_and_entropy_on_known_labels():
    assert class_coverage(np.arange(1000) % 10) == 10
    assert class_coverage(np.full(1000, 3)) == 1
    assert class_coverage(np.array([0, 1, 1, 2]), n_classes=10) == 3
    assert label_entropy(np.arange(1000) % 10) == pytest.approx(np.log(10))
    assert label_entropy(np.full(50, 7)) == pytest.approx(0.0)
    # From probabilities: entropy of the mean prediction, not the mean entropy.
    confident = np.eye(10)[np.arange(100) % 10]
    assert label_entropy(confident) == pytest.approx(np.log(10))
    assert label_entropy(np.full((5, 10), 0.1)) == pytest.approx(np.log(10))


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Shift the mean by 3 along one axis: distance ||mu_a - mu_b||^2 = 9.
    assert frechet_distance(a, a + [3.0, 0, 0, 0]) == pytest.approx(9.0, abs=1e-6)
    # Scale one coordinate's std from 1 to 2: (1 - 2)^2 = 1 more.
    b = rng.standard_normal((20000, 4)) * [2.0, 1, 1, 1]
    assert frechet_distance(rng.standard_normal((20000, 4)), b) == pytest.approx(1.0, abs=0.1)


def test_frechet_distance_survives_singular_covariance():
    rng = np.random.default_rng(1)
    # Fewer samples than features and a dead feature: both covariances are singular.
    a = np.concatenate([rng.standard_normal((20, 40)), np.zeros((20, 1))], 1)
    b = np.concatenate([rng.standard_normal((20, 40)), np.zeros((20, 1))], 1)
    fd = frechet_distance(a, b)
    assert np.isfinite(fd) and fd >= 0


def test_frechet_distance_matches_matrix_square_root_formula():
    import scipy.linalg

    rng = np.random.default_rng(2)
    a = rng.standard_normal((500, 6))
    b = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6)) + 1.0
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    d = a.mean(0) - b.mean(0)
    ref = d @ d + np.trace(ca + cb) - 2 * np.trace(np.real(scipy.linalg.sqrtm(ca @ cb)))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_reverse_kl_is_zero_for_even_modes_and_log_m_for_one():
    from dlx.metrics.gan import reverse_kl

    mix = ring8()
    even = np.repeat(np.asarray(mix.means), 10, axis=0)            # 10 samples on every mode
    assert reverse_kl(even, mix.means, mix.std) == pytest.approx(0.0, abs=1e-12)
    one = np.repeat(np.asarray(mix.means)[:1], 50, axis=0)
    assert reverse_kl(one, mix.means, mix.std) == pytest.approx(np.log(8))
    half = np.repeat(np.asarray(mix.means)[:4], 5, axis=0)          # 4 of 8 modes, evenly
    assert reverse_kl(np.concatenate([half, [[5.0, 5.0]]]), mix.means, mix.std) == pytest.approx(np.log(2))
    assert reverse_kl(np.array([[5.0, 5.0]]), mix.means, mix.std) is None   # no high-quality sample
