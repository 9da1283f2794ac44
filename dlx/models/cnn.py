"""The cnn-demo network and its shape arithmetic.

conv -> ReLU -> pool -> conv -> ReLU -> pool -> flatten -> [dense -> ReLU] -> dense
(logits; softmax lives in the loss). 2-D for images (N, H, W, C); 1-D for signals
(N, L, C) such as MNIST-1D: the number of spatial axes follows the input.

Padding is explicit so that every conv output obeys out = floor((n + p - k) / s) + 1
with p the total padding along that axis: `valid` p = 0; `same` p = k - 1 (split
low = (k-1)//2, high = the rest), which gives ceil(n / s). Pooling (window w, stride w)
runs in "ceil mode": a partial last window is kept (p = (w - n % w) % w), so
out = ceil(n / w) and an 8x8 digit survives two valid convs and two pools.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from flax import nnx

from dlx.models.layers import Conv, max_pool


def conv_padding(n: int, k: int, s: int, padding: str) -> tuple[int, int]:
    if padding == "valid":
        return (0, 0)
    total = k - 1
    return (total // 2, total - total // 2)


def conv_out(n: int, k: int, s: int, p: int) -> int:
    """The formula: floor((n + p - k) / s) + 1, p = total padding."""
    return (n + p - k) // s + 1


def pool_padding(n: int, w: int) -> tuple[int, int]:
    return (0, (w - n % w) % w)


def pool_out(n: int, w: int) -> int:
    return -(-n // w)  # ceil(n / w)


def _window_sum(x, w: int, pads):
    """Sum over non-overlapping w-windows of x (N, n..., C) after zero padding: a reshape
    and a sum, whose gradient XLA:CPU fuses (reduce_window's is far slower there)."""
    if any(lo or hi for lo, hi in pads):
        x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    split = [x.shape[0]]
    for m in x.shape[1:-1]:
        split += [m // w, w]
    return x.reshape(*split, x.shape[-1]).sum(axis=tuple(2 + 2 * i for i in range(x.ndim - 2)))


def _pool(x, kind: str, w: int, pads):
    if kind == "max":
        return max_pool(x, w, pads)
    # Average over the real elements of each window only (a ceil-mode edge window is partial).
    count = _window_sum(jnp.ones((1, *x.shape[1:-1], 1), x.dtype), w, pads)
    return _window_sum(x, w, pads) / count


class CNN(nnx.Module):
    def __init__(self, in_shape: tuple[int, ...], classes: int, *, channels=(16, 32), kernel: int = 3,
                 stride: int = 1, padding: str = "same", pool: str = "max", pool_size: int = 2,
                 hidden: int = 64, rngs: nnx.Rngs):
        spatial, cin = tuple(in_shape[:-1]), in_shape[-1]
        d = len(spatial)
        self.pool, self.pool_size = pool, pool_size
        self.convs = nnx.List()
        self.conv_pads, self.pool_pads = [], []
        size = spatial
        for cout in channels:
            pads = tuple(conv_padding(n, kernel, stride, padding) for n in size)
            self.convs.append(Conv(cin, cout, kernel_size=(kernel,) * d, strides=(stride,) * d,
                                   padding=pads, rngs=rngs))
            new = tuple(conv_out(n, kernel, stride, sum(p)) for n, p in zip(size, pads))
            if min(new) < 1:
                raise ValueError(f"conv{len(self.convs)} with kernel {kernel}, stride {stride} and {padding} padding "
                                 f"does not fit its {'x'.join(map(str, size))} input")
            size = new
            self.conv_pads.append(pads)
            if pool != "none":
                pp = tuple(pool_padding(n, pool_size) for n in size)
                self.pool_pads.append(pp)
                size = tuple(pool_out(n, pool_size) for n in size)
            cin = cout
        flat = cin
        for n in size:
            flat *= n
        self.hidden = nnx.Linear(flat, hidden, rngs=rngs) if hidden else None
        self.head = nnx.Linear(hidden or flat, classes, rngs=rngs)

    def features(self, x):
        """Post-ReLU feature maps of each conv layer: list of (N, *spatial, C)."""
        maps = []
        for i, conv in enumerate(self.convs):
            x = jax.nn.relu(conv(x))
            maps.append(x)
            if self.pool != "none":
                x = _pool(x, self.pool, self.pool_size, self.pool_pads[i])
        return maps, x

    def __call__(self, x):
        _, x = self.features(x)
        x = x.reshape(x.shape[0], -1)
        if self.hidden is not None:
            x = jax.nn.relu(self.hidden(x))
        return self.head(x)


class MLP(nnx.Module):
    """One-hidden-layer baseline for the parameter-sharing comparison."""

    def __init__(self, in_features: int, width: int, classes: int, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(in_features, width, rngs=rngs)
        self.l2 = nnx.Linear(width, classes, rngs=rngs)

    def __call__(self, x):
        return self.l2(jax.nn.relu(self.l1(x.reshape(x.shape[0], -1))))


class MLPFamily(nnx.Module):
    """Several one-hidden-layer MLPs of different widths, trained side by side in one
    program; returns logits (M, B, classes), one slice per width."""

    def __init__(self, in_features: int, widths: tuple[int, ...], classes: int, *, rngs: nnx.Rngs):
        self.members = nnx.List([MLP(in_features, w, classes, rngs=rngs) for w in widths])

    def __call__(self, x):
        return jnp.stack([m(x) for m in self.members])


def layer_table(model: CNN, in_shape: tuple[int, ...], *, kernel: int, stride: int, padding: str) -> list[dict]:
    """Every layer's output shape (from jax.eval_shape), parameter count and FLOPs, and the
    formula's prediction for each conv/pool output, checked against the traced shape.
    `model` may be abstract (nnx.eval_shape): nothing here computes a value."""
    rows = []
    x = jax.ShapeDtypeStruct((1, *in_shape), jnp.float32)

    def shape_of(fn, arg):
        if isinstance(fn, nnx.Module):  # its parameters go in as (abstract) arguments
            graphdef, state = nnx.split(fn)
            return jax.eval_shape(lambda s, a: nnx.merge(graphdef, s)(a), state, arg)
        return jax.eval_shape(fn, arg)

    size = tuple(in_shape[:-1])
    rows.append({"layer": "input", "shape": list(in_shape), "params": 0, "flops": 0})
    for i, conv in enumerate(model.convs):
        pads = model.conv_pads[i]
        y = shape_of(conv, x)
        formula = [conv_out(n, kernel, stride, sum(p)) for n, p in zip(size, pads)]
        cin, cout = x.shape[-1], y.shape[-1]
        out_elems = math.prod(y.shape[1:-1])
        rows.append({"layer": f"conv{i + 1}", "shape": list(y.shape[1:]),
                     "params": math.prod(conv.kernel.shape) + math.prod(conv.bias.shape),
                     "flops": 2 * (kernel ** len(size)) * cin * cout * out_elems,
                     "kernel": kernel, "stride": stride, "padding": [sum(p) for p in pads],
                     "formula": formula, "formula_ok": formula == list(y.shape[1:-1])})
        x = y
        rows.append({"layer": f"relu{i + 1}", "shape": list(y.shape[1:]), "params": 0,
                     "flops": math.prod(y.shape[1:])})
        size = tuple(y.shape[1:-1])
        if model.pool != "none":
            pp = model.pool_pads[i]
            y = shape_of(partial(_pool, kind=model.pool, w=model.pool_size, pads=pp), x)
            formula = [pool_out(n, model.pool_size) for n in size]
            rows.append({"layer": f"{model.pool}pool{i + 1}", "shape": list(y.shape[1:]), "params": 0,
                         "flops": math.prod(y.shape[1:]) * model.pool_size ** len(size),
                         "kernel": model.pool_size, "stride": model.pool_size, "padding": [sum(p) for p in pp],
                         "formula": formula, "formula_ok": formula == list(y.shape[1:-1])})
            x = y
            size = tuple(y.shape[1:-1])
    flat = math.prod(x.shape[1:])
    rows.append({"layer": "flatten", "shape": [flat], "params": 0, "flops": 0})
    for name, lin in (("dense", model.hidden), ("logits", model.head)):
        if lin is None:
            continue
        n_in, n_out = lin.kernel.shape
        rows.append({"layer": name, "shape": [n_out], "params": int(n_in * n_out + n_out), "flops": 2 * n_in * n_out})
    return rows
