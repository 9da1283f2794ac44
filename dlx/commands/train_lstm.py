"""`dlx train-lstm`: an LSTM (or GRU / RNN) on text or a long-range task (options and config only)."""


import dataclasses
import math
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from dlx.config import Common, choice, command, copy_seq_len, given, layer_count, nonneg_float, nonneg_int, positive_int
from dlx.errors import UsageError

TASKS = ("text", "adding", "copy", "mnist1d")   # as dlx.tasks.sequence.TASKS (no JAX here)
CELLS = ("lstm", "gru", "rnn")
TOKEN_TASKS = ("text", "copy")                  # the tasks whose inputs are embedded tokens

# Per-task defaults, chosen by measurement on a 2-core CPU (see the commit that set them).
# An option the user gives explicitly always wins.
TASK_DEFAULTS = {
    "text":    {"steps": 1500, "batch_size": 32, "lr": 3e-3, "eval_every": 500, "log_every": 100,
                "hidden": 128, "seq_len": 64},
    "adding":  {"steps": 2000, "batch_size": 32, "lr": 3e-3, "eval_every": 500, "log_every": 100,
                "hidden": 64, "seq_len": 100},
    "copy":    {"steps": 2000, "batch_size": 32, "lr": 3e-3, "eval_every": 500, "log_every": 100,
                "hidden": 64, "seq_len": 20},
    "mnist1d": {"steps": 2000, "batch_size": 64, "lr": 3e-3, "eval_every": 500, "log_every": 100,
                "hidden": 128, "seq_len": 40},
}
TEXT = TASK_DEFAULTS["text"]


@dataclass(frozen=True, kw_only=True)
class TrainLstmConfig(Common):
    task: str = "text"
    data: Optional[str] = None
    cell: str = "lstm"
    hidden: int = TEXT["hidden"]
    layers: int = 1
    embed: Optional[int] = None
    seq_len: int = TEXT["seq_len"]
    forget_bias: float = 1.0
    clip: float = 1.0
    temperature: float = 0.8
    prime: str = ""
    sample_len: int = 400
    from_run: Optional[str] = None


_given = given


@command("train-lstm", task="dlx.tasks.train_lstm", defaults={k: TEXT[k] for k in
                                                             ("steps", "batch_size", "lr", "eval_every", "log_every")},
         help="Train an LSTM written from its equations: a character-level language model (built-in corpus or "
              "--data FILE) with samples, bits per character and gate diagnostics, or a long-range task "
              "(--task adding | copy | mnist1d) against its memoryless baseline. Per-task defaults (the ones "
              "shown are text's) for --steps, --lr, --batch-size, --hidden, --seq-len.")
def train_lstm(
    task: Annotated[str, typer.Option(help="text (character LM) | adding | copy | mnist1d.")] = "text",
    data: Annotated[Optional[str], typer.Option(help="UTF-8 text file for --task text ('-' reads stdin; default: the built-in pydoc corpus).")] = None,
    cell: Annotated[str, typer.Option(help="lstm | gru | rnn (the cells of dlx.models.cells).")] = "lstm",
    hidden: Annotated[int, typer.Option(help="Hidden units per layer (default per task: text 128, adding/copy 64, mnist1d 128).")] = TEXT["hidden"],
    layers: Annotated[int, typer.Option(help="Stacked recurrent layers.")] = 1,
    embed: Annotated[Optional[int], typer.Option(help="Embedding size for token inputs (default: the vocabulary size).")] = None,
    seq_len: Annotated[int, typer.Option(help="Sequence length T (default per task: text 64, adding 100, copy 20 (input T+20), mnist1d 40).")] = TEXT["seq_len"],
    forget_bias: Annotated[float, typer.Option(help="Added to the LSTM forget-gate bias at init (remember by default).")] = 1.0,
    clip: Annotated[float, typer.Option(help="Clip the gradient's global norm to this (0: off).")] = 1.0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0: always the most likely character).")] = 0.8,
    prime: Annotated[str, typer.Option(help="Text the samples start with.")] = "",
    sample_len: Annotated[int, typer.Option(help="Characters generated after --prime in each sample (0: no samples).")] = 400,
    from_run: Annotated[Optional[str], typer.Option("--from", help="Sample from the text model saved in this run directory (with --steps 0); nothing is trained or written.")] = None,
    *,
    common: Common,
) -> TrainLstmConfig:
    choice("--task", task, TASKS)
    choice("--cell", cell, CELLS)
    if from_run is not None:
        if common.steps != 0:
            raise UsageError("--from samples from a saved run without training: add --steps 0 "
                             "(to train a saved run further, use --resume RUN_DIR)")
        if common.resume is not None:
            raise UsageError("--from and --resume contradict each other: --from samples, --resume trains on")
        if sample_len == 0:
            raise UsageError("--from samples from a saved run, and --sample-len 0 asks for no sample")
        if data is not None or task != "text":
            raise UsageError("--from uses the saved run's model and vocabulary; --data and --task do not apply")
        # The model's own settings come from the saved run, and nothing is written: an option
        # of either kind would be ignored, so it is refused.
        ignored = [k for k in ("cell", "hidden", "layers", "embed", "seq_len", "forget_bias", "clip", "batch_size",
                               "lr", "log_every", "eval_every", "out", "force", "devices") if _given(k)]
        if ignored:
            flag = "--" + ignored[0].replace("_", "-")
            raise UsageError(f"--from samples the saved run's model and writes nothing; {flag} does not apply "
                             "(--prime, --temperature, --sample-len and --seed do)")
    # Options left at their defaults take the task's (a resumed run's saved config wins anyway).
    defaults = TASK_DEFAULTS[task]
    common = dataclasses.replace(common, **{k: defaults[k] for k in ("steps", "batch_size", "lr", "eval_every",
                                                                      "log_every") if not _given(k)})
    hidden = hidden if _given("hidden") else defaults["hidden"]
    seq_len = seq_len if _given("seq_len") else defaults["seq_len"]
    positive_int("--hidden", hidden)
    layer_count("--layers", layers)
    if embed is not None:
        positive_int("--embed", embed)
    positive_int("--seq-len", seq_len)
    if task == "mnist1d" and seq_len != 40:
        raise UsageError(f"mnist1d signals have 40 steps; --seq-len {seq_len} does not apply")
    if task == "adding" and seq_len < 2:
        raise UsageError(f"--seq-len must be at least 2 for the adding task (one marker per half), got {seq_len}")
    if task == "copy":
        copy_seq_len("--seq-len", seq_len)
    if not math.isfinite(forget_bias):
        raise UsageError(f"--forget-bias must be a finite number, got {forget_bias}")
    if cell != "lstm" and _given("forget_bias"):
        raise UsageError(f"--forget-bias applies to --cell lstm only (a {cell} has no forget gate)")
    nonneg_float("--clip", clip)
    nonneg_float("--temperature", temperature)
    nonneg_int("--sample-len", sample_len)
    if embed is not None and task not in TOKEN_TASKS:
        raise UsageError(f"--embed applies to token inputs (--task text or copy); the {task} task's inputs are "
                         "real numbers")
    # Options that shape the samples do nothing where none are drawn: refused, not ignored.
    text_only = [f for f, typed in (("--prime", _given("prime", outside=bool(prime))), ("--data", data is not None),
                                    ("--temperature", _given("temperature", outside=False)),
                                    ("--sample-len", _given("sample_len", outside=False))) if typed]
    if task != "text" and text_only:
        raise UsageError(f"{text_only[0]} applies to --task text only")
    # Typed, not saved: a run resumed keeps what it was made with (--resume fills the rest).
    typed_prime = _given("prime", outside=bool(prime))
    if sample_len == 0 and (typed_prime or _given("temperature", outside=False)):
        raise UsageError(f"{'--prime' if typed_prime else '--temperature'} shapes the samples, and --sample-len 0 "
                         "asks for none")
    return TrainLstmConfig(**common.to_dict(), task=task, data=data, cell=cell, hidden=hidden, layers=layers,
                           embed=embed, seq_len=seq_len, forget_bias=forget_bias, clip=clip,
                           temperature=temperature, prime=prime, sample_len=sample_len, from_run=from_run)
