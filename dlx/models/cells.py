"""Recurrent cells (RNN, GRU, LSTM) written from their equations, and a sequence model.

Every cell keeps three parameters:

    V  (X, G*H)   input weights, applied to the whole sequence before the time loop
    W  (H, G*H)   recurrent weights, ONE fused matrix product per step for all G gates
    b  (G*H,)     bias, folded into the input projection

and splits a step into the recurrent product `hw = h_{t-1} @ W` and an elementwise part
`pointwise(xproj_t, hw, carry)`. The time loop is a `jax.lax.scan` (compile time does not
grow with T) under a custom VJP whose backward pass emits the per-step gate cotangents and
forms dW as one (H, T*B) @ (T*B, G*H) product after the loop, instead of autodiff's
per-step accumulation of a (H, G*H) cotangent in the loop carry. The RNN uses the generic
loop (`_recur`, whose backward re-runs `pointwise` under `jax.vjp`); the LSTM and GRU have
their own (`_lstm_recur`, `_gru_recur`), whose forward stores the gate activations (the
LSTM's, for small time steps, the backward's coefficients) so the backward applies the
derivatives by hand. The LSTM's loops are a `lax.fori_loop` that writes
each step's output over its input; on the CPU, from 128 hidden units up, the LSTM's and the
GRU's backward loops are one, `_gates_backward`, over a (B, gates, H) view of each step.
Every tanh is `_tanh`: on the CPU a rational function, for
the sake of XLA:CPU's use of both cores inside the loops; elsewhere the backend's tanh.

Carries are tuples whose last element is the hidden state h: LSTM (c, h), GRU and RNN (h,).
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dlx.models.layers import linear, t_matmul

# Scan unroll of the time loop. With the light loop bodies below (hand-written backward
# passes, one tanh per step), unrolling 4 steps measured faster: LSTM forward+backward
# (T=128, B=32, H=256) 81-85 vs 85-91 ms, faster in 8 of 8 alternated rounds; the bench
# step median 98 vs 111 ms over 4 rounds, for +0.6 s of compilation. (Before those bodies,
# unrolling 2-16 gave no reliable gain.) Short sequences stay rolled: their loop is cheap
# and their compile time would grow for nothing.
UNROLL = 4
UNROLL_MIN_STEPS = 64


def _unroll(unroll: int | None, steps: int) -> int:
    """The cell's own unroll, else UNROLL for sequences of at least UNROLL_MIN_STEPS steps."""
    if unroll is not None:
        return unroll
    return UNROLL if steps >= UNROLL_MIN_STEPS else 1


# --- tanh as a rational function ---
#
# Every cell's transcendental is this tanh, not jnp.tanh, for the sake of XLA:CPU's thread
# use in the time loops. A step is a two-thread matrix product (YNNPACK) followed by the
# gates' elementwise work. XLA's cost model counts jnp.tanh as one "transcendental" and
# judges that fusion memory-bound and too small to split, so it runs on one thread; the
# product's second thread meanwhile goes to sleep, and waking it again cost ~40 us per
# product on the 2-core machine (a loop of (32, 256) @ (256, 1024) products with one, two
# or three tiny fusions between them: 50, 67 and 104 us per step; on one core 83, 86, 94).
# Written as the quotient of two polynomials, tanh is ~20 multiply-adds, the fusion counts
# as compute-bound and XLA splits it over both threads: the second thread then stays awake
# from one product to the next. The LSTM forward loop (T=128, B=32, H=256) measured 110 ->
# 74 us per step.
#
# The coefficients are the float32 [13/6] rational approximation that Eigen uses for tanh;
# on [-12, 12] its error equals XLA:CPU's own tanh (at most 2.6e-7, 4.4 ulp), though the
# two differ in the last bit for a third of inputs. The derivative is 1 - tanh^2, as jnp's.
_TANH_CLAMP = 7.90531110763549805
_TANH_NUM = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
             -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)   # x^1, x^3, ... x^13
_TANH_DEN = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)  # x^0 ... x^6


def _poly(coeffs, x2):
    """sum_k coeffs[k] x2^k by Horner's rule."""
    acc = jnp.full_like(x2, coeffs[-1])
    for c in coeffs[-2::-1]:
        acc = acc * x2 + c
    return acc


def _rational_tanh(x):
    x = jnp.clip(x, -_TANH_CLAMP, _TANH_CLAMP)
    x2 = x * x
    return x * _poly(_TANH_NUM, x2) / _poly(_TANH_DEN, x2)


@jax.custom_jvp
def _tanh(x):
    # The rational form is for XLA:CPU's threads alone. Elsewhere tanh is the backend's own:
    # on an H200 the rational form's error was 3.3e-7 against jnp.tanh's 3.2e-7 (the GPU's
    # division rounds differently), and a GPU has no threads to keep awake.
    return jax.lax.platform_dependent(x, cpu=_rational_tanh, default=jnp.tanh)


@_tanh.defjvp
def _tanh_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = _tanh(x)
    return y, dx * (1.0 - y * y)


# --- elementwise parts of one step: (xproj_t (B,G*H), hw (B,G*H), carry) -> (carry, h_t) ---

def _gate_affine(hidden: int, blocks: str):
    """Per-column (scale, shift) such that a = tanh(z * scale) * scale + shift activates
    every block of z (B, len(blocks) * hidden) at once: 's' a sigmoid gate, since
    sigmoid(x) = 0.5 tanh(x / 2) + 0.5, 't' a tanh.

    Why one tanh: XLA:CPU lowers sigmoid to exp + divide and fuses the four gates as
    separate slices; over the contiguous (B, 4H) block the loop's elementwise work measured
    22-26 -> 5-6 ms and the LSTM's forward loop 63-71 -> 29-40 ms (T=128, B=32, H=256).
    It also gives the backward pass every gate's derivative as scale^2 (1 - tanh^2)."""
    scale = jnp.concatenate([jnp.full((hidden,), 0.5 if b == "s" else 1.0, jnp.float32) for b in blocks])
    shift = jnp.concatenate([jnp.full((hidden,), 0.5 if b == "s" else 0.0, jnp.float32) for b in blocks])
    return scale, shift


def _lstm_affine(hidden: int):
    """(scale, shift) of `_gate_affine` for the LSTM's gates (i, f, N, o)."""
    return _gate_affine(hidden, "ssts")


def _lstm_tanh(z):
    """z (B, 4H) pre-activations -> tanh(z * scale): the one transcendental call of a step."""
    scale, _ = _lstm_affine(z.shape[-1] // 4)
    return _tanh(z * scale)


def _lstm_activate(t):
    """tanh(z * scale) (.., 4H) -> the gates i, f, N, o, each (.., H)."""
    scale, shift = _lstm_affine(t.shape[-1] // 4)
    return jnp.split(t * scale + shift, 4, axis=-1)


def _lstm_gates(xp, hw):
    # Gate order (i, f, N, o), the order of Flax's and PyTorch's fused LSTM weights.
    return tuple(_lstm_activate(_lstm_tanh(xp + hw)))


def _lstm_pointwise(xp, hw, carry):
    c_prev, _ = carry
    i, f, n, o = _lstm_gates(xp, hw)
    c = f * c_prev + i * n        # c_t = f_t * c_{t-1} + i_t * N_t
    h = o * _tanh(c)              # h_t = o_t * tanh(c_t)
    return (c, h), h


def _gru_gates(xp, hw):
    """(B, 3H) input and recurrent halves -> r, z, n, h W_n. r and z are one tanh over their
    2H contiguous columns (see `_gate_affine`)."""
    H = hw.shape[-1] // 3
    scale, shift = _gate_affine(H, "ss")
    rz = _tanh((xp[..., :2 * H] + hw[..., :2 * H]) * scale) * scale + shift
    r, z, hn = rz[..., :H], rz[..., H:], hw[..., 2 * H:]
    n = _tanh(xp[..., 2 * H:] + r * hn)  # the reset gate scales the recurrent part only (as Flax)
    return r, z, n, hn


def _gru_pointwise(xp, hw, carry):
    (h_prev,) = carry
    _, z, n, _ = _gru_gates(xp, hw)
    h = (1.0 - z) * n + z * h_prev
    return (h,), h


def _rnn_tanh_pointwise(xp, hw, carry):
    h = _tanh(xp + hw)
    return (h,), h


def _rnn_relu_pointwise(xp, hw, carry):
    h = jax.nn.relu(xp + hw)
    return (h,), h


# Cells whose gates see xproj_t + hw only as a sum: there d/dxproj_t = d/dhw, and the
# backward loop need not emit the same (T,B,G*H) array twice.
_ADDITIVE = (_rnn_tanh_pointwise, _rnn_relu_pointwise)


def _perturbed(carry, h, delta_t):
    # h_t + delta_t is both carried on and emitted, so d loss / d delta_t = d loss / d h_t.
    if delta_t is None:
        return carry, h
    h = h + delta_t
    return carry[:-1] + (h,), h


# --- the time loop, with a hand-written backward pass ---

def _transposed(W):
    """W.T (G*H, H) materialized once before a backward loop. Left to itself XLA folds the
    transpose into the loop's dot (contracting W's last axis), which YNNPACK ran slower: the LSTM's
    backward recurrence measured 53-61 vs 56-71 ms (T=128, B=32, H=256, 5 alternated rounds)."""
    return jax.lax.optimization_barrier(W.T)


def _sum_outer(h_prev, d):
    """sum_t h_prev[t].T @ d[t]: (T,B,H), (T,B,G) -> (H,G), the recurrent weights' gradient,
    as ONE (H, T*B) @ (T*B, G) product after the loop. Written as reshape and matmul
    because XLA:CPU ran the same einsum 21-25 ms against 15-17 (T=128, B=32, H=256, G=4H);
    through `t_matmul` (h_prev.T materialised with the concatenation that forms h_prev) because
    the whole step then ran faster in 47 of 58 in-process rounds over four shapes and all three
    cells, by 0-5%, and with the read-out's change as separate bench processes too
    (BENCHMARKS.md, ninth session)."""
    return t_matmul(h_prev.reshape(-1, h_prev.shape[-1]), d.reshape(-1, d.shape[-1]))


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _recur(pointwise, unroll, W, xproj, carry0, delta):
    """Runs the cell over time-major xproj (T,B,G*H) -> (final carry, hs (T,B,H))."""
    def body(carry, inp):
        xp, d = inp
        carry, h = pointwise(xp, carry[-1] @ W, carry)
        return _perturbed(carry, h, d)
    return jax.lax.scan(body, carry0, (xproj, delta), unroll=unroll)


def _recur_fwd(pointwise, unroll, W, xproj, carry0, delta):
    def body(carry, inp):
        xp, d = inp
        hw = carry[-1] @ W                                   # (B, G*H)
        new, h = _perturbed(*pointwise(xp, hw, carry), d)
        return new, (h, hw, carry)
    final, (hs, hws, prev) = jax.lax.scan(body, carry0, (xproj, delta), unroll=unroll)
    return (final, hs), (W, xproj, hws, prev, delta)


def _recur_bwd(pointwise, unroll, res, cts):
    W, xproj, hws, prev, delta = res
    d_final, d_hs = cts

    def body(d_carry, inp):
        d_h, xp, hw, carry, d = inp

        def step(xp, hw, carry, d):
            return _perturbed(*pointwise(xp, hw, carry), d)

        _, vjp = jax.vjp(step, xp, hw, carry, d)
        d_xp, d_hw, d_prev, d_d = vjp((d_carry, d_h))
        # h_{t-1} also reached the step through hw = h_{t-1} @ W.
        d_prev = d_prev[:-1] + (d_prev[-1] + d_hw @ WT,)
        return d_prev, (None if additive else d_xp, d_hw, d_d)

    additive = pointwise in _ADDITIVE
    WT = _transposed(W)
    d_carry0, (d_xproj, d_hws, d_delta) = jax.lax.scan(
        body, d_final, (d_hs, xproj, hws, prev, delta), reverse=True, unroll=unroll)
    d_xproj = d_hws if additive else d_xproj
    h_prev = prev[-1]                                         # (T, B, H)
    d_W = _sum_outer(h_prev, d_hws)
    return d_W, d_xproj, d_carry0, d_delta


_recur.defvjp(_recur_fwd, _recur_bwd)


# --- the LSTM's own time loop: its backward reuses the forward's gate activations ---
#
# The generic backward above recomputes each step's gates inside jax.vjp. Here the forward
# stores t = tanh(z * scale) for all gates (see `_gate_affine`) and c_t (small time steps:
# the coefficients below instead), and the backward applies the derivatives by hand; it is
# linear in (dh, dc) given those:
#
#   dh_t = d_hs[t] + dz_{t+1} @ W.T          dc_t = dc_{t+1} f_{t+1} + dh_t P_t
#   dz_t = [dc_t, dc_t, dc_t, dh_t] * Q_t    (pre-activation cotangents of i, f, N, o)
#
# with P = o (1 - tanh(c)^2) and Q = [N i', c_{t-1} f', i N', tanh(c) o'] (' the gate's
# derivative). P and Q are formed inside the loop, one step at a time. They used to be
# formed before it for all T steps at once, in large passes, leaving the loop one product
# and a few multiply-adds; but such a light step leaves the product's second thread idle
# long enough to fall asleep (see `_tanh`). Formed in the loop, with tanh(c_t) recomputed,
# the step's elementwise work is one fusion that XLA splits over both threads: the whole
# bench step measured 38.3 -> 35.6 ms at the reference shapes (batch 16, hidden 512: 29.1
# -> 27.4), and the passes outside the loop are gone. For small time steps the forward
# forms P, Q and f as it goes instead, and stores them (`SMALL_STEP_GATES`).
#
# Both loops write their per-step output over the array they read it from (the forward t_t,
# or for small steps Q_t, over xproj_t; the backward dz_t over that), in place: a scan's
# stacked outputs would be
# fresh arrays that XLA:CPU fills with zeros first, 16 MB twice per step at the reference
# shapes (3-4 ms of a ~90 ms step).

def _at(a, t):
    return jax.lax.dynamic_index_in_dim(a, t, keepdims=False)


def _put(a, x, t):
    return jax.lax.dynamic_update_index_in_dim(a, x, t, 0)


# Small time steps: with at most this many gate values per step (B * 4H), on CPU, the
# forward also writes the backward's coefficients (Q over xproj in place of t, P and f).
# The backward step then no longer recomputes tanh(c_t) or slices the gate block, and the
# passes that formed f and f_{t+1} before its loop are gone; five operations per step move
# from the backward loop to the forward (batch 32, hidden 128: 8.5 + 12.5 XLA operations
# per step before, 13.5 + 7.5 after), off the backward's chain of dependent products. Where
# a step's arithmetic is small that pays; with larger steps the heavier forward costs more
# than the lighter backward saves. Whole bench step,
# in-process alternation, 8 rounds: B * 4H = 8K (batch 8, hidden 256; batch 32, hidden 64)
# 10.2 -> 9.2 and 5.7 -> 5.4 ms, 16K (batch 32, hidden 128; batch 16, hidden 256) 13.8 ->
# 13.2 and faster in 8 of 8 rounds; 32K and up slower: the reference shapes 33.1 -> 34.1,
# batch 16, hidden 512 26.2 -> 26.9, batch 64, hidden 128 27.4 -> 29.2.
# The rule sees one model's batch as the loop has it: with `--seeds N` vmapped, each step
# does N times that work (compare-rnn's 3 seeds at batch 32, hidden 64 measured faster this
# way, 9.92 -> 9.48 ms; larger vmapped steps are unmeasured), and under `--devices N` it
# sees the global batch. On GPU and TPU the loops keep the form measured there.
SMALL_STEP_GATES = 16384


def _coefficients_in_forward(batch: int, hidden: int) -> bool:
    return batch * 4 * hidden <= SMALL_STEP_GATES and jax.default_backend() == "cpu"


def _lstm_coefficients(tt, c_prev, tc):
    """The backward's coefficients of one step from its activated gates t_t (B, 4H), c_{t-1}
    and tanh(c_t): P = o (1 - tanh(c)^2) (B, H) and Q (B, 4H), each gate's derivative
    scale^2 (1 - t^2) times [N, c_{t-1}, i, tanh c], as ONE multiply after the concatenation
    (four products concatenated ran as four passes)."""
    scale, _ = _lstm_affine(tt.shape[-1] // 4)
    i, _, n, o = _lstm_activate(tt)
    return o * (1.0 - tc * tc), scale * scale * (1.0 - tt * tt) * jnp.concatenate([n, c_prev, i, tc], axis=-1)


def _lstm_forward(unroll, W, xproj, carry0, delta, store):
    """The forward loop: xproj (T,B,4H) -> final (c, h), hs (T,B,H), buf (T,B,4H), a, b.
    store None: hs only. "gates": buf holds t_t and a the c_t (T,B,H). "coefficients": buf
    holds Q_t, a the P_t and b the f_t (T,B,H)."""
    T = xproj.shape[0]

    def body(t, state):
        c, h, buf, hs, a, b = state
        tt = _lstm_tanh(_at(buf, t) + h @ W)
        i, f, n, o = _lstm_activate(tt)
        c_new = f * c + i * n
        tc = _tanh(c_new)
        h = o * tc
        if delta is not None:
            h = h + _at(delta, t)
        hs = _put(hs, h, t)
        if store == "gates":
            buf, a = _put(buf, tt, t), _put(a, c_new, t)
        elif store == "coefficients":
            p, q = _lstm_coefficients(tt, c, tc)
            buf, a, b = _put(buf, q, t), _put(a, p, t), _put(b, f, t)
        return c_new, h, buf, hs, a, b

    c0, h0 = carry0
    # Every step writes its row, so the buffers need no initial values: lax.empty is left
    # uninitialized on GPU and TPU (on CPU it is still zeros).
    empty = lambda: jax.lax.empty((T,) + h0.shape, h0.dtype)  # noqa: E731
    a = empty() if store else None
    b = empty() if store == "coefficients" else None
    c, h, buf, hs, a, b = jax.lax.fori_loop(0, T, body, (c0, h0, xproj, empty(), a, b), unroll=unroll)
    return (c, h), hs, buf, a, b


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lstm_recur(unroll, W, xproj, carry0, delta):
    """As `_recur` for the LSTM: (final (c, h), hs (T,B,H))."""
    final, hs, _, _, _ = _lstm_forward(unroll, W, xproj, carry0, delta, store=None)
    return final, hs


def _lstm_recur_fwd(unroll, W, xproj, carry0, delta):
    batch, hidden = carry0[1].shape
    store = "coefficients" if _coefficients_in_forward(batch, hidden) else "gates"
    final, hs, buf, a, b = _lstm_forward(unroll, W, xproj, carry0, delta, store=store)
    return (final, hs), (W, carry0, hs, buf, a, b, delta)


# The backward loops over a gate axis (`_gates_backward`, axis=True) from this many hidden units
# up. Whole bench step as separate processes against the flat loops, the LSTM's small-step
# form (coefficients): batch 8 and 16 at hidden 256 0.89 and 0.92 (5 and 6 of 6 pairs
# faster), batch 32 at hidden 128 1.00, at hidden 64 1.15 (1 of 6): with few units a row's
# gate blocks are short loops for XLA:CPU's kernels, and unrolling pays more than the
# lighter step.
GATE_AXIS_MIN_HIDDEN = 128


def _gate_axis_loop(hidden: int) -> bool:
    """Whether the LSTM's and GRU's backward loops run over a gate axis. Measured on the CPU
    only; GPUs and TPUs keep the flat (B, G*H), unrolled loops that were measured there."""
    return jax.default_backend() == "cpu" and hidden >= GATE_AXIS_MIN_HIDDEN


_GATE = np.arange(4).reshape(1, 4, 1)   # the LSTM's gate index over (B, 4, H)


def _per_gate(x):
    """(B, H) -> (B, 1, H): one value for every gate."""
    return x[:, None, :]


def _gates_backward(W, rows, d_hs, carry, dh_last, dhs, step, *, axis: bool, unroll: int = 1):
    """The backward time loop over stored per-step rows (T, B, G*H), which it overwrites with
    the gate cotangents dz_t: -> (carry_0, dh_0, dz (T,B,G*H), dhs).

    step(t, carry, dh_t, row_t) -> (carry, dz_t, skip), and
    dh_{t-1} = d_hs[t-1] + dz_t @ W.T (+ skip, the GRU's dh_t z_t).

    Flat (axis False), rows and dz_t are (B, G*H), and the loop is unrolled by `unroll`.
    With a gate axis (the CPU's, `_gate_axis_loop`), they are viewed as (B, G, H), where a
    (B, H) value broadcast over the gates costs nothing; in (B, G*H) XLA:CPU needs
    concatenations for it (three operations a step) or a per-element index division (a
    broadcast-and-reshape fusion ran 12 against 2.5 us at batch 16, hidden 512). dz_t is then
    formed inside the write of its row, one in-place fusion, and read back through the (T, B,
    G*H) view for the product: the LSTM's step is five operations around its product where
    the flat loop has twelve. That loop runs rolled: unrolled, XLA fused each step's carry
    into the next steps' fusions, which then read a row after it was overwritten, and it
    copied the whole buffer every step. Whole bench step as separate processes: LSTM at the
    reference shapes 0.906, at batch 16, hidden 512 0.964; GRU at the reference shapes
    0.97-0.98 (BENCHMARKS.md, tenth session)."""
    T, B, GH = rows.shape
    H = d_hs.shape[-1]
    WT = _transposed(W)

    def body(k, state):
        t = T - 1 - k
        carry, dh_next, rows, dhs = state
        dh = _at(d_hs, t) + dh_next                          # d loss / d h_t
        carry, dz, skip = step(t, carry, dh, _at(rows, t))
        rows = _put(rows, dz, t)
        if dhs is not None:
            dhs = _put(dhs, dh, t)
        dh_prev = (_at(rows.reshape(T, B, GH), t) if axis else dz) @ WT
        return carry, dh_prev if skip is None else skip + dh_prev, rows, dhs

    view = rows.reshape(T, B, GH // H, H) if axis else rows
    carry, dh0, dz, dhs = jax.lax.fori_loop(0, T, body, (carry, dh_last, view, dhs), unroll=1 if axis else unroll)
    return carry, dh0, dz.reshape(T, B, GH), dhs


def _lstm_recur_bwd(unroll, res, cts):
    W, (c0, h0), hs, buf, a, b, delta = res
    (dc_last, dh_last), d_hs = cts
    T = hs.shape[0]
    dhs = None if delta is None else jax.lax.empty(d_hs.shape, d_hs.dtype)
    if b is None:        # buf holds t_t, a the c_t
        f = _lstm_activate(buf)[1]
        # f_{t+1}; after the last step 1, since dc_last is the cotangent of c_T itself. Read
        # from this array, not from buf[t+1], which the loop has overwritten with dz_{t+1}.
        # (Every read of buf[t] below feeds dz, the value written back over it: a read that
        # feeds anything else made XLA copy the whole buffer on every step: 127 vs 36 ms.)
        f_next = jnp.concatenate([f[1:], jnp.ones_like(f[:1])])
        f_first = f[0]

        def c_prev_at(t):
            # c_{t-1} read here rather than from a concatenation [c0, cs[:-1]] made before the
            # loop: one (T,B,H) pass and buffer fewer (bench step 31.1 vs 32.0 ms, 39 vs 43 MiB
            # of temporaries at the reference shapes, 10 alternated rounds).
            return jnp.where(t > 0, _at(a, jnp.maximum(t - 1, 0)), c0)

        def coefficients(row, t):
            p, q = _lstm_coefficients(row, c_prev_at(t), _tanh(_at(a, t)))
            return _at(f_next, t), p, q

        def gate_step(t, dc_next, dh, t4):                   # t4: tanh(z * scale), (B, 4, H)
            scale, shift = (v.reshape(4, -1) for v in _lstm_affine(t4.shape[-1]))
            tc = _tanh(_at(a, t))
            act = t4 * scale + shift                         # i, f, N, o
            dc = dc_next * _at(f_next, t) + dh * (act[:, 3] * (1.0 - tc * tc))
            other = jnp.where(_GATE == 0, act[:, 2:3], jnp.where(_GATE == 1, _per_gate(c_prev_at(t)),
                              jnp.where(_GATE == 2, act[:, 0:1], _per_gate(tc))))
            d = jnp.where(_GATE == 3, _per_gate(dh), _per_gate(dc))
            return dc, scale * scale * (1.0 - t4 * t4) * other * d, None
    else:                # buf holds Q_t, a the P_t, b the f_t
        def f_next_at(t):
            return jnp.where(t < T - 1, _at(b, jnp.minimum(t + 1, T - 1)), 1.0)

        def coefficients(row, t):
            return f_next_at(t), _at(a, t), row

        def gate_step(t, dc_next, dh, q4):                   # q4: Q_t, (B, 4, H)
            dc = dc_next * f_next_at(t) + dh * _at(a, t)
            return dc, q4 * jnp.where(_GATE == 3, _per_gate(dh), _per_gate(dc)), None
        f_first = b[0]

    def flat_step(t, dc_next, dh, row):
        f_next, p, q = coefficients(row, t)                  # f_{t+1}, P_t, Q_t
        dc = dc_next * f_next + dh * p                       # d loss / d c_t
        return dc, jnp.concatenate([dc, dc, dc, dh], axis=-1) * q, None  # dz_t (B, 4H)

    axis = _gate_axis_loop(h0.shape[-1])
    dc_first, dh0, dz, dhs = _gates_backward(W, buf, d_hs, dc_last, dh_last, dhs, gate_step if axis else flat_step,
                                             axis=axis, unroll=unroll)
    h_prev = jnp.concatenate([h0[None], hs[:-1]])            # (T, B, H): h_{t-1} as carried
    d_W = _sum_outer(h_prev, dz)
    return d_W, dz, (dc_first * f_first, dh0), dhs


_lstm_recur.defvjp(_lstm_recur_fwd, _lstm_recur_bwd)


# --- the GRU's own time loop ---
#
# The forward activates r and z with one tanh over their 2H contiguous columns and stores
# (r, z, n) and h W_n per step. The backward is linear in dh given those, and unlike the LSTM's
# forms its coefficients for all T steps before its loop: formed inside it, as the LSTM's
# are, the step measured 5-10% slower (BENCHMARKS.md):
#
#   dh_{t-1} = dh_t z_t + d_hw_t @ W.T      d_hw_t = [dh_t, dh_t, dh_t] * Q_t
#
# with Q = [(1-z) n' hn r', (h_{t-1} - n) z', (1-z) n' r], so its loop carries dh alone;
# the input-side dn = dh (1-z) n' is formed from the emitted dh after the loop, and so is
# d_hw, except in the CPU's gate-axis loop (`_gates_backward`), which writes it over Q.

def _gru_forward(unroll, W, xproj, carry0, delta, store):
    """The forward loop: xproj (T,B,3H) -> final (h,), hs (T,B,H), and with `store` the gates
    [r, z, n] (T,B,3H), written over xproj as the LSTM's loop does (a scan's stacked
    outputs were zero-filled fresh arrays: 1.8 ms of a ~30 ms step), and h W_n (T,B,H)."""
    T = xproj.shape[0]

    def body(t, state):
        h, buf, hns, hs = state
        r, z, n, hn = _gru_gates(_at(buf, t), h @ W)
        h = (1.0 - z) * n + z * h
        if delta is not None:
            h = h + _at(delta, t)
        hs = _put(hs, h, t)
        if store:
            buf, hns = _put(buf, jnp.concatenate([r, z, n], axis=-1), t), _put(hns, hn, t)
        return h, buf, hns, hs

    (h0,) = carry0
    hs = jax.lax.empty((T,) + h0.shape, h0.dtype)
    hns = jax.lax.empty((T,) + h0.shape, h0.dtype) if store else None
    h, rzn, hns, hs = jax.lax.fori_loop(0, T, body, (h0, xproj, hns, hs), unroll=unroll)
    return (h,), hs, rzn, hns


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _gru_recur(unroll, W, xproj, carry0, delta):
    """As `_recur` for the GRU: (final (h,), hs (T,B,H))."""
    final, hs, _, _ = _gru_forward(unroll, W, xproj, carry0, delta, store=False)
    return final, hs


def _gru_recur_fwd(unroll, W, xproj, carry0, delta):
    final, hs, rzn, hns = _gru_forward(unroll, W, xproj, carry0, delta, store=True)
    return (final, hs), (W, carry0, hs, rzn, hns, delta)


def _gru_recur_bwd(unroll, res, cts):
    W, (h0,), hs, rzn, hn, delta = res
    (dh_last,), d_hs = cts
    h_prev = jnp.concatenate([h0[None], hs[:-1]])             # (T, B, H): h_{t-1} as carried
    r, z, n = jnp.split(rzn, 3, axis=-1)                      # each (T, B, H), as hn
    dn_dh = (1.0 - z) * (1.0 - n * n)                         # d loss/d n's pre-act., per dh
    Q = jnp.concatenate([dn_dh * hn * r * (1.0 - r),          # r's pre-activation
                         (h_prev - n) * z * (1.0 - z),        # z's pre-activation
                         dn_dh * r], axis=-1)                 # h W_n, scaled by r

    if _gate_axis_loop(h0.shape[-1]):
        # d_hw_t = dh_t * Q_t over (B, 3, H), written over Q_t, so it is not formed again
        # after the loop; dh_{t-1} = d_hs[t-1] + d_hw_t @ W.T + dh_t z_t.
        _, dh0, d_hw, dh = _gates_backward(
            W, Q, d_hs, None, dh_last, jax.lax.empty(d_hs.shape, d_hs.dtype),
            lambda t, _, dh, q3: (None, q3 * _per_gate(dh), dh * _at(z, t)), axis=True)
    else:
        WT = _transposed(W)

        def body(dh_next, inp):
            d_h, q, zt = inp
            dh = d_h + dh_next                                # d loss / d h_t
            d_hw = jnp.concatenate([dh, dh, dh], axis=-1) * q  # (B, 3H)
            return dh * zt + d_hw @ WT, dh

        dh0, dh = jax.lax.scan(body, dh_last, (d_hs, Q, z), reverse=True, unroll=unroll)
        d_hw = jnp.concatenate([dh, dh, dh], axis=-1) * Q
    H = dh.shape[-1]
    d_xproj = jnp.concatenate([d_hw[..., :2 * H], dh * dn_dh], axis=-1)
    d_W = _sum_outer(h_prev, d_hw)
    return d_W, d_xproj, (dh0,), (None if delta is None else dh)


_gru_recur.defvjp(_gru_recur_fwd, _gru_recur_bwd)


# --- initializers ---

def _blockwise_orthogonal(key, hidden, num_gates):
    # One orthogonal (H, H) block per gate, so each gate's recurrence starts norm-preserving.
    # Single (unbatched) QRs: see `seeded` in dlx/train.py for why none may be batched.
    keys = jax.random.split(key, num_gates)
    init = nnx.initializers.orthogonal()
    return jnp.concatenate([init(k, (hidden, hidden), jnp.float32) for k in keys], axis=1)


class _Cell(nnx.Module):
    """Shared parameters and loop of the three cells; subclasses give `_pointwise`."""

    num_gates: int = 1

    def __init__(self, in_features: int, hidden: int, *, rngs: nnx.Rngs, unroll: int | None = None):
        self.in_features = in_features
        self.hidden = hidden
        self.unroll = unroll                 # None: by sequence length (`_unroll`)
        gh = self.num_gates * hidden
        # lecun_normal for the input weights (Flax's default), orthogonal blocks for the
        # recurrent weights, zero bias (the LSTM adds its forget bias on top).
        self.V = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (in_features, gh), jnp.float32))
        self.W = nnx.Param(_blockwise_orthogonal(rngs.params(), hidden, self.num_gates))
        self.b = nnx.Param(jnp.zeros((gh,), jnp.float32))

    def initial_carry(self, batch_size: int) -> tuple:
        return (jnp.zeros((batch_size, self.hidden), jnp.float32),) * self._carry_len

    _carry_len = 1

    def project(self, xs: jax.Array) -> jax.Array:
        """xs (..., X) -> (..., G*H): the input half of every gate, for all steps at once."""
        return xs @ self.V[...] + self.b[...]

    def step(self, carry: tuple, xproj_t: jax.Array) -> tuple[tuple, jax.Array]:
        """One time step: carry, xproj_t (B, G*H) -> (carry, h_t (B, H)). Pure; scan-able."""
        return self._pointwise(xproj_t, carry[-1] @ self.W[...], carry)

    def project_tokens(self, embedding: jax.Array, tokens: jax.Array) -> jax.Array:
        """The input half of every gate for embedded tokens: embedding (V, X), tokens (...)
        int -> (..., G*H), equal to `project(embedding[tokens])`.

        With no more vocabulary entries than tokens, the table embedding @ V + b (V, G*H) is
        formed first and its rows gathered: the gradient then reaches the embedding and V
        through one small (V, G*H) table instead of a scatter of every token's X-wide
        cotangent plus a (X, T*B) @ (T*B, G*H) product. The char model's embedding and
        projection, forward and backward, measured 29-35 -> 5-6 ms (T=128, B=32, 65 -> 64
        -> 4*256)."""
        if embedding.shape[0] <= tokens.size:
            return jnp.take(embedding @ self.V[...] + self.b[...], tokens, axis=0)
        return self.project(jnp.take(embedding, tokens, axis=0))

    def scan_time_major(self, xs, carry=None, *, hidden_perturbation=None):
        """xs (T,B,X) -> (carry, hs (T,B,H)); hidden_perturbation (T,B,H) is added to h_t."""
        return self.scan_projected(self.project(xs), carry, hidden_perturbation=hidden_perturbation)

    def scan_projected(self, xproj, carry=None, *, hidden_perturbation=None):
        """As `scan_time_major`, from the projected inputs xproj (T,B,G*H)."""
        if carry is None:
            carry = self.initial_carry(xproj.shape[1])
        return self._time_loop(_unroll(self.unroll, xproj.shape[0]), self.W[...], xproj, tuple(carry),
                               hidden_perturbation)

    def _time_loop(self, unroll, W, xproj, carry, delta):
        # The generic loop; the GRU and LSTM name their own hand-written ones.
        return _recur(self._pointwise, unroll, W, xproj, carry, delta)

    def __call__(self, xs, carry=None, *, hidden_perturbation=None):
        """xs (B,T,X) -> (carry, hs (B,T,H)); hidden_perturbation (B,T,H) is added to h_t."""
        if hidden_perturbation is not None:
            hidden_perturbation = jnp.swapaxes(hidden_perturbation, 0, 1)
        carry, hs = self.scan_time_major(jnp.swapaxes(xs, 0, 1), carry,
                                         hidden_perturbation=hidden_perturbation)
        return carry, jnp.swapaxes(hs, 0, 1)


class RNNCell(_Cell):
    """h_t = act(x_t U + h_{t-1} W + b), act tanh or relu (U is stored as V)."""

    num_gates = 1

    def __init__(self, in_features, hidden, *, rngs, activation: str = "tanh", unroll=None):
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', not {activation!r}")
        self.activation = activation
        super().__init__(in_features, hidden, rngs=rngs, unroll=unroll)

    @property
    def _pointwise(self):
        return _rnn_tanh_pointwise if self.activation == "tanh" else _rnn_relu_pointwise


class GRUCell(_Cell):
    """r, z = sigmoid(x V_{r,z} + b_{r,z} + h W_{r,z}); n = tanh(x V_n + b_n + r * (h W_n));
    h_t = (1 - z) * n + z * h_{t-1}. The equations of Flax's nnx.GRUCell; gate order (r, z, n)."""

    num_gates = 3
    _pointwise = staticmethod(_gru_pointwise)

    _time_loop = staticmethod(_gru_recur)


class LSTMCell(_Cell):
    """f, i, o = sigmoid(x V + h W + b) per gate; N_t = tanh(x V_c + h W_c + b_c);
    c_t = f * c_{t-1} + i * N_t; h_t = o * tanh(c_t). Gate order (i, f, N, o); carry (c, h)."""

    num_gates = 4
    _carry_len = 2
    _pointwise = staticmethod(_lstm_pointwise)

    def __init__(self, in_features, hidden, *, rngs, forget_bias: float = 1.0, unroll=None):
        super().__init__(in_features, hidden, rngs=rngs, unroll=unroll)
        # A positive forget bias makes the cell remember by default early in training.
        self.b[...] = self.b[...].at[hidden:2 * hidden].add(forget_bias)

    _time_loop = staticmethod(_lstm_recur)

    def __call__(self, xs, carry=None, *, hidden_perturbation=None, return_gates: bool = False):
        """As the other cells; with return_gates=True also a dict of (T,) arrays: the mean
        forget, input and output gates over batch and units, and the mean over the batch of
        the cell-state norm ||c_t||, per step. That path uses plain autodiff (diagnostics)."""
        if not return_gates:
            return super().__call__(xs, carry, hidden_perturbation=hidden_perturbation)
        if carry is None:
            carry = self.initial_carry(xs.shape[0])
        xproj = jnp.swapaxes(self.project(xs), 0, 1)              # (T, B, 4H)
        delta = None if hidden_perturbation is None else jnp.swapaxes(hidden_perturbation, 0, 1)
        W = self.W[...]

        def body(carry, inp):
            xp, d = inp
            hw = carry[-1] @ W
            i, f, _, o = _lstm_gates(xp, hw)
            carry, h = _perturbed(*_lstm_pointwise(xp, hw, carry), d)
            stats = dict(forget=f.mean(), input=i.mean(), output=o.mean(),
                         cell_norm=jnp.linalg.norm(carry[0], axis=-1).mean())
            return carry, (h, stats)

        unroll = _unroll(self.unroll, xproj.shape[0])
        carry, (hs, stats) = jax.lax.scan(body, carry, (xproj, delta), unroll=unroll)
        return carry, jnp.swapaxes(hs, 0, 1), stats


CELLS = {"rnn": RNNCell, "gru": GRUCell, "lstm": LSTMCell}


def param_count(kind: str, in_features: int, hidden: int) -> int:
    """Exact parameter count of one cell: G * H * (X + H + 1), one bias vector per gate
    (G = 1 RNN, 3 GRU, 4 LSTM)."""
    return CELLS[kind].num_gates * hidden * (in_features + hidden + 1)


class RecurrentNet(nnx.Module):
    """[embedding] -> `layers` stacked cells -> dense read-out at every step.

    With `vocab`, inputs are int tokens (B,T) embedded to `embed` features (default
    `in_features`); otherwise inputs are floats (B,T,in_features). Runs time-major inside.
    """

    def __init__(self, kind: str, in_features: int, hidden: int, out_features: int, *,
                 layers: int = 1, vocab: int | None = None, embed: int | None = None,
                 rngs: nnx.Rngs, **cell_kwargs):
        if kind not in CELLS:
            raise ValueError(f"unknown cell {kind!r}; choose from {sorted(CELLS)}")
        self.kind = kind
        if vocab is not None:
            in_features = embed or in_features
            self.embed = nnx.Embed(vocab, in_features, rngs=rngs)
        else:
            self.embed = None
        sizes = [in_features] + [hidden] * (layers - 1)
        self.cells = nnx.List([CELLS[kind](x, hidden, rngs=rngs, **cell_kwargs) for x in sizes])
        self.head = nnx.Linear(hidden, out_features, rngs=rngs)

    def _features(self, inputs):
        # tokens (B,T) -> (T,B,E); floats (B,T,X) -> (T,B,X). For the gate statistics; the
        # training path folds the embedding into the first projection (`project_tokens`).
        if self.embed is not None:
            return self.embed(inputs.T)
        return jnp.swapaxes(inputs, 0, 1)

    def init_state(self, batch_size: int) -> list:
        return [cell.initial_carry(batch_size) for cell in self.cells]

    def hidden_states(self, inputs, state=None, *, hidden_perturbation=None):
        """inputs -> (state, hs (B,T,H)) of the last layer. hidden_perturbation (B,T,H) is
        added to the last layer's h_t (for d loss / d h_t)."""
        state, hs = self._hidden_tm(inputs, state, hidden_perturbation)
        return state, jnp.swapaxes(hs, 0, 1)

    def _hidden_tm(self, inputs, state, hidden_perturbation):
        state = self.init_state(inputs.shape[0]) if state is None else state
        delta = None if hidden_perturbation is None else jnp.swapaxes(hidden_perturbation, 0, 1)
        new_state = []
        for k, (cell, carry) in enumerate(zip(self.cells, state)):
            d = delta if k == len(self.cells) - 1 else None
            if k == 0 and self.embed is not None:              # tokens (B,T) -> (T,B,G*H)
                xproj = cell.project_tokens(self.embed.embedding[...], inputs.T)
                carry, xs = cell.scan_projected(xproj, carry, hidden_perturbation=d)
            else:
                xs = jnp.swapaxes(inputs, 0, 1) if k == 0 else xs  # floats (B,T,X) -> (T,B,X)
                carry, xs = cell.scan_time_major(xs, carry, hidden_perturbation=d)
            new_state.append(carry)
        return new_state, xs                                   # xs: (T, B, H)

    def __call__(self, inputs, *, last_only: bool = False, hidden_perturbation=None):
        """inputs -> logits (B,T,out), or (B,out) from the last step with last_only."""
        state, hs = self._hidden_tm(inputs, None, hidden_perturbation)
        if last_only:
            return self.head(state[-1][-1])
        return jnp.swapaxes(linear(self.head, hs), 0, 1)      # read-out after the scan

    def step_tokens(self, state: list, tokens: jax.Array) -> tuple[list, jax.Array]:
        """One step for sampling: tokens (B,) int (or (B,X) floats) -> (state, logits (B,out))."""
        x = self.embed(tokens) if self.embed is not None else tokens
        new_state = []
        for cell, carry in zip(self.cells, state):
            carry, x = cell.step(carry, cell.project(x))
            new_state.append(carry)
        return new_state, self.head(x)
