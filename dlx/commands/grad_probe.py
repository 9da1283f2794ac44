"""`dlx grad-probe`: how gradients travel through depth and time (options and config only)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from dlx.config import Common, choice, command, float_list, int_list, layer_count, nonneg_float, positive_int, str_list
from dlx.config import typed as _given
from dlx.errors import UsageError

# As dlx.models.mlp.ACTIVATION_NAMES / INITS and dlx.metrics.grads.probe_cell (no JAX here;
# tests/test_grad_probe.py checks that the lists agree).
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "linear")
INITS = ("standard", "glorot", "he")
CELLS = ("tanh", "relu", "linear", "gru", "lstm")
ARCHS = ("mlp", "rnn")
OPTIMIZERS = ("sgd", "adam")
DATASETS = ("digits", "mnist1d", "mnist", "fashion-mnist")
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3}

MLP_ONLY = ("depth", "activation", "init", "init_scale", "dataset", "data", "optimizer", "clip", "train_steps")
RNN_ONLY = ("cell", "spectral_radius", "seq_len")


@dataclass(frozen=True, kw_only=True)
class GradProbeConfig(Common):
    """`steps` (from the common options) is the number of training steps, --train-steps."""

    arch: str = "mlp"
    depth: tuple[int, ...] = (10,)
    width: int = 64
    activation: tuple[str, ...] = ("relu",)
    init: tuple[str, ...] = ("he",)
    init_scale: tuple[float, ...] = (1.0,)
    dataset: str = "digits"
    data: Optional[str] = None
    optimizer: str = "sgd"
    clip: float = 0.0
    cell: tuple[str, ...] = ("tanh",)
    spectral_radius: tuple[float, ...] = (1.0,)
    seq_len: int = 50

    def combinations(self) -> list[dict]:
        """Every combination of the listed settings, in the order the lists give them."""
        if self.arch == "rnn":
            return [{"cell": c, "spectral_radius": r} for c, r in itertools.product(self.cell, self.spectral_radius)]
        return [{"activation": a, "init": i, "init_scale": s, "depth": d}
                for d, a, i, s in itertools.product(self.depth, self.activation, self.init, self.init_scale)]


@command("grad-probe", task="dlx.tasks.grad_probe", aliases={"train_steps": "steps"},
         defaults={"steps": 0, "batch_size": 256, "lr": DEFAULT_LR["sgd"], "log_every": 10, "eval_every": 50},
         help="Measure vanishing and exploding gradients: per-layer gradient norms, activation statistics "
              "and saturation of a deep MLP on a real batch (--arch mlp), or ||dL/dh_t|| through time in a "
              "recurrent cell (--arch rnn); verdict vanishing / exploding / healthy on the first/last ratio. "
              "Comma lists sweep every combination; --train-steps repeats the probe during training, "
              "--clip shows global-norm clipping at work.")
def grad_probe(
    arch: Annotated[str, typer.Option(help="mlp (deep feed-forward net on a real batch) | rnn (recurrent cell through time).")] = "mlp",
    depth: Annotated[str, typer.Option(help="Hidden layers (comma list to sweep).")] = "10",
    width: Annotated[int, typer.Option(help="Units per hidden layer (MLP) or hidden size (RNN).")] = 64,
    activation: Annotated[str, typer.Option(help="sigmoid | tanh | relu | leaky_relu | gelu | linear (comma list to sweep).")] = "relu",
    init: Annotated[str, typer.Option(help="standard (U[+-1/sqrt(fan_in)]) | glorot (Glorot & Bengio 2010) | he (He et al. 2015); comma list to sweep.")] = "he",
    init_scale: Annotated[str, typer.Option(help="Multiply every initial weight by this (comma list to sweep); large values make gradients explode.")] = "1.0",
    dataset: Annotated[str, typer.Option(help="digits (built in) | mnist1d (generated) | mnist | fashion-mnist (--data). The probe batch is the first --batch-size training examples.")] = "digits",
    data: Annotated[Optional[str], typer.Option(help="IDX images file (labels beside it) or .npz, for mnist / fashion-mnist.")] = None,
    train_steps: Annotated[Optional[int], typer.Option(help="Train this many steps (same as --steps), probing every --eval-every steps. Default 0: probe the initial net only.")] = None,
    optimizer: Annotated[str, typer.Option(help="sgd | adam, for --train-steps. Default --lr: 0.1 for sgd, 1e-3 for adam.")] = "sgd",
    clip: Annotated[float, typer.Option(help="Clip the gradient's global norm to this during training (optax.clip_by_global_norm; 0: off).")] = 0.0,
    cell: Annotated[str, typer.Option(help="RNN: tanh | relu | linear | gru | lstm (comma list to sweep).")] = "tanh",
    spectral_radius: Annotated[str, typer.Option(help="RNN: largest |eigenvalue| of the recurrent matrix, per gate block (comma list to sweep).")] = "1.0",
    seq_len: Annotated[int, typer.Option(help="RNN: sequence length T; the loss reads h_T only.")] = 50,
    *,
    common: Common,
) -> GradProbeConfig:
    choice("--arch", arch, ARCHS)
    wrong = RNN_ONLY if arch == "mlp" else MLP_ONLY
    for name in wrong:
        if _given(name):
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} applies to --arch {'rnn' if arch == 'mlp' else 'mlp'} only")
    depths = int_list("--depth", depth)
    for d in depths:
        layer_count("--depth", d)
    positive_int("--width", width)
    activations = str_list("--activation", activation, ACTIVATIONS)
    inits = str_list("--init", init, INITS)
    scales = float_list("--init-scale", init_scale)
    choice("--dataset", dataset, DATASETS)
    choice("--optimizer", optimizer, OPTIMIZERS)
    nonneg_float("--clip", clip)
    cells = str_list("--cell", cell, CELLS)
    radii = float_list("--spectral-radius", spectral_radius)
    positive_int("--seq-len", seq_len)
    if arch == "rnn" and seq_len < 2:
        raise UsageError(f"--seq-len must be at least 2: a per-step decay is fitted over the steps back from T, got {seq_len}")
    steps = common.steps
    if train_steps is not None:
        if train_steps < 0:
            raise UsageError(f"--train-steps must be a non-negative integer, got {train_steps}")
        if _given("steps") and common.steps != train_steps:
            raise UsageError(f"--train-steps {train_steps} and --steps {common.steps} disagree (they are the same option)")
        steps = train_steps
    if arch == "rnn" and _given("steps"):
        raise UsageError("--steps / --train-steps apply to --arch mlp only (the RNN probe measures the initial cell)")
    if arch == "rnn":  # it never trains: training's options would be stored and do nothing
        for name in ("lr", "log_every", "eval_every", "devices"):
            if _given(name):
                raise UsageError(f"--{name.replace('_', '-')} acts during training, which the RNN probe does not do "
                                 "(it measures the initial cell)")
    if clip > 0 and steps == 0 and not common.resume:  # resumed: the saved run's steps count
        raise UsageError("--clip acts during training: add --train-steps N")
    if arch == "mlp" and steps == 0 and not common.resume:
        for name in ("optimizer", "lr", "log_every", "eval_every", "devices"):
            if _given(name):
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} acts during training: add --train-steps N (without it the probe measures the initial net)")
    lr = common.lr if _given("lr") else DEFAULT_LR[optimizer]
    common_fields = {**common.to_dict(), "steps": steps, "lr": lr}
    return GradProbeConfig(**common_fields, arch=arch, depth=depths, width=width, activation=activations,
                           init=inits, init_scale=scales, dataset=dataset, data=data, optimizer=optimizer,
                           clip=clip, cell=cells, spectral_radius=radii, seq_len=seq_len)
