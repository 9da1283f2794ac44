"""`dlx compare-rnn`: RNN, GRU and LSTM side by side on one task (options and config only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from dlx.config import Common, choice, command, copy_seq_len, given, int_list, layer_count, nonneg_float, positive_int, str_list
from dlx.errors import UsageError

# The names of dlx.tasks.sequence.TASKS, repeated here so that argument errors and --help
# never import JAX (a test keeps the two equal).
TASKS = ("text", "adding", "copy", "mnist1d")
CELLS = ("rnn", "gru", "lstm")
# Sequence length when --seq-len is not given. MNIST-1D signals have 40 steps, no choice.
DEFAULT_SEQ_LEN = {"text": 128, "adding": 100, "copy": 20, "mnist1d": 40}  # as dlx.tasks.sequence


@dataclass(frozen=True, kw_only=True)
class CompareRnnConfig(Common):
    task: str = "adding"
    cells: tuple[str, ...] = CELLS
    seq_lens: tuple[int, ...] = (100,)
    hidden: int = 64
    match_params: bool = False
    layers: int = 1
    seeds: int = 3
    rnn_activation: str = "tanh"
    clip: float = 1.0
    data: Optional[str] = None


@command("compare-rnn", task="dlx.tasks.compare_rnn", aliases={"seq_len": "seq_lens"},
         defaults={"steps": 600, "batch_size": 32, "lr": 1e-2, "log_every": 100, "eval_every": 200},
         help="Train a plain RNN, a GRU and an LSTM on the same task, data order and seeds (all seeds "
              "in one vmapped program), then test the textbook claims: parameters, speed, memory, long "
              "dependencies, accuracy. Mean, std and 95% interval over seeds; paired differences.")
def compare_rnn(
    task: Annotated[str, typer.Option(help="adding (mse) | copy (accuracy) | mnist1d (accuracy, 40 steps) | "
                                           "text (val_bpc; built-in corpus or --data).")] = "adding",
    cells: Annotated[str, typer.Option(help="Cells to compare, comma-separated: rnn, gru, lstm.")] = "rnn,gru,lstm",
    seq_len: Annotated[Optional[str], typer.Option(
        help="Sequence length, or a comma-separated list to sweep (25,50,100,200). "
             "Default: adding 100, copy 20, text 128, mnist1d 40 (its only length).")] = None,
    hidden: Annotated[int, typer.Option(help="Hidden units per layer (with --match-params: the most-gated "
                                             "cell's width; the others are sized to its parameter count).")] = 64,
    match_params: Annotated[bool, typer.Option(
        "--match-params", help="Give each cell the hidden width at which its WHOLE model (embedding, "
                               "recurrent layers, read-out) has the parameter count nearest the "
                               "most-gated cell's at --hidden.")] = False,
    layers: Annotated[int, typer.Option(help="Stacked recurrent layers.")] = 1,
    seeds: Annotated[int, typer.Option(help="Seeds per cell, trained together in one compiled program.")] = 3,
    rnn_activation: Annotated[str, typer.Option(help="Activation of the plain RNN: tanh | relu.")] = "tanh",
    clip: Annotated[float, typer.Option(help="Global gradient-norm clip (0: none).")] = 1.0,
    data: Annotated[Optional[str], typer.Option(help="UTF-8 text file for --task text ('-': stdin).")] = None,
    *,
    common: Common,
) -> CompareRnnConfig:
    choice("--task", task, TASKS)
    cell_list = str_list("--cells", cells, CELLS)
    cell_list = tuple(c for c in CELLS if c in cell_list)  # a fixed order: rnn, gru, lstm
    if seq_len is None:
        lens = (DEFAULT_SEQ_LEN[task],)
    else:
        lens = tuple(sorted(int_list("--seq-len", seq_len)))
    if task == "mnist1d" and lens != (40,):
        raise UsageError(f"--seq-len: MNIST-1D signals have 40 steps; got {seq_len!r} (leave --seq-len out)")
    if task == "adding" and lens[0] < 2:   # one marker in each half (copy takes T = 1, as train-lstm's)
        raise UsageError(f"--seq-len must be at least 2 for --task {task}, got {lens[0]}")
    if task == "copy":
        copy_seq_len("--seq-len", lens[-1])
    positive_int("--hidden", hidden)
    layer_count("--layers", layers)
    positive_int("--seeds", seeds)
    if match_params and len(cell_list) < 2:
        raise UsageError(f"--match-params sizes each cell to one parameter budget: give two or more --cells, got {cells!r}")
    choice("--rnn-activation", rnn_activation, ("tanh", "relu"))
    if "rnn" not in cell_list and given("rnn_activation"):
        raise UsageError("--rnn-activation applies to the plain RNN: add rnn to --cells")
    nonneg_float("--clip", clip)
    if data is not None and task != "text":
        raise UsageError(f"--data is for --task text (a text corpus); --task {task} generates its data")
    return CompareRnnConfig(**common.to_dict(), task=task, cells=cell_list, seq_lens=lens, hidden=hidden,
                            match_params=match_params, layers=layers, seeds=seeds,
                            rnn_activation=rnn_activation, clip=clip, data=data)
