"""Gradient measurements: per-layer gradients of a deep MLP, d loss / d h_t through time
in a recurrent net, and global-norm clipping statistics.

Every function here is pure and jittable; the MLP and RNN probes are also vmappable over
a stack of parameter sets (`stack_states`). Only `verdict` and `layer_rows` are host-side:
they turn arrays into strings and dicts for the output layer.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dlx.models.cells import CELLS, RNNCell

# Verdict on `ratio` = ||dL/dz|| at the first hidden layer / at the last hidden layer (z the
# pre-activations, i.e. the back-propagated gradient of Glorot & Bengio 2010). On the digits
# batch (width 64, seeds 0-4) the nets known to train keep it within a few times 1: tanh +
# glorot 0.44-0.64 at depth 5-10, relu + he 0.33-1.2 at depth 10-30, linear 0.9-1.3. The
# nets known not to fall far below: sigmoid at depth 10 2e-8 to 4e-5 whatever the init,
# tanh + standard at depth 10 0.006-0.008, relu + glorot at depth 30 1e-5 to 5e-5. A factor
# of 100 either way is the line: a layer whose gradient is 100 times smaller than another's
# has in effect stopped learning. decay_per_layer is reported beside it, not voted on: on
# shallow nets a steep per-layer factor compounds to little (tanh + standard at depth 5
# decays 0.56 per layer and still trains).
VANISHING_BELOW = 1e-2
EXPLODING_ABOVE = 1e2
VERDICTS = ("healthy", "vanishing", "exploding")


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    # logits (B, C), labels (B,) int -> mean over the batch
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def stack_states(states):
    """Stack same-shaped parameter states along a new leading axis, for jax.vmap."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def verdict_code(ratio: jax.Array) -> jax.Array:
    """0 healthy, 1 vanishing, 2 exploding (index into VERDICTS); jittable. A NaN ratio
    (the probes' mark of a non-finite loss or gradient) is exploding."""
    code = jnp.where(ratio < VANISHING_BELOW, 1, 0)
    return jnp.where((ratio > EXPLODING_ABOVE) | jnp.isnan(ratio), 2, code)


def _finite_ratio(first: jax.Array, last: jax.Array, *finite_checks: jax.Array) -> jax.Array:
    # first / last, or NaN when anything it rests on has overflowed (a diverged net can give
    # inf / inf, or 0 / inf, which would otherwise read as healthy or vanishing).
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(c)) for c in finite_checks]))
    return jnp.where(finite, first / jnp.maximum(last, jnp.finfo(last.dtype).tiny), jnp.nan)


def verdict(ratio) -> str:
    """The verdict for a (host) ratio; NaN or inf, from a diverged net, is exploding."""
    ratio = float(ratio)
    if not np.isfinite(ratio):
        return "exploding"
    if ratio < VANISHING_BELOW:
        return "vanishing"
    return "exploding" if ratio > EXPLODING_ABOVE else "healthy"


def mlp_probe(graphdef, params, x: jax.Array, y: jax.Array, activation=None) -> dict:
    """Per-layer gradient and activation statistics of a DeepMLP on one batch.

    graphdef, params: from `nnx.split(model, nnx.Param)` (the model holds nothing else).
    x (B, F), y (B,) int labels. activation: override by name or traced index (see
    `dlx.models.mlp.activate`), so that a sweep over activations can be one vmap.

    Returns arrays; the per-layer ones are (depth,), layer 1 nearest the input:
      weight_grad_norm   ||dL/dW_l|| (Frobenius, kernel only)
      preact_grad_norm   ||dL/dz_l|| over the whole (B, width) batch, taken as the gradient
                         with respect to a zero perturbation added to z_l
      act_mean, act_std  of the activations f(z_l) over batch and units
      saturation         fraction of units with |f'(z_l)| < 5% of the largest slope
    and the scalars loss, ratio (preact_grad_norm first / last), weight_ratio (the same
    for weight_grad_norm), decay_per_layer (ratio ** (1 / (depth - 1)): the factor the
    back-propagated gradient is multiplied by per layer, going toward the input) and
    verdict_code.
    """
    model = nnx.merge(graphdef, params)
    depth = len(model.hidden)
    zeros = [jnp.zeros((x.shape[0], layer.out_features), x.dtype) for layer in model.hidden]

    def loss_fn(params, perturbations):
        logits, trace = nnx.merge(graphdef, params)(
            x, perturbations=perturbations, activation=activation, return_trace=True
        )
        return cross_entropy(logits, y), trace

    (loss, trace), (param_grads, preact_grads) = jax.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True
    )(params, zeros)

    kernel_grads = [param_grads["hidden"][i]["kernel"][...] for i in range(depth)]
    weight_grad_norm = jnp.stack([jnp.linalg.norm(g) for g in kernel_grads])
    preact_grad_norm = jnp.stack([jnp.linalg.norm(g) for g in preact_grads])
    post = jnp.stack(trace["post"])  # (depth, B, width)
    saturated = jnp.stack(trace["saturated"])
    ratio = _finite_ratio(preact_grad_norm[0], preact_grad_norm[-1], loss, preact_grad_norm)
    return {
        "loss": loss,
        "weight_grad_norm": weight_grad_norm,
        "preact_grad_norm": preact_grad_norm,
        "act_mean": post.mean(axis=(1, 2)),
        "act_std": post.std(axis=(1, 2)),
        "saturation": saturated.mean(axis=(1, 2)),
        "ratio": ratio,
        "weight_ratio": _finite_ratio(weight_grad_norm[0], weight_grad_norm[-1], loss, weight_grad_norm),
        "decay_per_layer": ratio ** (1.0 / max(depth - 1, 1)),
        "verdict_code": verdict_code(ratio),
    }


def mlp_probe_sweep(graphdef, stacked_params, x, y, activation_ids: jax.Array | None = None) -> dict:
    """mlp_probe over a stack of same-shaped parameter sets (leading axis N); every
    returned array gains the leading axis N. activation_ids (N,) int gives each set its
    own activation (every activation evaluated, one selected); None keeps graphdef's for
    all, which compiles to less code."""
    probe = partial(mlp_probe, graphdef)
    if activation_ids is None:
        return jax.vmap(probe, in_axes=(0, None, None))(stacked_params, x, y)
    return jax.vmap(probe, in_axes=(0, None, None, 0))(stacked_params, x, y, activation_ids)


LAYER_FIELDS = ("weight_grad_norm", "preact_grad_norm", "act_mean", "act_std", "saturation")


def layer_rows(result: dict) -> list[dict]:
    """The summary's `layers` field: one dict per hidden layer (host floats), layer 1 first."""
    host = {k: np.asarray(result[k]) for k in LAYER_FIELDS}
    depth = len(host["weight_grad_norm"])
    return [{"layer": i + 1, **{k: float(host[k][i]) for k in LAYER_FIELDS}} for i in range(depth)]


def clip_stats(grads, theta: float):
    """Clip `grads` to global norm `theta` with optax; return (clipped grads, stats).

    stats: global_norm (before), clipped (bool: the norm exceeded theta, so clipping
    fired), clipped_norm (after; never above theta up to float rounding).
    """
    clip = optax.clip_by_global_norm(theta)
    clipped, _ = clip.update(grads, clip.init(grads))
    norm = optax.tree.norm(grads)
    return clipped, {"global_norm": norm, "clipped": norm > theta, "clipped_norm": optax.tree.norm(clipped)}


# --- recurrent nets: d loss / d h_t through time ---


def _linear_pointwise(xp, hw, carry):
    h = xp + hw
    return (h,), h


class LinearRNNCell(RNNCell):
    """h_t = x_t U + h_{t-1} W + b: the RNN without its nonlinearity, whose backward pass
    is exactly h_{t-1}'s cotangent = h_t's cotangent @ W.T (the reference for the probe)."""

    _pointwise = staticmethod(_linear_pointwise)


def probe_cell(kind: str, in_features: int, hidden: int, *, spectral_radius: float, rngs: nnx.Rngs):
    """A cell for the RNN probe, its recurrent weights rescaled to `spectral_radius`.

    kind: "tanh" or "relu" (RNNCell), "linear" (LinearRNNCell), "gru" or "lstm". For the
    gated cells every gate's (H, H) block of W is rescaled to the same radius.
    """
    if kind in ("tanh", "relu"):
        cell = RNNCell(in_features, hidden, activation=kind, rngs=rngs)
    elif kind == "linear":
        cell = LinearRNNCell(in_features, hidden, rngs=rngs)
    elif kind in ("gru", "lstm"):
        cell = CELLS[kind](in_features, hidden, rngs=rngs)
    else:
        raise ValueError(f"unknown probe cell {kind!r}; choose from tanh, relu, linear, gru, lstm")
    cell.W[...] = jnp.asarray(with_spectral_radius(np.asarray(cell.W[...]), spectral_radius))
    return cell


def with_spectral_radius(W: np.ndarray, rho: float) -> np.ndarray:
    """W (H, G*H) with each (H, H) gate block scaled to spectral radius rho (largest
    |eigenvalue|). Host-side numpy: eig has no GPU kernel, and this runs once at setup."""
    hidden = W.shape[0]
    blocks = np.split(W, W.shape[1] // hidden, axis=1)
    return np.concatenate([b * (rho / np.max(np.abs(np.linalg.eigvals(b)))) for b in blocks], axis=1)


def fit_decay(grad_norms: jax.Array) -> jax.Array:
    """Per-step factor of ||dL/dh_t|| going backward in time: exp(-slope) of the least-squares
    line through log ||dL/dh_t|| against t. Below 1 the gradient vanishes toward t = 0,
    above 1 it explodes. Steps whose norm underflowed (below the smallest normal float)
    are left out of the fit; with fewer than two left the factor is 0."""
    t = jnp.arange(grad_norms.shape[0], dtype=grad_norms.dtype)
    tiny = jnp.finfo(grad_norms.dtype).tiny
    w = (grad_norms >= tiny).astype(grad_norms.dtype)
    log_norm = jnp.log(jnp.maximum(grad_norms, tiny))
    n = jnp.maximum(w.sum(), 1.0)
    t_mean, l_mean = (w * t).sum() / n, (w * log_norm).sum() / n
    var = (w * (t - t_mean) ** 2).sum()
    slope = (w * (t - t_mean) * (log_norm - l_mean)).sum() / jnp.maximum(var, tiny)
    return jnp.where(w.sum() >= 2, jnp.exp(-slope), 0.0)


def rnn_probe(graphdef, params, xs: jax.Array, readout: jax.Array) -> dict:
    """||dL/dh_t|| for every step of a cell run over xs (B, T, X), with the loss at the last
    step only: L = sum(h_T * readout) / B, readout (B, H) (random; it fixes dL/dh_T so that
    everything before is the trip back through time).

    graphdef, params: from `nnx.split(cell, nnx.Param)` (e.g. a `probe_cell`). dL/dh_t is
    the gradient with respect to a zero perturbation added to h_t (carried on), so for the
    LSTM it counts every path from h_t, through later c's as well.

    Returns grad_norms (T,) (over batch and units, t = 0 first), decay_per_step
    (`fit_decay`), ratio (grad_norms[0] / grad_norms[-1]) and verdict_code (same thresholds
    as the MLP, on ratio).
    """
    cell = nnx.merge(graphdef, params)
    batch, steps = xs.shape[:2]

    def loss_fn(delta):
        _, hs = cell(xs, hidden_perturbation=delta)  # (B, T, H)
        return jnp.sum(hs[:, -1] * readout) / batch

    delta = jnp.zeros((batch, steps, readout.shape[-1]), xs.dtype)
    grads = jax.grad(loss_fn)(delta)  # (B, T, H)
    grad_norms = jnp.sqrt(jnp.sum(grads**2, axis=(0, 2)))  # (T,)
    ratio = _finite_ratio(grad_norms[0], grad_norms[-1], grad_norms)
    return {
        "grad_norms": grad_norms,
        "decay_per_step": fit_decay(grad_norms),
        "ratio": ratio,
        "verdict_code": verdict_code(ratio),
    }


def rnn_probe_sweep(graphdef, stacked_params, xs: jax.Array, readout: jax.Array) -> dict:
    """rnn_probe over a stack of same-shaped cells (leading axis N, e.g. one spectral radius
    each); every returned array gains the leading axis N."""
    return jax.vmap(partial(rnn_probe, graphdef), in_axes=(0, None, None))(stacked_params, xs, readout)
