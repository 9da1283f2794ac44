"""The gradient probe: per-layer MLP gradients, d loss / d h_t through time, clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from dlx.metrics.grads import (
    clip_stats,
    fit_decay,
    layer_rows,
    mlp_probe,
    mlp_probe_sweep,
    probe_cell,
    rnn_probe,
    rnn_probe_sweep,
    stack_states,
    verdict,
    verdict_code,
)
from dlx.models.mlp import DeepMLP, activation_id

probe = jax.jit(mlp_probe, static_argnums=0)


@pytest.fixture(scope="module")
def digits():
    # The command's default batch: the first 256 training digits, flattened, in [0, 1].
    from dlx.data import digits

    data = digits()
    return jnp.asarray(data.x_train[:256].reshape(256, -1)), jnp.asarray(data.y_train[:256])


sweep = jax.jit(mlp_probe_sweep, static_argnums=0)


def _sweep(x, y, depth, activation, inits_and_scales):
    """One vmapped probe over nets that differ only in init and scale; arrays gain axis N."""
    models = [
        DeepMLP(64, 64, depth, 10, activation=activation, init=i, init_scale=s, rngs=nnx.Rngs(0))
        for i, s in inits_and_scales
    ]
    splits = [nnx.split(m, nnx.Param) for m in models]
    return splits, sweep(splits[0][0], stack_states([p for _, p in splits]), x, y)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_per_layer_gradients_match_hand_written_backprop(activation):
    model = DeepMLP(4, 3, 2, 3, activation=activation, init="glorot", init_scale=1.5, rngs=nnx.Rngs(1))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    y = np.array([0, 2, 1, 1, 0])
    result = probe(*nnx.split(model, nnx.Param), jnp.asarray(x), jnp.asarray(y))

    f = np.tanh if activation == "tanh" else lambda z: 1 / (1 + np.exp(-z))
    df = (lambda a: 1 - a**2) if activation == "tanh" else (lambda a: a * (1 - a))
    Ws = [np.asarray(layer.kernel[...], np.float64) for layer in model.hidden]
    Wo = np.asarray(model.readout.kernel[...], np.float64)
    acts = [x.astype(np.float64)]
    for W in Ws:  # biases start at zero
        acts.append(f(acts[-1] @ W))
    logits = acts[-1] @ Wo
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_logits = (p - np.eye(3)[y]) / len(y)  # mean cross-entropy
    d_a = d_logits @ Wo.T
    dz_norms, dW_norms = [], []
    for layer in reversed(range(2)):
        dz = d_a * df(acts[layer + 1])
        dz_norms.insert(0, np.linalg.norm(dz))
        dW_norms.insert(0, np.linalg.norm(acts[layer].T @ dz))
        d_a = dz @ Ws[layer].T

    np.testing.assert_allclose(result["preact_grad_norm"], dz_norms, rtol=1e-5)
    np.testing.assert_allclose(result["weight_grad_norm"], dW_norms, rtol=1e-5)
    np.testing.assert_allclose(result["act_mean"], [a.mean() for a in acts[1:]], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result["act_std"], [a.std() for a in acts[1:]], rtol=1e-5)
    np.testing.assert_allclose(result["ratio"], dz_norms[0] / dz_norms[1], rtol=1e-5)
    rows = layer_rows(result)
    assert [r["layer"] for r in rows] == [1, 2]
    assert rows[0]["preact_grad_norm"] == pytest.approx(dz_norms[0], rel=1e-5)


def test_verdicts_sigmoid_vanishes_relu_he_healthy_large_init_explodes(digits):
    _, sigmoid = _sweep(*digits, 10, "sigmoid", [("glorot", 1.0)])
    # Twice the He scale doubles the backward gain of every layer: ~2**9 over 10 layers.
    # At 1e4 times He the activations overflow float32: the probe must not call that healthy.
    _, relu = _sweep(*digits, 10, "relu", [("he", 1.0), ("he", 2.0), ("he", 1e4)])
    assert verdict(sigmoid["ratio"][0]) == "vanishing"
    assert [verdict(r) for r in relu["ratio"]] == ["healthy", "exploding", "exploding"]
    assert np.isnan(relu["ratio"][2])
    np.testing.assert_array_equal(verdict_code(relu["ratio"]), [0, 2, 2])


def test_sweep_over_activations_matches_single_probes(digits):
    x, y = digits
    models = [DeepMLP(64, 64, 3, 10, activation=a, init="glorot", rngs=nnx.Rngs(0)) for a in ("tanh", "relu")]
    splits = [nnx.split(m, nnx.Param) for m in models]
    ids = jnp.array([activation_id("tanh"), activation_id("relu")])
    both = sweep(splits[0][0], stack_states([p for _, p in splits]), x, y, ids)
    for k, split in enumerate(splits):
        single = probe(*split, x, y)
        np.testing.assert_allclose(both["preact_grad_norm"][k], single["preact_grad_norm"], rtol=1e-5)
        np.testing.assert_allclose(both["saturation"][k], single["saturation"])


def test_anchor_tanh_standard_init_shrinks_toward_input_glorot_keeps_level(digits):
    # Glorot & Bengio 2010, figure 7: back-propagated gradients, i.e. dL/dz per layer.
    _, both = _sweep(*digits, 10, "tanh", [("standard", 1.0), ("glorot", 1.0)])
    standard, glorot = np.asarray(both["preact_grad_norm"])
    assert np.all(np.diff(standard) > 0)  # smaller at every step toward the input
    assert standard[0] / standard[-1] < 2e-2  # 7e-3 measured
    assert glorot.max() / glorot.min() < 5  # 2.1 measured


def test_anchor_30_layer_relu_glorot_shrinks_activations_he_keeps_them(digits):
    # He et al. 2015, figure 3: at layer 30 Glorot's halving of the variance per layer
    # has cost a factor ~2**-15 in std.
    _, both = _sweep(*digits, 30, "relu", [("glorot", 1.0), ("he", 1.0)])
    glorot_std, he_std = np.asarray(both["act_std"][:, -1])
    # At width 64 the std at layer 30 still drifts with the seed (0.05 to 0.4 for He over
    # seeds 0-4, 2e-6 to 2e-5 for Glorot), hence the wide bands.
    assert glorot_std < 1e-4
    assert 2e-2 < he_std < 10
    assert [verdict(r) for r in both["ratio"]] == ["vanishing", "healthy"]


def test_linear_rnn_decays_by_its_spectral_radius():
    # Orthogonal W scaled to rho: every step back multiplies ||dL/dh_t|| by exactly rho.
    rhos = np.array([0.5, 0.9, 1.1])
    cells = [probe_cell("linear", 3, 8, spectral_radius=r, rngs=nnx.Rngs(0)) for r in rhos]
    splits = [nnx.split(cell, nnx.Param) for cell in cells]
    kx, kr = jax.random.split(jax.random.key(0))
    xs, readout = jax.random.normal(kx, (4, 20, 3)), jax.random.normal(kr, (4, 8))
    stacked = stack_states([p for _, p in splits])
    result = jax.jit(rnn_probe_sweep, static_argnums=0)(splits[0][0], stacked, xs, readout)
    assert result["grad_norms"].shape == (3, 20)
    np.testing.assert_allclose(result["decay_per_step"], rhos, rtol=1e-3)
    np.testing.assert_allclose(result["ratio"], rhos**19, rtol=1e-3)
    # Over 19 steps back: 2e-6, 0.14, 6.1.
    assert [verdict(r) for r in result["ratio"]] == ["vanishing", "healthy", "healthy"]


def test_tanh_rnn_vanishes_faster_than_lstm():
    kx, kr = jax.random.split(jax.random.key(0))
    xs, readout = jax.random.normal(kx, (8, 30, 4)), jax.random.normal(kr, (8, 16))
    decay = {}
    for kind in ("tanh", "lstm"):
        cell = probe_cell(kind, 4, 16, spectral_radius=0.9, rngs=nnx.Rngs(0))
        result = jax.jit(rnn_probe, static_argnums=0)(*nnx.split(cell, nnx.Param), xs, readout)
        decay[kind] = float(result["decay_per_step"])
    assert decay["tanh"] < 0.9  # |tanh'| <= 1 can only shrink the linear factor rho
    assert decay["lstm"] > decay["tanh"]


def test_fit_decay_skips_underflowed_steps():
    norms = jnp.asarray(0.7 ** jnp.arange(30.0)[::-1])
    assert float(fit_decay(norms)) == pytest.approx(0.7, rel=1e-4)
    assert float(fit_decay(norms.at[:5].set(0.0))) == pytest.approx(0.7, rel=1e-4)
    assert float(fit_decay(jnp.zeros(10).at[-1].set(1.0))) == 0.0


@pytest.mark.parametrize("theta", [1e-3, 0.5, 10.0])
def test_clipping_never_exceeds_theta(theta):
    keys = jax.random.split(jax.random.key(0), 3)
    grads = {"w": 100 * jax.random.normal(keys[0], (7, 5)), "b": [jax.random.normal(keys[1], (5,))]}
    clipped, stats = jax.jit(clip_stats)(grads, theta)
    assert bool(stats["clipped"])
    assert float(stats["global_norm"]) == pytest.approx(float(optax.tree.norm(grads)))
    assert float(optax.tree.norm(clipped)) <= theta * (1 + 1e-6)
    assert float(stats["clipped_norm"]) == pytest.approx(theta, rel=1e-5)

    small = jax.tree.map(lambda g: g * (0.5 * theta / stats["global_norm"]), grads)
    unclipped, small_stats = clip_stats(small, theta)
    assert not bool(small_stats["clipped"])
    jax.tree.map(np.testing.assert_allclose, unclipped, small)
