"""Frozen configs, option validation, and the `@command` decorator every subcommand uses.

Import-light on purpose (stdlib + typer only): argument errors and `--help` must never
load JAX. A subcommand module declares only its own options; `@command` adds the common
ones (seed, steps, batch size, ...) to its signature, resolves all of them to a frozen
config, validates it, and hands it to the heavy half (`dlx.tasks.<name>.run`), which is
imported only then.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Optional

import typer

from dlx.errors import RunFailure, UsageError


@dataclass(frozen=True, kw_only=True)
class Common:
    """Options shared by every training command."""

    command: str
    seed: int = 0
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    log_every: int = 100
    eval_every: int = 500
    json: bool = False
    quiet: bool = False
    out: Optional[str] = None
    resume: Optional[str] = None
    force: bool = False
    devices: int = 1
    coordinator: Optional[str] = None
    num_processes: int = 1
    process_id: int = 0

    def __post_init__(self):
        nonneg_int("--seed", self.seed)
        nonneg_int("--steps", self.steps)
        positive_int("--batch-size", self.batch_size)
        positive_float("--lr", self.lr)
        positive_int("--log-every", self.log_every)
        positive_int("--eval-every", self.eval_every)
        positive_int("--devices", self.devices)
        positive_int("--num-processes", self.num_processes)
        nonneg_int("--process-id", self.process_id)
        if self.process_id >= self.num_processes:
            raise UsageError(f"--process-id {self.process_id} must be below --num-processes {self.num_processes}")
        if self.num_processes > 1 and not self.coordinator:
            raise UsageError("--num-processes > 1 needs --coordinator HOST:PORT (process 0's address)")
        if self.coordinator:
            host, sep, port = self.coordinator.rpartition(":")
            if not (sep and host and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
                raise UsageError(f"--coordinator must be HOST:PORT with a port from 1 to 65535, got {self.coordinator!r}")
        if self.coordinator and self.num_processes == 1:
            raise UsageError("--coordinator (or DLX_COORDINATOR) joins a multi-host run: give --num-processes N > 1 too")
        if self.resume is not None and self.force:
            raise UsageError("--resume and --force contradict each other: --resume continues a run, --force replaces it")
        for flag, path in (("--out", self.out), ("--resume", self.resume)):
            if path is not None and not path.strip():
                raise UsageError(f"{flag} must name a directory, got an empty string")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- validators: each raises UsageError naming the option and what it expects ----------

# Counts, sizes and seeds reach the compiled programs as int32 (a step index, a PRNG seed:
# with 64-bit types off, seed 2**32 + 5 drew seed 5's numbers), and rates as float32.
INT_MAX = 2 ** 31 - 1
FLOAT_MAX = 3.4028234663852886e38


def _int_in_range(name: str, v: int) -> int:
    if v > INT_MAX:
        raise UsageError(f"{name} must be at most {INT_MAX}, got {v}")
    return v


def positive_int(name: str, v: int) -> int:
    if not isinstance(v, int) or v < 1:
        raise UsageError(f"{name} must be a positive integer, got {v}")
    return _int_in_range(name, v)


# Host memory one layer of a model holds as Python objects before anything is compiled
# (modules, variables, their metadata): 5.4 KiB a layer for a 400-layer LSTM against a
# 100-layer one (tracemalloc), 30 KiB at the peak of building it. Widths do not enter.
LAYER_HOST_BYTES = 5 * 1024


def layer_count(name: str, v: int) -> int:
    """A positive count of stacked layers that this machine's memory could build at all:
    --layers 2147483647 filled the memory (4 GB in 3 s) until the system killed the
    process, without a word. Sizes, not input: RunFailure, exit 1, as other sizes."""
    positive_int(name, v)
    try:
        host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):   # no such figure here: no check
        return v
    if host > 0 and v * LAYER_HOST_BYTES > host:   # sysconf says -1 where it does not know
        raise RunFailure(f"out of memory ({v * LAYER_HOST_BYTES / 2 ** 30:.1f} GiB requested to build {name} {v}, "
                         f"this machine has {host / 2 ** 30:.1f} GiB); try fewer layers")
    return v


def nonneg_int(name: str, v: int) -> int:
    if not isinstance(v, int) or v < 0:
        raise UsageError(f"{name} must be a non-negative integer, got {v}")
    return _int_in_range(name, v)


# The copy task's input is T + 20 steps long (10 symbols, T - 1 blanks, a delimiter, 10
# blanks for the answer; dlx.tasks.sequence), and lengths reach the programs as int32.
COPY_EXTRA_STEPS = 20


def copy_seq_len(name: str, v: int) -> int:
    if v > INT_MAX - COPY_EXTRA_STEPS:
        raise UsageError(f"{name} {v}: the copy task's input is T + {COPY_EXTRA_STEPS} steps long, "
                         f"so T must be at most {INT_MAX - COPY_EXTRA_STEPS}")
    return v


def positive_float(name: str, v: float) -> float:
    if not math.isfinite(v) or v <= 0 or v > FLOAT_MAX:
        raise UsageError(f"{name} must be a finite number > 0 (float32: at most 3.4e38), got {v}")
    return v


def nonneg_float(name: str, v: float) -> float:
    if not math.isfinite(v) or v < 0 or v > FLOAT_MAX:
        raise UsageError(f"{name} must be a finite number >= 0 (float32: at most 3.4e38), got {v}")
    return v


def unit_float(name: str, v: float, *, open_low: bool = False, open_high: bool = False) -> float:
    ok = math.isfinite(v) and (v > 0 if open_low else v >= 0) and (v < 1 if open_high else v <= 1)
    if not ok:
        raise UsageError(f"{name} must lie in {'(' if open_low else '['}0, 1{')' if open_high else ']'}, got {v}")
    return v


def choice(name: str, v: str, allowed: tuple[str, ...] | list[str]) -> str:
    if v not in allowed:
        raise UsageError(f"{name} must be one of {', '.join(allowed)}; got {v!r}")
    return v


def str_list(name: str, text: str, allowed: tuple[str, ...] | list[str] | None = None,
             unique: bool = True) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(","))
    if not any(items):
        raise UsageError(f"{name} needs at least one value, got {text!r}")
    if not all(items):
        raise UsageError(f"{name} has an empty item (two commas or a comma at an end): {text!r}")
    if allowed is not None:
        for s in items:
            choice(name, s, allowed)
    if unique and len(set(items)) != len(items):
        raise UsageError(f"{name} lists a value twice: {text!r}")
    return items


def int_list(name: str, text: str, unique: bool = True) -> tuple[int, ...]:
    """Comma-separated positive integers; unique unless the list is per layer (--channels)."""
    out = []
    for s in str_list(name, text, unique=unique):
        try:
            out.append(int(s))
        except ValueError:
            raise UsageError(f"{name} must be a comma-separated list of positive integers, got {text!r}") from None
        positive_int(name, out[-1])
    if unique and len(set(out)) != len(out):   # 10,010 spells one value twice
        raise UsageError(f"{name} lists a value twice: {text!r}")
    return tuple(out)


def float_list(name: str, text: str, check=positive_float) -> tuple[float, ...]:
    out = []
    for s in str_list(name, text):
        try:
            out.append(float(s))
        except ValueError:
            raise UsageError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None
        check(name, out[-1])
    if len(set(out)) != len(out):              # 1,1.0 spells one value twice
        raise UsageError(f"{name} lists a value twice: {text!r}")
    return tuple(out)


def given(name: str, *, outside: bool = True) -> bool:
    """Whether the user typed option `name` rather than leaving its default, so a command
    can resolve other defaults from it (per-dataset, per-task). `outside`: the answer when
    there is no command line (a direct call)."""
    try:  # Typer >= 0.16 vendors click: its context is not click's.
        from typer._click.core import ParameterSource
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older Typer uses click itself
        from click import get_current_context
        from click.core import ParameterSource
    ctx = get_current_context(silent=True)
    if ctx is None:
        return outside
    src = ctx.get_parameter_source(name)
    return src is not None and src != ParameterSource.DEFAULT


def typed(name: str) -> bool:
    """given(name), False for a direct call (tests): what a command validates as typed."""
    return given(name, outside=False)


# ---- the common options, declared once ------------------------------------------------

def _common_parameters(defaults: dict) -> list[inspect.Parameter]:
    P = inspect.Parameter
    KW = P.KEYWORD_ONLY

    def opt(name, typ, default, help, *flags, **kw):
        return P(name, KW, default=default,
                 annotation=Annotated[typ, typer.Option(*flags, help=help, rich_help_panel="Common options", **kw)])

    def dist(name, typ, default, help, *flags, **kw):
        return P(name, KW, default=default,
                 annotation=Annotated[typ, typer.Option(*flags, help=help, rich_help_panel="Multi-host", **kw)])

    d = defaults
    return [
        opt("seed", int, d.get("seed", 0), "Seed for everything: init, data order, noise.", "--seed"),
        opt("steps", int, d["steps"], "Training steps.", "--steps"),
        opt("batch_size", int, d["batch_size"], "Examples per step.", "--batch-size"),
        opt("lr", float, d["lr"], "Learning rate.", "--lr"),
        opt("log_every", int, d.get("log_every", 100), "Steps between `train` records.", "--log-every"),
        opt("eval_every", int, d.get("eval_every", 500), "Steps between evaluations and checkpoints.", "--eval-every"),
        opt("json", bool, False, "Write JSON Lines records to stdout (people's output stays on stderr).", "--json"),
        opt("quiet", bool, False, "No output for people on stderr (errors still show).", "--quiet", "-q"),
        opt("out", Optional[str], None, "Run directory (default: runs/<command>-<date>-<time>-<id>).", "--out"),
        opt("resume", Optional[str], None, "Continue the run saved in this directory.", "--resume"),
        opt("force", bool, False, "Overwrite an existing run directory given with --out.", "--force"),
        opt("devices", int, 1, "Local devices to spread each batch over (data parallel).", "--devices"),
        dist("coordinator", Optional[str], None, "Multi-host: address HOST:PORT of process 0.", "--coordinator",
             envvar="DLX_COORDINATOR"),
        dist("num_processes", int, 1, "Multi-host: number of processes.", "--num-processes",
             envvar="DLX_NUM_PROCESSES"),
        dist("process_id", int, 0, "Multi-host: this process's index (0 writes the outputs).", "--process-id",
             envvar="DLX_PROCESS_ID"),
    ]


COMMON_NAMES = [f.name for f in dataclasses.fields(Common) if f.name != "command"]

# name -> (typer callback, help); filled in by @command, read by dlx.cli.
REGISTRY: dict[str, tuple[Callable, str]] = {}
# Per command, the config fields an option of another name sets (grad-probe's --train-steps
# sets steps, compare-rnn's --seq-len seq_lens): messages name the option typed.
OPTION_NAMES: dict[str, dict[str, str]] = {}


# Options a resumed run takes from this invocation, never from the saved run.
_INVOCATION = {"json", "quiet", "out", "resume", "force", "devices", "coordinator", "num_processes", "process_id"}


def _saved_defaults(kwargs: dict, explicit: set[str], params, path: str) -> None:
    """--resume DIR: the options left out take the saved run's values before the command
    validates them, so that one typed anew is checked against the run it joins (train-gan
    --resume <a ring8 run> --pack 4 was refused as if the run were the digits default).
    Only same-named options of the same type; the session's merge decides the rest."""
    from dlx.rundir import read_config

    try:
        old = read_config(path)["config"]
    except UsageError:
        return  # the session reports the missing, foreign or unreadable directory
    for p in params:
        if p.name in explicit or p.name in _INVOCATION or p.name not in old or p.name not in kwargs:
            continue
        saved, default = old[p.name], p.default
        same = (type(saved) is type(default) or (isinstance(default, float) and type(saved) is int)
                or (default is None and isinstance(saved, (str, int, float))))
        if same:
            kwargs[p.name] = saved


def command(name: str, *, task: str, defaults: dict, help: str, common: bool = True,
            aliases: dict[str, str] | None = None):
    """Register a subcommand.

    The decorated function takes the command's own options plus `common: Common` and
    returns its frozen config (validating as it goes). `task` names the module whose
    `run(cfg, run)` does the work; it is imported only after validation succeeded.
    `aliases`: own options that set a config field of another name (grad-probe's
    --train-steps is --steps); typing one counts as typing the other.
    """
    aliases = aliases or {}

    def deco(fn: Callable[..., Any]) -> Callable:
        hints = typing.get_type_hints(fn, include_extras=True)  # resolve string annotations
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(fn).parameters.values() if p.name != "common"]
        extra = _common_parameters(defaults) if common else []
        own_names = {p.name for p in own}

        @functools.wraps(fn)
        def callback(**kwargs):
            # Typed on the command line, even at its default value: a resumed run must
            # see `--steps 1000` (1000 being the default) as a request to train on.
            values = dict(kwargs)
            explicit = {p.name for p in own + extra if given(p.name, outside=values[p.name] != p.default)}
            explicit |= {aliases[a] for a in explicit & set(aliases)}
            if values.get("resume"):
                _saved_defaults(kwargs, explicit, own + extra, values["resume"])
            if common:
                c = {k: kwargs.pop(k) for k in COMMON_NAMES}
                cfg = fn(common=Common(command=name, **c), **kwargs)
            else:
                cfg = fn(**kwargs)
            from dlx.session import execute  # heavy imports start here

            execute(cfg, task, explicit=explicit)

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + extra
        callback.__signature__ = inspect.Signature(params)
        callback.__annotations__ = {p.name: p.annotation for p in params}
        assert not common or not (own_names & set(COMMON_NAMES)), f"{name} redeclares a common option"
        REGISTRY[name] = (callback, help)
        OPTION_NAMES[name] = {field: option for option, field in aliases.items()}
        return fn

    return deco
