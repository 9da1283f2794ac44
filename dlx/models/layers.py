"""Convolution layers that are fast on XLA:CPU, forward and backward.

`Conv` and `ConvTranspose` hold the same parameters as `nnx.Conv` / `nnx.ConvTranspose`
(kernel (k..., in, out), bias (out,)) and compute the same function, through
`lax.conv_general_dilated` only where XLA:CPU runs it and its autodiff well (8 or more
input channels, not transposed). Elsewhere that op, and the convs with lhs or rhs dilation
that its autodiff produces, run far slower; there a conv is slices (or pads) of the input
plus one matmul:

    conv:            patches (N, o..., K*in) = the K = prod(k) shifted, strided slices
                     of the padded input; y = patches @ kernel (K*in, out)
    transposed conv: cols (N, n..., K*out) = x @ kernel (in, K*out); y = sum over the K
                     taps of cols[tap] placed at o = s*i + lo - j, i.e. col2im, done per
                     output phase (o mod s) on the small grid, then interleaved

Their autodiff is again slices, pads and two matmuls, all of which XLA:CPU fuses or
hands to its multi-threaded matmul. Spatial axes: any number (1-D, 2-D, 3-D).
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

Padding = str | Sequence[tuple[int, int]]


def _tuple(v, d: int) -> tuple[int, ...]:
    return (v,) * d if isinstance(v, int) else tuple(v)


def conv_pads(size, kernel, strides, padding: Padding) -> tuple[tuple[int, int], ...]:
    """(low, high) per spatial axis, as lax resolves 'SAME' / 'VALID' for a conv."""
    if isinstance(padding, str):
        return tuple(lax.padtype_to_pads(size, kernel, strides, padding.upper()))
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def conv_transpose_pads(kernel, strides, padding: Padding) -> tuple[tuple[int, int], ...]:
    """(low, high) per spatial axis on the stride-dilated input, as lax.conv_transpose
    (and so nnx.ConvTranspose) resolves 'SAME' / 'VALID'; explicit pairs pass through."""
    if not isinstance(padding, str):
        return tuple((int(lo), int(hi)) for lo, hi in padding)
    pads = []
    for k, s in zip(kernel, strides):
        if padding.upper() == "SAME":
            total = k + s - 2
            lo = k - 1 if s > k - 1 else -(-total // 2)
        elif padding.upper() == "VALID":
            total, lo = k + s - 2 + max(k - s, 0), k - 1
        else:
            raise ValueError(f"padding must be 'SAME', 'VALID' or (low, high) pairs, got {padding!r}")
        pads.append((lo, total - lo))
    return tuple(pads)


# A conv with at least this many input channels goes to lax.conv_general_dilated: XLA:CPU
# runs it and its autodiff well. Fewer channels starve that kernel (its weight gradient
# with 1 input channel ran 3x slower than patches @ dy). Strided ones too, with XLA's own
# backward (an input-dilated conv for dx): dcgan's D conv 14x14x64 -> 7x7x128, 4x4/2, made
# the whole bench step 44-48 ms against 51-54 as im2col (AMD EPYC Zen 5, 2 cores, 3
# alternated rounds; batch 32, width 32: 8.8-10.1 vs 9.4-12.1). A stride-1 conv keeps its
# per-tap weight gradient (`_lax_conv`): XLA's there made the cnn step 25-30 vs 22-25 ms.
LAX_MIN_CHANNELS = 8


def _dims(d: int):
    spatial = "DHW"[-d:] if d <= 3 else None
    return (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")


def _stride1_conv(pads, x, kernel):
    d = kernel.ndim - 2
    return lax.conv_general_dilated(x, kernel, (1,) * d, pads, dimension_numbers=_dims(d))


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lax_conv(pads, x, kernel):
    """Stride-1 lax conv whose kernel gradient is one (in, N*o...) @ (N*o..., out) product per
    tap (slices of the padded input against dy) instead of XLA:CPU's backward-filter conv
    (128x14x14x32 -> 64 channels, 3x3: 20-30 ms vs 37-42 ms). The input gradient stays XLA's."""
    return _stride1_conv(pads, x, kernel)


def _lax_conv_fwd(pads, x, kernel):
    return _stride1_conv(pads, x, kernel), (x, kernel)


def _lax_conv_bwd(pads, res, g):
    x, kernel = res
    d = kernel.ndim - 2
    ks, cin, cout = kernel.shape[:d], kernel.shape[-2], kernel.shape[-1]
    _, vjp_x = jax.vjp(lambda x_: _stride1_conv(pads, x_, kernel), x)
    (dx,) = vjp_x(g)
    xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))
    out, gm = g.shape[1:-1], g.reshape(-1, cout)
    taps = [lax.slice(xp, (0, *offs, 0), (xp.shape[0], *(a + o for a, o in zip(offs, out)), cin)).reshape(-1, cin).T @ gm
            for offs in itertools.product(*(range(k) for k in ks))]          # each (in, out)
    return dx, jnp.stack(taps).reshape(*ks, cin, cout)


_lax_conv.defvjp(_lax_conv_fwd, _lax_conv_bwd)


def conv(x, kernel, strides, pads):
    """Cross-correlation of x (N, n..., in) with kernel (k..., in, out): (N, o..., out),
    o = floor((n + lo + hi - k) / s) + 1, exactly lax.conv_general_dilated's result."""
    d = kernel.ndim - 2
    ks, cin, cout = kernel.shape[:d], kernel.shape[-2], kernel.shape[-1]
    if cin >= LAX_MIN_CHANNELS and d <= 3:
        if all(s == 1 for s in strides):
            return _lax_conv(tuple(pads), x, kernel)
        return lax.conv_general_dilated(x, kernel, tuple(strides), tuple(pads), dimension_numbers=_dims(d))
    xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))
    out = tuple((n - k) // s + 1 for n, k, s in zip(xp.shape[1:-1], ks, strides))
    taps = []
    for offs in itertools.product(*(range(k) for k in ks)):
        start = (0, *offs, 0)
        limit = (xp.shape[0], *(a + s * (o - 1) + 1 for a, s, o in zip(offs, strides, out)), cin)
        taps.append(lax.slice(xp, start, limit, (1, *strides, 1)))  # (N, o..., in)
    patches = jnp.stack(taps, axis=-2).reshape(-1, len(taps) * cin)  # (N*prod(o), K*in)
    y = patches @ kernel.reshape(-1, cout)
    return y.reshape(x.shape[0], *out, cout)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _unstack(a, axis: int):
    """The slices of a along axis, whose cotangent is one stack of theirs. Autodiff of the
    slices instead sums one zero-padded full-size array per slice: for dcgan's first
    transposed conv a 16-way sum of (3136, 1024) arrays, 4 ms of a 45 ms step."""
    return [lax.index_in_dim(a, i, axis, keepdims=False) for i in range(a.shape[axis])]


def _unstack_fwd(a, axis):
    return _unstack(a, axis), None


def _unstack_bwd(axis, _, cts):
    return (jnp.stack(cts, axis=axis),)


_unstack.defvjp(_unstack_fwd, _unstack_bwd)


def conv_transpose(x, kernel, strides, pads):
    """What lax.conv_transpose(x, kernel, strides, pads) computes (kernel not flipped):
    a stride-1 conv of the s-dilated x padded by pads. x (N, n..., in) -> (N, o..., out),
    o = (n - 1) * s + 1 + lo + hi - k + 1."""
    d = kernel.ndim - 2
    ks, cin, cout = kernel.shape[:d], kernel.shape[-2], kernel.shape[-1]
    n = x.shape[1:-1]
    out = tuple((m - 1) * s + 1 + lo + hi - k + 1 for m, s, (lo, hi), k in zip(n, strides, pads, ks))
    # x[i] reaches y[s*i + lo - j] through tap j. Writing lo - j = s*q + a (0 <= a < s), tap j
    # lands on output phase a (y[s*m + a], m = i + q): each phase is a sum of the taps'
    # columns shifted by q on the small (M = ceil(o/s)) grid, and the phases interleave
    # into y (depth-to-space). No full-size pads with interior zeros: those made this layer
    # 5-10x slower on XLA:CPU (dcgan's first transposed conv, forward 50-66 ms).
    w = jnp.moveaxis(kernel.reshape(-1, cin, cout), 1, 0).reshape(cin, -1)  # (in, K*out)
    cols = (x.reshape(-1, cin) @ w).reshape(*x.shape[:-1], -1, cout)  # (N, n..., K, out)
    taps = _unstack(cols, d + 1)                                       # K x (N, n..., out)
    zero = jnp.zeros((), x.dtype)
    M = tuple(-(-o // s) for o, s in zip(out, strides))
    phases: dict[tuple[int, ...], jnp.ndarray] = {}
    for t, offs in enumerate(itertools.product(*(range(k) for k in ks))):
        a = tuple((lo - j) % s for (lo, _), j, s in zip(pads, offs, strides))
        q = tuple((lo - j - ai) // s for (lo, _), j, s, ai in zip(pads, offs, strides, a))
        cfg = [(0, 0, 0), *((qi, Mi - m - qi, 0) for qi, Mi, m in zip(q, M, n)), (0, 0, 0)]
        placed = lax.pad(taps[t], zero, cfg)  # (N, M..., out)
        phases[a] = placed if a not in phases else phases[a] + placed
    empty = jnp.zeros((x.shape[0], *M, cout), x.dtype)
    grid = [phases.get(a, empty) for a in itertools.product(*(range(s) for s in strides))]
    y = jnp.stack(grid, axis=1).reshape(x.shape[0], *strides, *M, cout)   # (N, s..., M..., out)
    perm = [0] + [p for i in range(d) for p in (1 + d + i, 1 + i)] + [1 + 2 * d]
    y = y.transpose(perm).reshape(x.shape[0], *(Mi * s for Mi, s in zip(M, strides)), cout)
    return y[(slice(None), *(slice(0, o) for o in out), slice(None))]


# --- weight gradients over many rows, which XLA:CPU runs slowly as written ---
#
# Autodiff's kernel gradient of y = x @ kernel is x.T @ dy over the flattened rows: a product
# whose left operand is transposed, which XLA:CPU hands to Eigen rather than YNNPACK. For the
# recurrent read-out (thousands of rows, a few dozen outputs) Eigen ran it at 57-106 GFLOP/s;
# with x.T materialised first (behind an optimization barrier, else XLA folds the transpose
# back into the product) the same gradient took 0.47 vs 0.81 ms (4096 rows, 128 -> 65), 0.49
# vs 1.19 (1024 rows, 512 -> 65) and 0.72 vs 1.29 (4096, 256 -> 65), medians of 20 calls.
# Not for every shape: at 128 rows, 3136 -> 128 (the CNN's dense layer) the materialised form
# was slower (0.62 vs 0.48 ms), so callers opt in where it measured faster. GPUs and TPUs
# multiply transposed operands natively and keep the plain product.

def t_matmul(a, b):
    """a.T @ b for a (rows, K), b (rows, N) -> (K, N); on the CPU as an NN product over a
    materialised a.T."""
    return lax.platform_dependent(a, b, cpu=lambda a, b: lax.optimization_barrier(a.T) @ b,
                                  default=lambda a, b: a.T @ b)


@jax.custom_vjp
def dense(x, kernel):
    """x (..., K) @ kernel (K, N) -> (..., N), with the kernel gradient described above."""
    return x @ kernel


def _dense_fwd(x, kernel):
    return x @ kernel, (x, kernel)


def _dense_bwd(res, g):
    x, kernel = res
    return g @ kernel.T, t_matmul(x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1]))


dense.defvjp(_dense_fwd, _dense_bwd)


def linear(layer: nnx.Linear, x):
    """layer(x) for an `nnx.Linear` with its default options, through `dense`."""
    y = dense(x, layer.kernel[...])
    return y if layer.bias is None else y + layer.bias[...]


class _ConvLayer(nnx.Module):
    """Parameters shared by Conv and ConvTranspose: kernel (k..., in, out), bias (out,),
    drawn in nnx.Conv's key order, so the same Rngs give the same parameters."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int | Sequence[int],
                 strides: int | Sequence[int] = 1, *, padding: Padding = "SAME", use_bias: bool = True,
                 kernel_init=nnx.initializers.lecun_normal(), bias_init=nnx.initializers.zeros_init(),
                 rngs: nnx.Rngs):
        self.kernel_size = _tuple(kernel_size, 1 if isinstance(kernel_size, int) else len(kernel_size))
        self.strides = _tuple(strides, len(self.kernel_size))
        self.padding = padding if isinstance(padding, str) else tuple(map(tuple, padding))
        self.kernel = nnx.Param(kernel_init(rngs.params(), (*self.kernel_size, in_features, out_features)))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,))) if use_bias else nnx.data(None)

    def _apply(self, x):
        raise NotImplementedError

    def __call__(self, x):
        y = self._apply(x)
        return y if self.bias is None else y + self.bias[...]


class Conv(_ConvLayer):
    """nnx.Conv's parameters and function (no dilation, no groups), computed as
    patches @ kernel. x (N, n..., in) -> (N, o..., out)."""

    def _apply(self, x):
        pads = conv_pads(x.shape[1:-1], self.kernel_size, self.strides, self.padding)
        return conv(x, self.kernel[...], self.strides, pads)


class ConvTranspose(_ConvLayer):
    """nnx.ConvTranspose's parameters and function (transpose_kernel=False, no dilation),
    computed as x @ kernel then col2im. x (N, n..., in) -> (N, o..., out)."""

    def _apply(self, x):
        pads = conv_transpose_pads(self.kernel_size, self.strides, self.padding)
        return conv_transpose(x, self.kernel[...], self.strides, pads)


def max_pool(x, window: int | Sequence[int], pads: Sequence[tuple[int, int]] | None = None):
    """Max over non-overlapping windows (stride = window) of x (N, n..., C), after padding
    with -inf (ceil mode when pads make n divisible). Reshape + max rather than
    reduce_window: its gradient is a compare-and-select that XLA fuses, where
    reduce_window's is a select_and_scatter."""
    d = x.ndim - 2
    window = _tuple(window, d)
    if pads is not None and any(lo or hi for lo, hi in pads):
        x = lax.pad(x, jnp.array(-jnp.inf, x.dtype), ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))
    n = x.shape[1:-1]
    if any(m % w for m, w in zip(n, window)):
        raise ValueError(f"max_pool: spatial shape {n} not divisible by window {window}; pad first")
    split = [x.shape[0]]
    for m, w in zip(n, window):
        split += [m // w, w]
    x = x.reshape(*split, x.shape[-1])
    return x.max(axis=tuple(2 + 2 * i for i in range(d)))
