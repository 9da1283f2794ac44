"""The one place that writes: JSON Lines for programs, Rich on stderr for people.

Every record goes through `Output.emit`, which fans it out (as CLU's metric writers do)
to stdout (only with --json), to the run directory's metrics.jsonl, and, for people, to
the Rich console on stderr. Nothing else in dlx prints.

Record format (schema 1): one JSON object per line, always with `schema`, `event`,
`run` and `command`; `event` is one of config, train, eval, summary, error (and
`info` for one-off results such as a shape table). See README "JSON Lines".
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from dlx import runtime
from dlx.errors import LocalFailure
from dlx.runtime import to_devnull

SCHEMA = 1


class StdoutClosed(Exception):
    """The reader of our stdout went away (`dlx ... --json | head -1`), or of our stderr
    (`dlx ... 2>&1 | head -3`): raised at the next output, or, within
    `Output.deferring_close` (training), left to the caller: fit writes the step's records
    to metrics.jsonl and a checkpoint, then stops, as for a signal."""


def jsonable(x: Any) -> Any:
    """Plain-Python copy of `x` that json can write: numpy/jax scalars and arrays become
    floats and lists, non-finite floats become null (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "tolist"):  # numpy / jax arrays and scalars
        return jsonable(x.tolist())
    return str(x)


def fmt(v: Any) -> str:
    """Short human form of a metric value; "-" for none (a time of --steps 0, which read
    "None" in the results table)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.3e}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x) for x in v[:8]) + (", …" if len(v) > 8 else "") + "]"
    return str(v)


class Output:
    def __init__(self, *, command: str, json_mode: bool, quiet: bool):
        self._held: list | None = None   # see hold()
        self.command = command
        self.json_mode = json_mode
        self.console = Console(stderr=True, quiet=quiet, highlight=False)
        self.console.on_broken_pipe = self._stderr_closed   # Rich's own exits with code 1
        self.run_id: str | None = None
        self.closed = False   # a reader of stdout or stderr went away
        self._deferring = 0
        self._metrics_file = None
        self._progress = None
        self._logged_through: int | None = None   # see logged_through()

    # ---- wiring -------------------------------------------------------------------
    def attach(self, run_id: str, metrics_path: str | None, append: bool = False) -> None:
        self.run_id = run_id
        if metrics_path is not None:
            self._metrics_file = open(metrics_path, "a" if append else "w", encoding="utf-8")

    def close(self) -> None:
        self.stop_progress()
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None

    @contextlib.contextmanager
    def logged_through(self, step: int | None):
        """Within: records of steps up to `step` are not written again (a resumed sweep's
        model trains again to where it diverged before; the log holds those records, its
        own and untagged ones its evaluations wrote, such as samples)."""
        self._logged_through = step
        try:
            yield
        finally:
            self._logged_through = None

    def _logged(self, record: dict) -> bool:
        step = record.get("step")
        return self._logged_through is not None and isinstance(step, int) and step <= self._logged_through

    @contextlib.contextmanager
    def deferring_close(self):
        """Within: a reader that leaves is only noted (`closed`), for the caller to finish
        what it writes and stop there."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    def _check_open(self) -> None:
        if self.closed and not self._deferring:
            raise StdoutClosed

    # ---- records ------------------------------------------------------------------
    def emit(self, event: str, record: dict, to_file: bool = True) -> dict:
        self._check_open()
        full = {"schema": SCHEMA, "event": event, "run": self.run_id, "command": self.command}
        full.update(jsonable(record))
        line = json.dumps(full, separators=(",", ":"))
        if runtime.left_behind() or self._logged(full):
            return full
        if to_file and self._metrics_file is not None:
            self._metrics_file.write(line + "\n")
            self._metrics_file.flush()
        if self.json_mode:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                to_devnull(sys.stdout.fileno())
                self.json_mode = False
                self.closed = True
                self._check_open()
            except OSError as e:   # a full disk, a failing device: the run cannot report on
                to_devnull(sys.stdout.fileno())
                self.json_mode = False   # the error record goes to metrics.jsonl alone
                what = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
                raise LocalFailure(f"cannot write the JSON records to stdout: {what}") from e
        return full

    # ---- people -------------------------------------------------------------------
    def _stderr_closed(self) -> None:
        self.console.quiet = True
        to_devnull(sys.stderr.fileno())
        self.closed = True
        self._check_open()

    def hold(self) -> None:
        """Keep what is for people until release(): a resumed run's header and tables wait
        until its checkpoint is read, so a damaged one is the one-line error it should be."""
        self._held = []

    def release(self, discard: bool = False) -> None:
        held, self._held = self._held, None
        if held and not discard:
            for what, kw in held:
                self._print(*what, **kw)

    def _print(self, *what, **kw) -> None:
        self._check_open()
        if runtime.left_behind():
            return
        if self._held is not None:
            self._held.append((what, kw))
            return
        try:
            self.console.print(*what, **kw)
        except BrokenPipeError:
            self._stderr_closed()

    # Messages are never broken into lines by dlx: Rich wraps at the terminal's width, and at
    # 80 columns where stderr is a file or pipe, which split paths and warnings in logs
    # ("... (seed" / "0)": a grep for "seed 0" missed it). A terminal wraps them itself.
    def info(self, msg: str) -> None:
        self._print(msg, soft_wrap=True)

    def warn(self, msg: str) -> None:
        self._print(f"[yellow]warning:[/] {msg}", soft_wrap=True)

    def error_line(self, msg: str) -> None:
        # Errors are shown even with --quiet: one line, the only thing a script sees.
        console = Console(stderr=True, highlight=False)
        console.on_broken_pipe = lambda: to_devnull(sys.stderr.fileno())  # no reader left: the record has it
        try:
            console.print(f"[red]error:[/] {msg}", soft_wrap=True)
        except BrokenPipeError:
            to_devnull(sys.stderr.fileno())

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        t = Table(title=title, title_justify="left", header_style="bold")
        for i, c in enumerate(columns):
            t.add_column(c, justify="left" if i == 0 else "right")
        for r in rows:
            t.add_row(*[v if isinstance(v, str) else fmt(v) for v in r])
        self._print(t)

    def kv_table(self, title: str, values: dict) -> None:
        self.table(title, ["metric", "value"], [[k, v] for k, v in values.items()])

    # ---- progress -----------------------------------------------------------------
    def start_progress(self, description: str, total: int, completed: int = 0) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.stop_progress()
        self.release()
        if not self.console.is_terminal:
            return  # no live bar in logs and pipes: train/eval lines carry the progress
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console, transient=not self.console.is_terminal,
        )
        self._task = self._progress.add_task(description, total=total, completed=completed, metrics="")
        self._progress.start()

    def update_progress(self, completed: int, metrics: dict | None = None) -> None:
        if self._progress is None:
            return
        text = "  ".join(f"{k} {fmt(v)}" for k, v in (metrics or {}).items())
        self._progress.update(self._task, completed=completed, metrics=text)

    def stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
