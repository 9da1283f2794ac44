"""JAX start-up settings shared by every command: caches, versions, devices."""

from __future__ import annotations

import functools
import logging
import os
import sys


def cache_dir() -> str:
    """Per-user cache: $DLX_CACHE_DIR, else $XDG_CACHE_HOME/dlx, else ~/.cache/dlx."""
    d = os.environ.get("DLX_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "dlx")
    return d


def _switched_on(name: str) -> bool:
    # An on-by-default environment switch: 0, false, no or off turn it off.
    return os.environ.get(name, "1").lower() not in ("0", "false", "no", "off")


_CLI = False  # set by dlx.__main__: this process is the `dlx` command, not a caller's


def mark_cli() -> None:
    global _CLI
    _CLI = True


def to_devnull(fd: int) -> None:
    """Point fd at /dev/null (a closed pipe's, or a finished run's stderr), so that later
    writes and the interpreter's final flush stay quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def silence_stderr() -> None:
    """After the one-line error of a `dlx` process: libraries' threads still failing (orbax's
    pending reads of a damaged checkpoint call into a closed event loop) printed tracebacks
    under it. Not in a caller's process, nor with DLX_DEBUG."""
    if not _CLI or debugging():
        return
    quiet_library_threads()
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    to_devnull(2)


def quiet_library_threads() -> tuple | None:
    """In a `dlx` process (not a caller's; not with DLX_DEBUG), drop the tracebacks that
    library threads print through sys.excepthook (TensorStore's callbacks into a closed
    event loop, after a damaged checkpoint: up to 250 lines around the one-line error).
    Returns the hooks it replaced (for loud_again), None where it changed nothing."""
    if _CLI and not debugging():
        old = (sys.excepthook, sys.unraisablehook)
        sys.excepthook = lambda *exc: None
        sys.unraisablehook = lambda unraisable: None
        return old
    return None


def loud_again(old: tuple | None) -> None:
    """Put back the hooks quiet_library_threads replaced."""
    if old is not None:
        sys.excepthook, sys.unraisablehook = old


def debugging() -> bool:
    """DLX_DEBUG: tracebacks for unexpected errors; off unless set to something other than
    0, false, no or off (DLX_DEBUG=0 turned it on)."""
    return os.environ.get("DLX_DEBUG", "0").lower() not in ("", "0", "false", "no", "off")


def compile_cache_enabled() -> bool:
    return _switched_on("DLX_COMPILE_CACHE")


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep and reuse large freed blocks (one arena, no mmap, no trim).
    Returns whether it applied. Must run before XLA starts its threads (the first
    computation). Off with DLX_MALLOC_TUNING=0; a no-op off glibc.

    Why: XLA:CPU allocates each execution's temporaries as one block (65 MB for the LSTM
    bench step) from a worker thread. glibc serves a block that large with a fresh mmap and
    unmaps it when the call ends, so every step page-faulted its whole working set in again:
    16,650 minor faults per LSTM bench step, none with this (ru_minflt over 10 steps).
    The cost: in its first calls the heap grows by the working set a few times over while
    its freed holes settle (small live allocations split them), then stays put. `dlx bench
    lstm --steps 100` peaked at 520-690 MB resident, against 430-450 MB without."""
    if not _switched_on("DLX_MALLOC_TUNING"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: these mallopt parameters are its own
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
    ok = libc.mallopt(M_ARENA_MAX, 1) and libc.mallopt(M_MMAP_MAX, 0)
    # Keep freed memory at the heap's top instead of returning it to the system.
    ok = ok and libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
    return bool(ok)


def import_flax() -> None:
    """Import flax.nnx with IPython hidden from it, unless IPython is already loaded.

    Why: flax.nnx imports IPython on import only to ask whether it runs in a notebook (for
    coloured reprs). Where IPython is installed, as in most research environments, that
    import took 0.36 s of every command's start-up here, a tenth of launch to first record.
    A command never runs inside IPython, so hiding it changes nothing else; and inside a
    notebook (IPython loaded) nothing is hidden. The entry is removed afterwards, so later
    imports of IPython work."""
    if "flax.nnx" in sys.modules or "IPython" in sys.modules:
        return
    sys.modules["IPython"] = None  # type: ignore[assignment]  # `import IPython` -> ImportError
    try:
        import flax.nnx  # noqa: F401
    finally:
        del sys.modules["IPython"]


# XLA:CPU's LLVM optimisation level for every program but a large training step (XLA's
# default: 3). Measured 2026-11-26 on the 2-core CPU with an empty compilation cache: a small
# LSTM step scanned 15 times (compare-rnn's form: hidden 16, T = 12, 2 seeds) compiled in
# 3.1-3.6 s at 2 against 5.2-6.7 s at 3 (separate processes, alternated), and that whole
# compare-rnn run took 0.85x the wall time (3 pairs); the test suite 406 s against 512.
# Results are the same bit for bit (-O3 adds inlining and unrolling to -O2, no
# floating-point liberties). But the large steps gain little compile time and, at -O2, the
# conv steps may run slower: dcgan 0.98-1.10x, cnn 0.99-1.04x the -O3 step time over seven
# alternated sittings. So a step dispatched one call per step, the run's hot program, keeps
# -O3 (`step_compiler_options`).
CPU_CODEGEN_LEVEL = 2
STEP_CODEGEN_LEVEL = 3


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_devices_refused(n: int) -> str | None:
    """Why n CPU devices on this host cannot train (None if they can). Host devices are
    threads on one pool: with more of them than cores, an all-reduce can wait for a
    participant that never gets a thread (train-gan --devices 4 on two cores: "only 3 of 4
    arrived", and XLA aborts the process after 60 s)."""
    cores = usable_cores()
    if n > cores:
        return (f"--devices {n}: {n} CPU devices on this host but {cores} core(s); "
                f"use at most {cores} (each host device needs a core of its own)")
    return None


def cpu_only() -> bool:
    """Whether every backend JAX can start here is the CPU, decided without starting one:
    JAX_PLATFORMS says so, or no accelerator plugin (the jax_plugins namespace: CUDA, ROCm,
    Metal; libtpu) is installed."""
    import importlib.util

    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        return all(p.strip() == "cpu" for p in platforms.split(","))
    return importlib.util.find_spec("jax_plugins") is None and importlib.util.find_spec("libtpu") is None


def step_compiler_options() -> dict:
    """Compiler options for a training step run one compiled call per step (`fit`, `dlx
    bench`): XLA's own -O3 where dlx's -O2 for everything else is in effect, else nothing
    (the user's XLA_FLAGS, or an accelerator's defaults, apply as they are)."""
    flag = f"--xla_backend_optimization_level={CPU_CODEGEN_LEVEL}"
    if flag in os.environ.get("XLA_FLAGS", "").split():
        return {"xla_backend_optimization_level": STEP_CODEGEN_LEVEL}
    return {}


def _add_xla_flag(name: str, value) -> None:
    """Append --name=value to XLA_FLAGS unless the user already set that flag."""
    flags = os.environ.get("XLA_FLAGS", "")
    if name not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --{name}={value}".strip()


# ---- a signal outside training's loop -------------------------------------------------------
# Inside the loop fit turns SIGINT/SIGTERM into a flag it checks between chunks. Outside it
# dlx's handler remembers the signal and, while a run's task runs, raises KeyboardInterrupt.
# Raised anywhere else it did harm: in a module being imported (JAX's, numpy's: a Ctrl-C in a
# command's first 0.2 s gave a traceback, "internal error: ImportError", a SIGSEGV or a silent
# exit 0), in a garbage-collection callback, which swallows it ("Exception ignored in:
# <function _xla_gc_callback>": a Ctrl-C 0.3 s after compare-rnn's last checkpoint let the run
# finish with exit 0), or after the summary (the run is complete). There it is only
# remembered, and raised where dlx checks: before the task starts, at each fit's start and
# before the summary. After the summary a signal changes nothing.
_signalled: int | None = None
_raising = False   # whether on_signal raises now: while a task runs, before its summary


def on_signal(signum, frame) -> None:
    global _signalled, _raising
    _signalled = signum
    if _raising and not _importing(frame):
        # Once: a second signal (a Ctrl-C that `timeout` passes on, arriving as a separate
        # call while dlx waits on a compilation) raised again inside the handling of the
        # first, and the run ended without its error record. A swallowed first one is still
        # remembered (raise_if_signalled).
        _raising = False
        raise KeyboardInterrupt


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


_left: set = set()   # threads a signal left at work (train.off_thread): nobody takes their result


def leave(thread) -> None:
    _left.add(thread)


def left_behind() -> bool:
    """Whether this thread is work a signal left running (an evaluation can log and draw as it
    ends): what it would still write or print is dropped, after the run said it stopped."""
    import threading

    return threading.current_thread() in _left


def abandoned_work() -> bool:
    """Whether a signal left a compilation running: the process then ends with os._exit.
    Python's teardown stops such a thread inside XLA's compiler, and the C++ runtime aborts
    ("FATAL: exception not rethrown", exit 134 after the run had said it was interrupted),
    also where the thread had just returned (it still unwinds XLA's per-thread state)."""
    return bool(_left)


_alone = False   # see end_alone


def end_alone() -> None:
    """Mark this process of a multi-host run as ending while the others go on (a signal
    outside training's agreed stops, a failure of its own): it then ends with os._exit.
    Python's exit waits in jax.distributed's shutdown barrier for processes that never
    reach it (they wait in a collective for this one): both hung for its 5 minutes, then
    aborted. Ended at once, JAX's service ends the others within a second."""
    global _alone
    _alone = True


def ends_alone() -> bool:
    return _alone


def catch_signals() -> dict:
    """Handle SIGINT/SIGTERM with on_signal (from the command line's first line on, and in
    every run); returns the handlers it replaced."""
    import signal

    return {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}


def raise_signals(on: bool) -> None:
    """Whether a signal raises KeyboardInterrupt where it lands (on while a task runs)."""
    global _raising
    _raising = on


def raise_if_signalled() -> None:
    """Raise KeyboardInterrupt if a signal arrived since clear_signal (one that was only
    remembered, or swallowed)."""
    if _signalled is not None:
        raise KeyboardInterrupt


def clear_signal() -> None:
    global _signalled, _raising
    _signalled, _raising = None, False


def setup_jax(devices: int = 1) -> None:
    """Configure JAX before first use. Idempotent."""
    keep_freed_memory()
    if cpu_only():
        # Only where the CPU is the sole backend: on accelerators the same flag would also
        # set their LLVM level, unmeasured there.
        _add_xla_flag("xla_backend_optimization_level", CPU_CODEGEN_LEVEL)
    if devices > 1 and os.environ.get("JAX_PLATFORMS", "cpu") == "cpu":
        # On a CPU-only machine, expose N host devices so --devices N works there too.
        _add_xla_flag("xla_force_host_platform_device_count", devices)
    # An unwritable or damaged compilation cache costs only speed (JAX compiles afresh);
    # its warnings, dozens a run, were on stderr even under --quiet.
    import warnings

    warnings.filterwarnings("ignore", message=r"Error (reading|writing) persistent compilation cache entry")
    import jax

    if "JAX_DEFAULT_MATMUL_PRECISION" not in os.environ:
        # float32 matmuls and convolutions in float32 on every backend. XLA on NVIDIA GPUs
        # otherwise runs them as TF32 (a 10-bit mantissa): on an H100, our convolutions and
        # cells then differed from Flax's, computing the same function, by up to 2e-3 (the
        # reference tests allow 2e-5 to 1e-4). For TF32: JAX_DEFAULT_MATMUL_PRECISION=tensorfloat32.
        # XLA:CPU computes float32 either way (the same compiled program).
        jax.config.update("jax_default_matmul_precision", "highest")
    for name in ("absl", "jax._src.xla_bridge", "orbax", "jax._src.compilation_cache"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if compile_cache_enabled():
        path = os.path.join(cache_dir(), "jax")
        try:
            os.makedirs(path, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", path)
            # Cache every compiled program: sweeps re-run the same small programs many times.
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        except OSError:
            pass  # an unwritable cache only costs speed
    import_flax()


def versions() -> dict:
    import flax
    import jax
    import optax

    from dlx import __version__

    return {"dlx": __version__, "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}


@functools.cache   # read once: bench's config record and its summary both name the host
def host_cpu() -> dict:
    """The host's processor and the cores this process may use: on a CPU the bench's device
    itself (JAX names it only "cpu", so figures from two machines could not be told apart:
    one session's 2-core Intel Xeon ran the suite 1.7x slower than another's AMD EPYC)."""
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):   # x86; Arm's cpuinfo has no model name line
                    model = line.partition(":")[2].strip()
                    break
    except OSError:   # not Linux
        pass
    return {"model": model or platform.processor() or platform.machine() or "unknown", "cores": usable_cores()}


def backend_info() -> dict:
    """What a run's numbers depend on besides its config: the devices it trains on, the
    host's processor, and the precision of float32 matmuls (set by setup_jax, or the user's
    JAX_DEFAULT_MATMUL_PRECISION)."""
    import jax

    from dlx.train import devices_in_use

    devices = [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in devices_in_use()]
    return {"devices": devices, "host": host_cpu(),   # another CPU rounds float32 differently
            "matmul_precision": jax.config.jax_default_matmul_precision or "default"}
