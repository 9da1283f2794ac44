"""The gradient probe: per-layer MLP gradients, d loss / d h_t through time, clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from dlx.metrics.grads import clip_stats, fit_decay, layer_rows, mlp_probe, verdict, verdict_code
from dlx.models.mlp import DeepMLP

probe = jax.jit(mlp_probe, static_argnums=0)


# The probes on real nets (verdicts, the Glorot and He anchors, sweeps over activations
# through lax.switch, the linear / tanh / LSTM recurrences) are tested through the command
# in tests/test_grad_probe.py, where their compiled programs are shared between calls.


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


def test_verdict_thresholds_and_non_finite_ratios():
    ratios = [1.0, 0.011, 0.009, 99.0, 101.0, float("nan"), float("inf")]
    expected = ["healthy", "healthy", "vanishing", "healthy", "exploding", "exploding", "exploding"]
    assert [verdict(r) for r in ratios] == expected
    np.testing.assert_array_equal(verdict_code(jnp.asarray(ratios)), [0, 0, 1, 0, 2, 2, 2])


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
