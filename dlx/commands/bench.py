"""`dlx bench`: time the commands' own training steps (options and config only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Optional

import typer

from dlx.commands.train_gan import RING
from dlx.config import choice, command, given, nonneg_int, positive_int
from dlx.errors import UsageError

WORKLOADS = ("lstm", "gru", "rnn", "dcgan", "cnn")   # the PyTorch reference workloads (default)
SMALL = ("ring8", "adding")   # steps small enough that dispatch, not arithmetic, sets their speed
# The shape options each applies to (--batch applies to all): a typed one that none of the
# chosen workloads reads is refused, as other commands refuse options that do not apply.
SHAPE_OPTIONS = {"seq": ("lstm", "gru", "rnn"), "hidden": ("lstm", "gru", "rnn"),
                 "embed": ("lstm", "gru", "rnn"), "vocab": ("lstm", "gru", "rnn"), "width": ("dcgan",),
                 "g_fakes": ("dcgan", "ring8")}


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    command: str = "bench"
    workloads: tuple[str, ...] = WORKLOADS
    batch: Optional[int] = None
    seq: int = 128
    hidden: int = 256
    embed: int = 64
    vocab: int = 65
    width: int = 64
    g_fakes: Optional[str] = None
    steps: int = 30
    warmup: int = 5
    scan: int = 10
    seed: int = 0
    seeds: int = 1
    json: bool = False
    quiet: bool = False
    out: Optional[str] = None
    devices: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


MAX_VOCAB = 65_536


@command("bench", task="dlx.tasks.bench", defaults={}, common=False,
         help="Time one training step of each workload (the very step functions the commands train with): "
              "compile time, ms/step, examples/s, GFLOP/s and the fraction of this device's matmul peak.")
def bench(
    workloads: Annotated[Optional[list[str]], typer.Argument(help=f"Any of: {' '.join(WORKLOADS + SMALL)} (default: {' '.join(WORKLOADS)}).",
                                                             show_default=False)] = None,
    batch: Annotated[Optional[int], typer.Option(help="Batch size (default per workload: 32 for lstm/gru/rnn/adding, 64 dcgan, 128 cnn/ring8).")] = None,
    seq: Annotated[int, typer.Option(help="Sequence length (recurrent workloads).")] = 128,
    hidden: Annotated[int, typer.Option(help="Recurrent units.")] = 256,
    embed: Annotated[int, typer.Option(help="Embedding width.")] = 64,
    vocab: Annotated[int, typer.Option(help="Vocabulary size.")] = 65,
    width: Annotated[int, typer.Option(help="Base channel count of the DCGAN.")] = 64,
    g_fakes: Annotated[Optional[str], typer.Option(help="The GAN steps' generator update (train-gan --g-fakes): fresh | reuse "
                                                        "(default: dcgan reuse, as the PyTorch reference step; ring8 fresh, as train-gan).",
                                                   show_default=False)] = None,
    steps: Annotated[int, typer.Option(help="Timed steps.")] = 30,
    warmup: Annotated[int, typer.Option(help="Untimed steps first.")] = 5,
    scan: Annotated[int, typer.Option(help="Also time the loop's form: this many steps per compiled call (0: skip).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed for the random weights and data.")] = 0,
    seeds: Annotated[int, typer.Option(help="Time N models vmapped in one program, as --seeds N trains them.")] = 1,
    json: Annotated[bool, typer.Option("--json", help="JSON Lines on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Nothing for people on stderr.")] = False,
) -> BenchConfig:
    names = tuple(workloads) if workloads else WORKLOADS
    for w in names:
        choice("WORKLOAD", w, WORKLOADS + SMALL)
    if len(set(names)) != len(names):
        raise UsageError(f"WORKLOAD listed twice: {' '.join(names)}")
    for name, readers in SHAPE_OPTIONS.items():
        if given(name, outside=False) and not set(readers) & set(names):
            raise UsageError(f"--{name.replace('_', '-')} applies to {', '.join(readers)} only, not to {' '.join(names)}")
    if batch is not None:
        positive_int("--batch", batch)
        if "ring8" in names and batch % RING["pack"]:
            raise UsageError(f"--batch {batch} must be a multiple of {RING['pack']} for ring8 (its discriminator "
                             f"judges packs of {RING['pack']}, as train-gan's does)")
    if g_fakes is not None:
        choice("--g-fakes", g_fakes, ("fresh", "reuse"))
    for n, v in (("--seq", seq), ("--hidden", hidden), ("--embed", embed), ("--vocab", vocab),
                 ("--width", width), ("--steps", steps)):
        positive_int(n, v)
    if vocab > MAX_VOCAB:   # the synthetic corpus's characters are chr(0x41 + i)
        raise UsageError(f"--vocab {vocab} is above {MAX_VOCAB:,} (the synthetic corpus has one character per entry)")
    nonneg_int("--warmup", warmup)
    nonneg_int("--scan", scan)
    nonneg_int("--seed", seed)
    positive_int("--seeds", seeds)
    return BenchConfig(workloads=names, batch=batch, seq=seq, hidden=hidden, embed=embed, vocab=vocab,
                       width=width, g_fakes=g_fakes, steps=steps, warmup=warmup, scan=scan, seed=seed, seeds=seeds,
                       json=json, quiet=quiet)
