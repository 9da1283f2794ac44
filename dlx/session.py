"""One run of one command: resume handling, the run directory, records, exit codes.

`execute` is called by every subcommand with its validated config and the name of its
task module. The task loads and validates its data, then calls `run.start()` (which is
when the run directory first appears), trains through `dlx.train.fit`, and ends with
`run.finish(summary)`.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
import traceback

from dlx import runtime
from dlx.config import OPTION_NAMES
from dlx.errors import SMALLER, DlxError, LocalFailure, RunFailure, UsageError
from dlx.output import Output, StdoutClosed, fmt
from dlx.rundir import RunDir, last_record_hash, new_run_id, read_config


def _multi_host(cfg) -> bool:
    """Whether this is one process of a multi-host run (bench has no such options)."""
    return getattr(cfg, "num_processes", 1) > 1


# Settings a resumed run may be given anew (training longer, logging differently, a new host).
GROWABLE = {"steps", "log_every", "coordinator", "process_id"}


def _merge_resume(cfg, explicit: set[str]):
    """Continue a saved run: its config wins (also over defaults a command resolves from
    other options); only output options, and GROWABLE ones typed on the command line, are
    taken from this invocation."""
    saved = read_config(cfg.resume)
    old = saved["config"]
    if old.get("command") != cfg.command:
        raise UsageError(f"--resume {cfg.resume}: that run was made by `dlx {old.get('command')}`, not `dlx {cfg.command}`")
    if cfg.out and os.path.realpath(cfg.out) != os.path.realpath(cfg.resume):
        raise UsageError(f"--out {cfg.out} and --resume {cfg.resume} differ; a resumed run writes into "
                         "its own directory (leave --out out)")
    if "steps" in explicit and isinstance(old.get("steps"), int) and cfg.steps < old["steps"]:
        raise UsageError(f"--resume {cfg.resume}: --steps {cfg.steps} is fewer than the saved run's "
                         f"{old['steps']}; a resumed run can only train on (leave --steps out to finish it)")
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    merged = {}
    for name, field in fields.items():
        cur = getattr(cfg, name)
        if name in ("json", "quiet", "out", "resume", "force") or (name in explicit and name in GROWABLE):
            merged[name] = cur
            continue
        # A run that predates an option ran as its default does (an option is added with the
        # default that keeps the earlier behaviour): a typed value that differs would change
        # the run partway, e.g. train-gan --g-fakes.
        saved_val = old[name] if name in old else field.default
        if saved_val is dataclasses.MISSING:
            merged[name] = cur
            continue
        val = tuple(saved_val) if isinstance(cur, tuple) and isinstance(saved_val, list) else saved_val
        if name == "data":  # the same file, however it is reached from here
            val, cur = _data_path(val), _data_path(cur)
        if name in explicit and val != cur:
            flag = "--" + OPTION_NAMES.get(cfg.command, {}).get(name, name).replace("_", "-")
            raise UsageError(f"--resume {cfg.resume}: {flag} {_shown(cur)} differs from the saved run's {_shown(val)}; "
                             "a resumed run keeps its settings (only --steps may grow)")
        merged[name] = val
    merged["out"] = cfg.resume
    merged = type(cfg)(**merged)
    summary, trained, ended, saved_steps = _progress(cfg.resume)
    if summary is not None and getattr(merged, "steps", 0) <= (old.get("steps") or 0):
        raise _Complete(summary)
    # Without any checkpoint, a run that never ended is trained again from step 0, to the
    # same numbers, its old records taken out (Run._drop_stale_records): it died before its
    # first checkpoint landed (killed while Orbax wrote it, as on an H200), or its
    # checkpoints were deleted. One that ended had a checkpoint at its end: given a larger
    # --steps, it would train its first steps again under another learning-rate schedule.
    if trained and ended and not saved_steps:
        raise UsageError(f"--resume {cfg.resume}: the run has trained (metrics.jsonl holds its steps) but has no "
                         f"checkpoint left to continue from; start it anew with --out {cfg.resume} --force")
    return merged, saved.get("run")


def _data_path(path):
    """A --data file as an absolute path ('-', stdin, as it is): a run saves it so, and can
    then be resumed from any working directory."""
    return os.path.abspath(path) if isinstance(path, str) and path != "-" else path


def _shown(v) -> str:
    """A setting as a message shows it: not Python's repr (None, True, '')."""
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return '""' if v == "" else str(v)


class _Complete(Exception):
    """--resume of a run whose summary is written, with nothing more to train."""

    def __init__(self, summary: dict):
        super().__init__("complete")
        self.summary = summary


def _progress(path: str) -> tuple[dict | None, bool, bool, bool]:
    """(its summary record if the run is complete, whether it logged training steps (not
    counting a run that diverged), whether it once ended, whether any checkpoint is saved)
    of the run directory at path."""
    summary = None
    try:
        with open(os.path.join(path, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        summary = summary if isinstance(summary, dict) else None
    except (OSError, ValueError):
        pass
    trained = diverged = ended = False
    try:   # steps of a model that diverged need no checkpoint: its resume runs into it again
        with open(os.path.join(path, "metrics.jsonl"), encoding="utf-8") as f:
            for line in f:
                trained = trained or '"event":"train"' in line
                diverged = diverged or '"diverged"' in line
                ended = ended or '"event":"summary"' in line   # it had a checkpoint at its end
    except OSError:
        pass
    ck = os.path.join(path, "checkpoints")
    saved = any(d.isdigit() for _, dirs, _ in os.walk(ck) for d in dirs)
    return summary, trained and not diverged, ended, saved


def _stale_from(checkpoints: str) -> tuple[int, str | None] | None:
    """(metrics.jsonl's length when the latest of its models' latest checkpoints was saved,
    the hash of the record that ended there): later records are stale on resume ((0, None)
    without any checkpoint: all of them); None when a checkpoint does not say (saved before
    dlx noted it)."""
    from dlx.checkpoint import Checkpointer

    cut: tuple[int, str | None] = (0, None)
    names = sorted(os.listdir(checkpoints)) if os.path.isdir(checkpoints) else []
    for name in names:
        if not os.path.isdir(os.path.join(checkpoints, name)):
            continue
        ckpt = Checkpointer(os.path.join(checkpoints, name))
        try:
            if ckpt.latest_step() is None:
                continue
            meta = ckpt.latest_meta() or {}
        finally:
            ckpt.close()
        if not isinstance(meta.get("log_bytes"), int) or not isinstance(meta.get("log_last"), str):
            return None
        cut = max(cut, (meta["log_bytes"], meta["log_last"]), key=lambda c: c[0])
    return cut


def _end_of_last_line(f) -> int:
    """The offset just past the last newline of the binary file f (0 if none)."""
    pos = f.seek(0, os.SEEK_END)
    while pos > 0:
        start = max(pos - 65536, 0)
        f.seek(start)
        at = f.read(pos - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        pos = start
    return 0


def _event_of(line: bytes) -> str | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec.get("event") if isinstance(rec, dict) else None


class Run:
    """What a task sees of the session: its config, the output layer, the run directory."""

    def __init__(self, cfg, out: Output, run_id: str):
        self.cfg = cfg
        self.out = out
        self.run_id = run_id
        self.resumed = getattr(cfg, "resume", None) is not None
        self.dir: RunDir | None = None
        self.started = False
        self.announced = False  # its config record is out: error records name it
        self.dropped = b""      # the stale records a resume took out of metrics.jsonl
        self.checkpointed: list[str] = []   # the checkpoints this invocation saved (their directories)
        self.t0 = time.perf_counter()

    # -- life cycle ----------------------------------------------------------------------
    def resume_command(self) -> str:
        """The command that continues this run. A multi-host run's other processes keep their
        files in DIR.process<I>, but resume as they started: DIR, with their --process-id
        (the saved config is process 0's)."""
        pid = getattr(self.cfg, "process_id", 0)
        path = self.dir.path.removesuffix(f".process{pid}") if pid > 0 else self.dir.path
        return f"dlx {self.cfg.command} --resume {shlex.quote(path)}" + (f" --process-id {pid}" if pid > 0 else "")

    def start(self, persist: bool = True, **extra) -> None:
        """Create (or reopen) the run directory and emit the `config` record.
        persist=False: records only, no run directory (bench, --shapes-only)."""
        base = {"config": self.cfg.to_dict(), "versions": runtime.versions(), **runtime.backend_info()}
        if not persist:
            self.out.emit("config", {**base, **extra})
            self.announced = True
            return
        path = self.cfg.out or os.path.join("runs", self.run_id)
        if getattr(self.cfg, "process_id", 0) > 0:
            # Multi-host: process 0 owns stdout and the run directory; the others keep
            # their own checkpoints beside it and stay silent.
            path = f"{path}.process{self.cfg.process_id}"
            self.out.json_mode = False
            self.out.console.quiet = True
        self.dir = RunDir(path, resume=self.resumed, force=self.cfg.force)
        self.started = True
        if self.resumed:
            self._keep_for_undo()
            self._drop_stale_records()
            self.out.hold()   # until a checkpoint is read (train.fit): bad input is then one line
        self.out.attach(self.run_id, self.dir.file("metrics.jsonl"), append=self.resumed)
        record = {**base, "run_dir": path, "resumed": self.resumed, **extra}
        self.announced = True
        if not self.resumed:
            self.dir.write_json("config.json", {"run": self.run_id, **record})
        else:
            # The grown settings (--steps, --log-every) become the run's: resuming it again
            # later continues from them, not from the first invocation's.
            saved = read_config(self.dir.path)
            if saved["config"] != self.cfg.to_dict():
                self.dir.write_json("config.json", {**saved, "config": self.cfg.to_dict()})
            # Continued, the run is complete again only with its new summary: an extension
            # interrupted on the way must resume to its new --steps, not answer with the old.
            try:
                os.remove(self.dir.file("summary.json"))
            except FileNotFoundError:
                pass
        self.out.emit("config", record)
        self.out.info(f"[bold]dlx {self.cfg.command}[/] run {self.run_id} -> {path}"
                      + (" (resumed)" if self.resumed else ""))

    def path(self, name: str) -> str:
        assert self.dir is not None, "run.start() first"
        return self.dir.file(name)

    def checkpoint_path(self, name: str) -> str:
        """Where `name`'s checkpoints go. Multi-host: every process saves into process 0's
        run directory (orbax writes one checkpoint collectively; the directory must be on
        storage all hosts share, as for any multi-host JAX checkpoint)."""
        if _multi_host(self.cfg):
            return os.path.abspath(os.path.join(self.cfg.out, "checkpoints", name))
        return self.path(os.path.join("checkpoints", name))

    def emit(self, event: str, record: dict) -> dict:
        return self.out.emit(event, record)

    def finish(self, summary: dict, *, table: dict | None = None, title: str | None = None) -> dict:
        """Emit the `summary` record, write summary.json, show the results table."""
        self.out.release()
        runtime.raise_if_signalled()  # one remembered or swallowed on the way here ends the run
        runtime.raise_signals(False)  # the run is complete: a signal from here on changes nothing
        summary = {**summary, "wall_s": round(time.perf_counter() - self.t0, 3)}
        with self.out.deferring_close():  # a reader gone now still leaves a complete run
            rec = self.out.emit("summary", summary)
            if self.dir is not None:
                self.dir.write_json("summary.json", rec)
        if self.out.closed:
            raise StdoutClosed
        self.out.stop_progress()
        shown = table if table is not None else {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
        self.out.kv_table(title or f"dlx {self.cfg.command}: results", shown)
        return rec

    def _keep_for_undo(self) -> None:
        """What a resumed start changes (config.json, summary.json, metrics.jsonl's length),
        so that bad input found later (a corrupt checkpoint: exit 2) leaves the run as it was."""
        self._undo = {}
        for name in ("config.json", "summary.json"):
            try:
                with open(self.dir.file(name), "rb") as f:
                    self._undo[name] = f.read()
            except FileNotFoundError:
                self._undo[name] = None
        try:
            self._undo_len = os.path.getsize(self.dir.file("metrics.jsonl"))
        except OSError:
            self._undo_len = None

    def _drop_stale_records(self) -> None:
        """The records a killed process logged after the latest checkpoint (its steps are
        trained, and logged, again from that checkpoint) leave metrics.jsonl, so that each
        step's records are in it once, as in the uninterrupted run's; `config`, `error` and
        `summary` records stay as the run's history. A `kill -9` between two checkpoints left
        those steps' records twice, and a record it cut off mid-line ran into the next."""
        if self._undo_len is None or _multi_host(self.cfg):
            return   # several hosts: process 0's checkpoints, each process's own log
        path = self.dir.file("metrics.jsonl")
        with open(path, "rb") as f:
            cut = _end_of_last_line(f)   # a record cut off mid-line goes in any case
        try:
            found = _stale_from(self.dir.file("checkpoints"))
        except Exception:   # an unreadable checkpoint directory: fit's restore reports it
            found = None
        if found is not None and found[0] <= cut:
            # Only at the record the checkpoint noted: a log changed since (a refused resume
            # put records back that a newer checkpoint did not see) keeps its records.
            with open(path, "rb") as f:
                if not found[0] or last_record_hash(f, found[0]) == found[1]:
                    cut = found[0]
        with open(path, "rb") as f:
            f.seek(cut)
            tail = f.read()
        kept = b"".join(line for line in tail.splitlines(keepends=True)
                        if line.endswith(b"\n") and _event_of(line) in ("config", "error", "summary"))
        self.dropped = tail   # for fits that ask whether they had trained (train._has_trained)
        if kept != tail:
            self._undo_tail = (cut, tail)
            with open(path, "r+b") as f:
                f.seek(cut)
                f.write(kept)
                f.truncate()

    def undo_resume(self) -> None:
        from dlx.rundir import atomic_write

        self.out.close()
        # A model that trained on and saved before the bad input was found (a sweep's later
        # model): its new checkpoints go too, or they would hold steps the log put back here
        # lacks. Its latest checkpoint is then the one it resumed from, as before.
        for path in self.checkpointed:
            shutil.rmtree(path, ignore_errors=True)
        for name, data in getattr(self, "_undo", {}).items():
            if data is not None:
                atomic_write(self.dir.file(name), data.decode("utf-8"))
        if getattr(self, "_undo_tail", None) is not None:   # the records _drop_stale_records took out
            cut, tail = self._undo_tail
            with open(self.dir.file("metrics.jsonl"), "r+b") as f:
                f.seek(cut)
                f.write(tail)
                f.truncate()
        elif getattr(self, "_undo_len", None) is not None:
            os.truncate(self.dir.file("metrics.jsonl"), self._undo_len)

    def close(self, *, discard: bool = False) -> None:
        self.out.close()
        if self.dir is not None:
            self.dir.close(discard=discard)


_UNITS = {"B": 1, "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30, "TiB": 2 ** 40}


def _oom_request(message: str) -> str:
    """The size an XLA out-of-memory error asked for, as the user's line shows it. The wording
    differs by backend: XLA:CPU "Out of memory allocating 441 bytes", the GPU allocator "Out of
    memory while trying to allocate 102433554448 bytes", the GPU autotuner "... to allocate
    47.70GiB with allocator GPU_0_bfc" (an H200 run of the suite)."""
    asked = re.search(r"allocat(?:e|ing) (\d+(?:\.\d+)?) ?(bytes|[KMGT]iB)", message)
    if not asked:
        return "an allocation failed"
    size = float(asked.group(1)) * _UNITS.get(asked.group(2), 1)
    return f"{size / 2 ** 30:.1f} GiB requested"


def execute(cfg, task_name: str, *, explicit: set[str] = frozenset()) -> None:
    if threading.current_thread() is not threading.main_thread():
        return _execute(cfg, task_name, explicit)
    # SIGINT and SIGTERM outside training's loop (a cluster's preemption between two models)
    # end the run with the message below (runtime.on_signal says when they are raised and
    # when only remembered); inside the loop fit saves a checkpoint first. One that arrived
    # while the command line was parsed is remembered from dlx.__main__ on.
    old = runtime.catch_signals()
    old_hook = sys.unraisablehook

    def unraisable(u):  # a swallowed KeyboardInterrupt: remembered, so no traceback for it
        if not issubclass(u.exc_type, KeyboardInterrupt):
            old_hook(u)

    sys.unraisablehook = unraisable
    try:
        return _execute(cfg, task_name, explicit)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        sys.unraisablehook = old_hook
        runtime.clear_signal()


def _execute(cfg, task_name: str, explicit) -> None:
    out = Output(command=cfg.command, json_mode=getattr(cfg, "json", False), quiet=getattr(cfg, "quiet", False))
    run = None
    code = 0
    try:
        run_id = None
        if getattr(cfg, "resume", None):
            try:
                cfg, run_id = _merge_resume(cfg, explicit)
            except _Complete as done:
                # Nothing to train: the run stays as it is; its summary is the answer.
                out.run_id = done.summary.get("run")
                steps = done.summary.get("steps")
                out.info(f"dlx {cfg.command} run {cfg.resume} is complete" + (f" ({steps} steps)" if steps else "")
                         + "; nothing to do (a larger --steps trains it on)")
                if out.json_mode:
                    out.emit("summary", {k: v for k, v in done.summary.items()
                                         if k not in ("schema", "event", "run", "command")}, to_file=False)
                return _exit(None, out, 0)
        elif isinstance(getattr(cfg, "data", None), str):
            if not cfg.data.strip():   # made absolute, '' named the working directory
                raise UsageError(f"--data must name a file, got {cfg.data!r}")
            cfg = dataclasses.replace(cfg, data=_data_path(cfg.data))
        devices = getattr(cfg, "devices", 1)
        if devices > 1:   # argument errors, said before JAX is imported (1 s) where they can be
            if cfg.batch_size % devices:
                raise UsageError(f"--batch-size {cfg.batch_size} must be a multiple of --devices {devices} "
                                 "(the devices in use)")
            refused = not _multi_host(cfg) and runtime.cpu_only() and runtime.cpu_devices_refused(devices)
            if refused:
                raise UsageError(refused)
        runtime.setup_jax(devices)
        if _multi_host(cfg):
            import jax

            if not cfg.out:
                raise UsageError("a multi-host run needs --out: the same run directory on every host "
                                 "(on storage they share)")

            # Native libraries (gloo) print connection notices on file descriptor 1: point
            # it at stderr and keep the real stdout for our JSON records only.
            data_fd = os.dup(1)
            os.dup2(2, 1)
            sys.stdout = os.fdopen(data_fd, "w", buffering=1)
            # Every process runs the same command; the mesh then spans all hosts' devices
            # (on CPU hosts the collectives between processes go over gloo/TCP).
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            # Waiting for the other processes blocks inside XLA, where Python's signal
            # handlers cannot run: Ctrl-C or SIGTERM then end the process at once (exit
            # 130 or 143; nothing is written before every process has joined).
            runtime.raise_if_signalled()  # one that came during the imports: before the wait
            main = threading.current_thread() is threading.main_thread()
            handlers = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (signal.SIGINT, signal.SIGTERM) if main}
            try:
                jax.distributed.initialize(coordinator_address=cfg.coordinator, num_processes=cfg.num_processes,
                                           process_id=cfg.process_id)
            finally:
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
        if _multi_host(cfg) and devices == 1:
            import jax

            devices = jax.device_count()  # all processes' devices: one data-parallel mesh
        if devices > 1:
            from dlx.train import set_devices

            if cfg.batch_size % devices:
                raise UsageError(f"--batch-size {cfg.batch_size} must be a multiple of --devices {devices} (the devices in use)")
            set_devices(devices)
        task = importlib.import_module(task_name)
        runtime.raise_if_signalled()  # during the imports and set-up above: nothing written yet
        run = Run(cfg, out, run_id or new_run_id(cfg.command))
        out.run_id = run.run_id
        runtime.raise_signals(True)
        task.run(cfg, run)
        runtime.raise_signals(False)
    except StdoutClosed:
        code = 0  # the reader has what it wanted (`| head`): stop quietly
    except DlxError as e:
        code = e.exit_code
        if _multi_host(cfg) and isinstance(e, LocalFailure):
            runtime.end_alone()   # stdout's disk full on process 0, say: the others go on
        if run is not None and not run.announced and not run.resumed:
            out.run_id = None  # refused before its config record: no record named this run
        _report(out, str(e), e)
    except KeyboardInterrupt:
        code = 130
        if _multi_host(cfg):
            runtime.end_alone()   # a signal outside training's agreed stops (train._agree)
        _report(out, _interrupted(cfg, run), None, kind="interrupted")
    except Exception as e:  # a bug or an unexpected failure: one line, traceback on request
        if _multi_host(cfg):
            runtime.end_alone()   # this process's own failure: the others wait in a collective
        if "RESOURCE_EXHAUSTED" in str(e) or "Out of memory" in str(e) or isinstance(e, MemoryError):
            code = 1   # sizes too large here (MemoryError: a host-side array, numpy's)
            _report(out, f"out of memory ({_oom_request(str(e))}); {SMALLER}", RunFailure(str(e)))
            return _exit(run, out, code)
        if _multi_host(cfg) and type(e).__name__ == "JaxRuntimeError" and "Gloo" in str(e):
            # Not a bug here: a collective failed, the other process having ended (a signal of
            # its own, a kill): "Connection closed by peer", or, before their first
            # collective, "Gloo context initialization failed" after 30 s.
            code = 1
            _report(out, f"the other processes of this multi-host run stopped answering ({str(e).splitlines()[0][:200]}); "
                         "one has probably ended: resume every process with --resume", RunFailure(str(e)))
            return _exit(run, out, code)
        if not isinstance(e, OSError):
            code = 1
            if runtime.debugging():
                # Printed here, not re-raised: Click turns an EOFError raised through it into
                # an "abort" (exit 130, no word).
                traceback.print_exc()
            _report(out, f"internal error: {type(e).__name__}: {e}"
                         + ("" if runtime.debugging() else " (set DLX_DEBUG=1 for the traceback)"), RunFailure(str(e)))
            return _exit(run, out, code)
        code = 1
        what = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        _report(out, f"{what}: {getattr(e, 'filename', '') or ''}".rstrip(": "), RunFailure(str(e)))
    _exit(run, out, code)


def _interrupted(cfg, run) -> str:
    """The message for a signal outside training's loop (fit handles those inside it):
    before anything was saved, or between two models of a sweep (or while one compiles),
    when the models finished so far are saved and --resume continues from them."""
    if cfg.command == "bench":
        return "interrupted (bench saves nothing)"
    if run is None or run.dir is None:
        return "interrupted before the first checkpoint; nothing to resume"
    resume = run.resume_command()
    _, trained, ended, saved = _progress(run.dir.path)
    if saved:
        return f"interrupted between checkpoints; what was saved is kept. Resume with: {resume}"
    if trained and not ended:   # --resume trains it again from step 0
        return f"interrupted before the first checkpoint; {resume} starts it again from step 0"
    if trained:   # its checkpoints are gone: --resume refuses it
        return (f"interrupted, and the run's checkpoints are gone: start it anew with "
                f"dlx {cfg.command} --out {shlex.quote(run.dir.path)} --force")
    return f"interrupted before the first step; the run directory is kept, and {resume} starts it"


def _exit(run, out, code: int) -> None:
    if run is not None:
        # Bad input must leave nothing behind: drop a directory this run created, or put a
        # resumed run's files back as they were.
        if code == 2 and run.resumed and run.dir is not None:
            run.undo_resume()
        run.close(discard=code == 2 and not run.resumed)
    else:
        out.close()
    if code:
        sys.exit(code)


def _report(out: Output, msg: str, err: DlxError | None, kind: str | None = None) -> None:
    out.stop_progress()
    out.release(discard=err is not None and err.exit_code == 2)   # bad input: its one line alone
    rec = {"kind": kind or (err.kind if err else "runtime"), "message": msg,
           "exit_code": err.exit_code if err else 130}
    try:
        out.emit("error", rec, to_file=True)
    except StdoutClosed:
        pass
    out.error_line(msg)
    runtime.silence_stderr()  # the outcome is said: nothing after it on stderr


__all__ = ["execute", "Run", "fmt"]
