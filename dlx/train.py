"""The one training loop every command uses.

A task describes training as pure functions (`Trainer`); `fit` does the rest:

* runs `lax.scan` over a chunk of steps inside one compiled call, so small models are
  not dominated by per-step dispatch; chunks end exactly at log / eval points;
* vmaps over `seeds` independent runs (data order, noise) in the same program, each
  initialised from its own key (`seeded`);
* moves values to the host only at chunk ends (metrics) and at evaluations;
* reports compile time apart from step time, and throughput;
* stops on a NaN/Inf metric naming the first bad step, keeping the last good checkpoint;
* checkpoints (orbax) at every evaluation, at the end and on SIGINT/SIGTERM, and resumes
  from the latest checkpoint so that the resumed run equals the uninterrupted one.

Determinism: the step function receives the global step number and derives its batch and
randomness from it (`jax.random.fold_in(key, step)`), so a resumed run sees exactly the
data and noise the uninterrupted one would have.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from dlx import runtime
from dlx.checkpoint import Checkpointer, prefetch as prefetch_orbax
from dlx.errors import SMALLER, Interrupted, RunFailure, UsageError
from dlx.output import StdoutClosed
from dlx.rundir import last_record_hash

State = Any


@dataclass
class Trainer:
    """What a task hands to `fit`.

    init:     key (uint32[2]) -> state pytree (params, optimizer state, key, ...).
    step:     (state, step:int32, data) -> (state, {name: scalar}); pure, jittable. The
              step number is global (0-based), so batches and noise follow from it.
    data:     pytree of arrays the step reads (the training set), passed to the compiled
              chunk as an argument rather than baked into it as a constant.
    evaluate: state -> {name: value} on the host (optional). With seeds > 1 it gets the
              stacked state (leading axis = seed) and should return per-seed lists.
    members:  several models of one structure trained in one program (a comma sweep), one
              tag dict each: init returns their states stacked on a leading axis and step
              maps over it (`per_member`), its metrics gaining that axis; evaluate(state, alive)
              returns one dict per member (None for one that diverged). Each member gets
              its own train and eval records, tagged. A member whose metrics go NaN/Inf
              stops being reported (FitResult.diverged) while the others train on: the
              members share no arithmetic, so its NaNs reach no other member.
    """

    init: Callable[[jax.Array], State]
    step: Callable[[State, jax.Array, Any], tuple[State, dict]]
    data: Any = None
    evaluate: Callable[[State], dict] | None = None
    examples_per_step: int = 1
    name: str = "main"                       # checkpoint sub-directory
    tag: dict = field(default_factory=dict)  # merged into every record, e.g. {"cell": "gru"}
    members: list[dict] | None = None
    # Run several steps per compiled call (lax.scan over steps)? None: decide by the step's
    # FLOPs. Tiny steps gain (dispatch dominates them); larger ones lose on XLA:CPU, which
    # runs a while-loop body without its intra-op parallelism (measured: a digits CNN step
    # 20 ms per call vs 40 ms scanned on 2 cores), so they go one call per step.
    scan: bool | None = None


# Steps below this many FLOPs (XLA's cost analysis) are scanned when Trainer.scan is None.
SCAN_BELOW_FLOPS = 5e6


@dataclass
class FitResult:
    state: State
    step: int
    train: dict | list                # with Trainer.members: one dict per member
    eval: dict | list
    compile_s: float
    ms_per_step: float
    examples_per_s: float
    peak_bytes: int | None = None     # XLA's memory analysis of the compiled chunk
    diverged: dict = field(default_factory=dict)  # members: index -> "loss became NaN at step 7; ..."
    # retime(min_s): seconds per step of the fit's one-step program run again on a copy of
    # the final state for at least min_s (retime(None) frees the copy): for timings taken side
    # by side after several fits. None when no step was ever timed (--steps 0).
    retime: Callable[[float | None], float | None] | None = None
    # The same for the fit's scanned chunk (its longest), per step: None where the fit ran
    # its steps one call each, or timed none.
    retime_scanned: Callable[[float | None], float | None] | None = None


# ---- data parallelism ---------------------------------------------------------------------
# With --devices N the loop builds a 1-D mesh over N devices; parameters and optimizer state
# are replicated and each step's batch is split along its first axis (tasks call
# `shard_batch` on the batch they draw). XLA's SPMD partitioner then inserts the gradient
# all-reduce: the code path is the same as on one device.
_MESH = None


def set_devices(n: int) -> None:
    global _MESH
    if n <= 1:
        _MESH = None
        return
    devs = jax.devices()
    if len(devs) < n:
        raise UsageError(f"--devices {n}: only {len(devs)} device(s) available ({devs[0].platform})")
    local = sum(d.process_index == jax.process_index() for d in devs[:n])
    refused = runtime.cpu_devices_refused(local) if devs[0].platform == "cpu" else None
    if refused:
        raise UsageError(refused)
    _MESH = jax.sharding.Mesh(np.array(devs[:n]), ("data",))


def devices_in_use() -> list:
    """The devices a run trains on: the mesh's, or the default device (a --devices 1 run on a
    host with four devices uses one of them, and its config record names that one)."""
    return list(_MESH.devices.flat) if _MESH is not None else jax.devices()[:1]


def shard_batch(tree):
    """Split a batch (pytree of arrays with a leading batch axis) over the data mesh."""
    if _MESH is None:
        return tree
    spec = jax.sharding.NamedSharding(_MESH, jax.sharding.PartitionSpec("data"))
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, spec), tree)


def _replicate(tree):
    if _MESH is None:
        return tree
    return jax.device_put(tree, jax.sharding.NamedSharding(_MESH, jax.sharding.PartitionSpec()))


def _schedule(start: int, steps: int, every: list[int], first: int | None = None):
    """Chunk end points after `start`, in order: `first`, every multiple of each interval,
    and `steps`. Lazy, one point at a time: a list of them all for --steps 10**11 filled the
    memory before the first step."""
    pos = start
    while pos < steps:
        pos = min([steps] + [(pos // e + 1) * e for e in every]
                  + ([first] if first is not None and first > pos else []))
        yield pos


def _first_nonfinite(metrics: dict, start: int) -> tuple[int, str, float] | None:
    bad = None
    for name, arr in metrics.items():
        a = np.asarray(arr)
        finite = np.isfinite(a).reshape(a.shape[0], -1).all(axis=1)
        if not finite.all():
            i = int(np.argmin(finite))
            if bad is None or i < bad[0]:
                v = a.reshape(a.shape[0], -1)[i]
                bad = (i, name, float(v[~np.isfinite(v)][0]))
    if bad is None:
        return None
    return start + bad[0] + 1, bad[1], bad[2]


# A second SIGINT this soon after the first is the same Ctrl-C delivered twice: under
# `timeout 600 dlx ...` the terminal signals the whole foreground group and timeout passes
# its own copy on, so one Ctrl-C quit without saving (an orbax temporary directory left).
# A person's second press comes tenths of a second later at the quickest.
SAME_SIGNAL_S = 0.05


class _Signals:
    """Turn SIGINT/SIGTERM into a flag checked between chunks; a second SIGINT quits."""

    def __init__(self, out=None):
        self.caught: int | None = None
        self.at = 0.0   # when the first came (time.monotonic)
        self.out = out

    def __enter__(self):
        # A fit nested in another's evaluation (train-gan trains its judge there) runs on the
        # evaluation's worker thread, where Python refuses handlers; the outer fit's handle
        # the signals, and leave this work if one comes.
        main = threading.current_thread() is threading.main_thread()
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        for s in self._old:
            signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.caught is not None and time.monotonic() - self.at < SAME_SIGNAL_S:
            return
        if self.caught is not None and signum == signal.SIGINT:
            # Quit at once. A KeyboardInterrupt raised here could land in a callback that
            # swallows it (XLA's garbage-collection hook did), and the run went on to save.
            msg = "second SIGINT: quit without saving"
            try:  # the error record last, as after any failure (whole records: see Output.emit)
                if self.out is not None:
                    self.out.emit("error", {"kind": "interrupted", "message": msg, "exit_code": 130})
            except Exception:
                pass
            os.write(2, f"error: {msg}\n".encode())
            os._exit(130)
        self.caught, self.at = signum, time.monotonic()

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _agree(out, sig: _Signals) -> int | None:
    """The signal every process acts on, and out.closed as every process sees it: each
    process's reasons to stop (its stdout's reader gone, a signal) made every process's, so
    that all checkpoint the same step collectively and leave together. A multi-host run's
    stdout is process 0's alone, and a Ctrl-C reaches only the process in the foreground.
    The answer is the gathered one alone: a signal that lands during the gathering is left
    for the next chunk's (acted on here, it stopped one process a chunk early, and both hung)."""
    from jax.experimental import multihost_utils

    mine = np.array([int(out.closed), sig.caught or 0], np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))   # (processes, 2)
    out.closed = bool(every[:, 0].any())   # process 0's reader left: the others stop as quietly
    signals = every[every[:, 1] > 0, 1]
    return int(signals[0]) if signals.size else None


def _mean_metrics(sums: dict, count: int) -> dict:
    return {k: float(v / max(count, 1)) for k, v in sums.items()}


def _interval_sums(metrics: dict, members: int | None) -> dict:
    """Sum over a chunk's steps (axis 0) of each metric, averaged over any seed axes; with
    members, one sum per member (axis 1 kept): float64 scalars or (members,) arrays."""
    out = {}
    for k, v in metrics.items():
        a = np.asarray(v, dtype=np.float64)
        if members is None:
            out[k] = a.mean(axis=tuple(range(1, a.ndim))).sum()
        else:
            out[k] = a.reshape(a.shape[0], members, -1).mean(axis=2).sum(axis=0)
    return out


# No device holds this much (1 TiB) in one array. XLA aborts the process, past any Python
# handler, on arrays whose byte size overflows 64 bits (grad-probe --width 2147483647:
# a (2^31, 2^31) weight), so sizes like that are turned away from their shapes, unallocated.
MAX_ARRAY_BYTES = 2 ** 40


_ABANDONED = object()


def off_thread(work: Callable[[], Any], sig: "_Signals | None" = None):
    """work() (a trace, a compilation, an evaluation) on a worker thread while this thread waits for it.
    Python runs signal handlers on the main thread between its own steps, so a signal during
    a long compilation waited for XLA to finish: minutes for a deep stack (the initialisation
    of 50 LSTM layers compiles in 13 s; 20,000 layers ignored SIGTERM for 11 minutes). Here
    the handler runs within 50 ms: runtime's raises KeyboardInterrupt in the wait, and in a
    fit, where `sig` notes signals instead, this returns _ABANDONED once it has one. The
    work then goes on unwatched, what it would still log or print is dropped
    (runtime.left_behind), and the process ends without waiting for it
    (runtime.abandoned_work)."""
    box: dict = {}

    def run():
        try:
            box["value"] = work()
        except BaseException as e:  # re-raised on the waiting thread
            box["error"] = e

    worker = threading.Thread(target=run, name="dlx-compile", daemon=True)
    try:   # whatever interrupts the wait leaves the work running
        worker.start()
        while worker.is_alive():
            worker.join(0.05)
            if sig is not None and sig.caught is not None and worker.is_alive():
                runtime.leave(worker)
                return _ABANDONED
    except BaseException:   # KeyboardInterrupt from runtime's handler
        runtime.leave(worker)
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def init_program(init):
    """jit(init) compiled without the backend's optimisation passes. Init runs once, and
    XLA:CPU spent seconds optimising its random-number code: cnn-demo's seven-width MLP
    family on MNIST-1D took 8.3 s to compile, 2.4 s this way (run 8 -> 18 ms). Its values
    are its own (same seed, same numbers), not bit-equal to an optimised build's.
    Refuses (out of memory, exit 1) parameters larger than any device holds before compiling."""
    program = jax.jit(init, compiler_options={"xla_backend_optimization_level": 0})

    def run(*args):
        refuse_impossible_sizes(jax.eval_shape(init, *args))
        return off_thread(lambda: program(*args))   # compiles: minutes for a deep stack

    return run


def refuse_impossible_sizes(tree) -> None:
    """RunFailure (out of memory, exit 1) if an array of tree (arrays or their abstract
    shapes) is larger than MAX_ARRAY_BYTES: call it with shapes before building arrays."""
    largest = max((math.prod(a.shape) * a.dtype.itemsize for a in jax.tree.leaves(tree)), default=0)
    if largest > MAX_ARRAY_BYTES:
        raise RunFailure(f"out of memory ({largest / 2 ** 30:.1f} GiB requested); {SMALLER}")


def seeded(trainer: Trainer, seeds: int | None):
    """(init, step) for one run, or for `seeds` runs stacked on a leading axis: the step
    vmapped, init(key) mapped over split(key, seeds) one seed after another (lax.map; the
    same values as vmap). Not vmapped because an initializer's linear algebra then becomes
    batched LAPACK calls, and XLA:CPU can deadlock on several at once, each waiting for
    batch items it queued on the intra-op thread pool the others occupy (a recurrent net's
    orthogonal gate blocks: runs hung at a cell's first step)."""
    if seeds is None:
        return trainer.init, trainer.step
    return (lambda key: jax.lax.map(trainer.init, jax.random.split(key, seeds)),
            jax.vmap(trainer.step, in_axes=(0, None, None)))


def per_member(step, members: int):
    """A step over `members` states stacked on a leading axis: one copy of `step` per member
    in one program, each on its own slice, outputs stacked again. Not jax.vmap: vmap turns
    the members' matmuls into batched ones, whose rounding differs from a model's alone (a
    chaotic net, ReLU + He at SGD lr 0.1, then ended at 98.1% test accuracy in a sweep and
    96.9% alone); the copies compute what each model alone computes, bit for bit on the CPU
    (to float32 rounding on a GPU, which fuses and tunes the programs apart), at the
    same speed (3 depth-10 MLPs: 6.7 ms a step as copies, 6.8 vmapped, 7.3 one at a time)."""
    def stepped(state, i, data):
        outs = [step(jax.tree.map(lambda x, j=j: x[j], state), i, data) for j in range(members)]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    return stepped


def fit(run, trainer: Trainer, *, steps: int, seed: int, log_every: int, eval_every: int,
        seeds: int | None = None, description: str | None = None) -> FitResult:
    """Train `trainer` for `steps` steps (or continue it from its checkpoint)."""
    if trainer.members is not None and seeds is not None:
        raise ValueError("a fit has either members or seeds, not both")  # one stacked axis each
    out = run.out
    key = jax.random.PRNGKey(seed)
    init, step_fn = seeded(trainer, seeds)

    ckpt = Checkpointer(run.checkpoint_path(trainer.name)) if run.dir is not None else None
    meta: dict = {}
    start = 0
    if ckpt is not None and ckpt.latest_step() is not None:
        abstract = jax.eval_shape(init, key)
        state, meta = ckpt.restore(abstract)
        start = int(meta["step"])
        out.info(f"resumed {trainer.name} from step {start}")
    else:
        if run.resumed and run.dir is not None and _has_trained(run.dir.file("metrics.jsonl"), trainer, eval_every,
                                                                getattr(run, "dropped", b"")):
            # Its checkpoint is gone (deleted by hand): training it again from step 0 would
            # end elsewhere than the run it continues, if that was extended (another schedule).
            # Steps short of the first checkpoint are trained again (see session._merge_resume).
            raise UsageError(f"--resume {run.dir.path}: {trainer.name} has trained (metrics.jsonl holds its steps) "
                             f"but its checkpoint is gone; start the run anew with --out {run.dir.path} --force")
        if ckpt is not None:
            prefetch_orbax()   # while the init and the step compile
        state = init_program(init)(key)
    # A sweep's model that diverged past this point before, while later models trained on:
    # it trains to there again (its evaluations feed the sweep's results), but the log holds
    # its records up to the divergence, and later models' records follow them.
    replayed = _logged_divergence(run.dir.file("metrics.jsonl"), trainer, start) \
        if run.resumed and run.dir is not None else None
    if replayed is not None:
        out.info(f"{trainer.name} diverged at step {replayed} before: trained again to there, "
                 f"its records not logged again")
    out.release()   # a resumed run's header and tables, held until its checkpoint was read
    state = _replicate(state)

    jchunk = chunked(step_fn)
    jstep = jax.jit(step_fn, donate_argnums=0)
    single = None  # the one-step program, when steps run one call each
    use_scan = trainer.scan
    data = _replicate(jax.device_put(trainer.data))
    compiled: dict[int, Any] = {}
    compile_s = float(meta.get("compile_s", 0.0))
    run_s = float(meta.get("run_s", 0.0))
    done_steps = int(meta.get("timed_steps", 0))
    sums = {k: np.asarray(v, dtype=np.float64) for k, v in meta.get("sums", {}).items()}
    count = int(meta.get("count", 0))
    # The same sums since the last multiple of log_every, which a `train` record at a run's
    # last step (--steps 350 at --log-every 100) does not reset: resumed to --steps 400, the
    # record at 400 then covers 301-400, as the uninterrupted run's does (its summary's train
    # metrics differed: d_loss 1.3079 vs 1.3133).
    wsums = {k: np.asarray(v, dtype=np.float64) for k, v in meta.get("window_sums", {}).items()}
    wcount = int(meta.get("window_count", 0))
    if start % log_every and wcount > count:
        sums, count = dict(wsums), wcount
    members = trainer.members
    nm = None if members is None else len(members)
    examples = trainer.examples_per_step * (seeds or 1) * (nm or 1)  # per step, every seed and member
    last_train: dict | list = meta.get("last_train", {})
    last_eval: dict | list = meta.get("last_eval", {})
    diverged: dict[int, str] = {int(k): v for k, v in meta.get("diverged", {}).items()}
    tag = trainer.tag
    analysis = None

    def save(at: int, pending_from: dict | None = None):
        """Checkpoint step `at`; with `pending_from` (the log's place before its evaluation,
        `_log_position`), a signal ended that evaluation."""
        if ckpt is None:
            return
        saved = getattr(run, "checkpointed", None)
        if saved is not None and at != ckpt.latest_step():   # a refused resume takes it out (session)
            saved.append(os.path.join(ckpt.directory, str(at)))
        ckpt.save(at, state, {
            "step": at, "sums": {k: np.asarray(v).tolist() for k, v in sums.items()}, "count": count,
            "window_sums": {k: np.asarray(v).tolist() for k, v in wsums.items()}, "window_count": wcount,
            "last_train": last_train, "last_eval": last_eval, "compile_s": compile_s,
            "run_s": run_s, "timed_steps": done_steps, "diverged": diverged, "peak_bytes": peak_bytes(),
            # A signal ended this step's evaluation (its first compilation can take long): the
            # resumed run evaluates here first, so its log holds this step's eval record.
            "eval_pending": pending_from is not None,
            # Records after this length are stale once the run resumes from here (session);
            # the last record before it identifies that place in the log. With the evaluation
            # pending, the place before it: what it logged before the signal goes as well.
            **(_log_position(run) if pending_from is None else pending_from),
        })

    def peak_bytes() -> int | None:
        # XLA's memory analysis of the program this process compiled, else the saved one's: a
        # run resumed with nothing left to train compiles nothing (compare-rnn's memory
        # verdict then read null).
        return (analysis or {}).get("peak_bytes", meta.get("peak_bytes"))

    def evaluate(at: int, sig: "_Signals | None" = None) -> bool:
        """Evaluate at step `at` and log it; False if a signal in a fit (`sig`) ended the
        evaluation first. It runs off the main thread, as the compilations do: an evaluation's
        first call compiles it, for seconds to minutes in a deep stack."""
        nonlocal last_eval
        if trainer.evaluate is None:
            return True
        alive = None if members is None else [j not in diverged for j in range(nm)]
        ev = off_thread(lambda: trainer.evaluate(state) if alive is None else trainer.evaluate(state, alive), sig)
        if ev is _ABANDONED:
            return False
        if members is None:
            last_eval = dict(ev)
            each = [({}, last_eval)]
        else:
            last_eval = [None if e is None else dict(e) for e in ev]
            each = [(m, e) for m, e, a in zip(members, last_eval, alive) if a and e is not None]
        for mtag, ev in each:
            out.emit("eval", {"step": at, **tag, **mtag, **ev})
            shown = {k: v for k, v in ev.items() if isinstance(v, (int, float))}
            who = " ".join(v if isinstance(v, str) else f"{k}={v}" for k, v in {**tag, **mtag}.items())
            out.info(f"[dim]step {at}{' ' + who if who else ''}[/] "
                     + "  ".join(f"{k} {_fmt(v)}" for k, v in list(shown.items())[:8]))
        return True

    if use_scan is not True and steps > start:
        t = time.perf_counter()
        lowered = off_thread(lambda: jstep.lower(state, jnp.int32(start), data))
        if use_scan is None:
            # Decide from the lowered program's cost: a tiny step that will be scanned
            # then costs one compilation (the chunk), not two.
            use_scan = _lowered_flops(lowered) < SCAN_BELOW_FLOPS
        if not use_scan:
            single = off_thread(lambda: lowered.compile(runtime.step_compiler_options()))
            analysis = _analyse(single, 1)
        compile_s += time.perf_counter() - t
    # Steps dispatched one call each also log step 1: the first loss (ln(classes) for a
    # fresh classifier) is on screen within seconds, whatever --log-every is. Scanned steps
    # do not: a one-step chunk would cost a compilation of its own.
    first_log = 1 if use_scan is False and steps > 1 else None
    points = _schedule(start, steps, [log_every, eval_every], first_log)
    trains = steps > start
    if trains:
        out.start_progress(description or trainer.name, total=steps, completed=start)
    runtime.raise_if_signalled()  # one remembered or swallowed before this fit (runtime.on_signal)
    # Several processes (multi-host) stop together or not at all: one that stopped alone left
    # the others blocked in their next collective, past SIGTERM. So there a reader gone or a
    # signal is acted on only at a chunk's end, agreed with the others (_agree), and
    # compilations and evaluations are not left for it.
    several = jax.process_count() > 1
    if out.closed and not several:
        raise StdoutClosed  # the reader left before this fit (between two models of a sweep)
    with _Signals(out) as sig, out.deferring_close(), out.logged_through(replayed):
        watch = None if several else sig   # what may cut a compilation or evaluation short
        pos = start
        saved = True   # whether the state at pos is checkpointed (past start: set each chunk)
        # The checkpoint's evaluation, if a signal cut it short; and a replayed one's, logged
        # before and not again: for the command's own view of this model (its last
        # evaluation, which its result reports, as the uninterrupted run's).
        if meta.get("eval_pending") or (replayed is not None and start and start % eval_every == 0):
            if not evaluate(start, watch):
                _interrupted(sig.caught, start, run)   # its checkpoint stays as it was
        for end in points:
            n = end - pos
            if use_scan and n not in compiled:
                t = time.perf_counter()
                program = off_thread(lambda: jchunk.lower(state, jnp.int32(pos), data, n).compile(), watch)
                if program is _ABANDONED:   # a signal during the compilation: see below
                    if pos == start:
                        raise KeyboardInterrupt   # nothing trained here: as before the fit
                    _interrupted(sig.caught, pos, run, None if saved else save)   # the last chunk's step
                compiled[n] = program
                compile_s += time.perf_counter() - t
                if analysis is None:
                    analysis = _analyse(compiled[n], n)
            t = time.perf_counter()
            if use_scan:
                new_state, metrics = compiled[n](state, jnp.int32(pos), data)
            else:
                new_state, per_step = state, []
                for i in range(n):  # dispatch runs ahead; nothing waits until device_get
                    new_state, m = single(new_state, jnp.int32(pos + i), data)
                    per_step.append(m)
                metrics = jax.tree.map(lambda *xs: jnp.stack(xs), *per_step)
            metrics = jax.device_get(metrics)  # the one host sync per chunk
            run_s += time.perf_counter() - t
            done_steps += n
            bad = _first_nonfinite(metrics, pos) if members is None else None
            for j in range(nm or 0):
                hit = None if j in diverged else _first_nonfinite({k: np.asarray(v)[:, j] for k, v in metrics.items()}, pos)
                if hit is not None:
                    at, name, value = hit
                    diverged[j] = (f"{name} became {'NaN' if math.isnan(value) else 'Inf'} at step {at}; "
                                   "this model stopped, the others trained on")
                    out.emit("info", {"step": at, **tag, **members[j], "diverged": diverged[j]})
                    out.info(f"[yellow]{' '.join(map(str, members[j].values()))}: {diverged[j]}[/]")
            if bad is not None:
                at, name, value = bad
                kept = ckpt.latest_step() if ckpt is not None else None
                # Not "resume": the same settings from the same checkpoint diverge at the same step.
                where = (f"last good checkpoint: step {kept} in {run.dir.path}; start again with a smaller --lr "
                         "or with clipping" if kept is not None else "no checkpoint had been written yet")
                what = "NaN" if math.isnan(value) else "Inf"
                message = f"{name} became {what} at step {at}; training stopped ({where})"
                who = " ".join(v if isinstance(v, str) else f"{k}={v}" for k, v in tag.items())
                message = f"{who}: {message}" if who else message   # which model of a sweep
                # Said in metrics.jsonl too: a resume knows this fit's steps without a
                # checkpoint are a divergence, which it may run into again, not a loss.
                out.emit("info", {"step": at, **tag, "diverged": message})
                raise RunFailure(message)
            state = new_state  # the old one was donated to the step
            if members is not None and len(diverged) == nm:
                break  # every member diverged: nothing left to train
            for k, v in _interval_sums(metrics, nm).items():
                if diverged:
                    v[list(diverged)] = 0.0  # no NaN into the means (or the checkpoint's meta)
                sums[k] = sums.get(k, 0.0) + v
                wsums[k] = wsums.get(k, 0.0) + v
            count += n
            wcount += n
            pos = end
            if pos % log_every == 0 or pos == steps or pos == first_log:
                ms = 1e3 * run_s / max(done_steps, 1)
                speed = {"ms_per_step": round(ms, 4),  # of the whole step: every seed and member
                         "examples_per_s": round(examples * 1e3 / ms, 1) if ms else None}
                if members is None:
                    last_train = {**_mean_metrics(sums, count), **speed}
                    out.emit("train", {"step": pos, **tag, **last_train})
                    shown = last_train
                else:
                    last_train = [None if j in diverged else
                                  {**_mean_metrics({k: v[j] for k, v in sums.items()}, count), **speed}
                                  for j in range(nm)]
                    for j, (mtag, tr) in enumerate(zip(members, last_train)):
                        if j not in diverged:
                            out.emit("train", {"step": pos, **tag, **mtag, **tr})
                    live = [j for j in range(nm) if j not in diverged] or list(range(nm))
                    shown = _mean_metrics({k: v[live].mean() for k, v in sums.items()}, count)
                out.update_progress(pos, {k: v for k, v in shown.items() if k not in ("ms_per_step", "examples_per_s")})
                sums, count = {}, 0
                if pos % log_every == 0:
                    wsums, wcount = {}, 0
            saved = pos % eval_every == 0 or pos == steps
            if saved:
                before = _log_position(run)
                save(pos, None if evaluate(pos, watch) else before)
            caught = _agree(out, sig) if several else sig.caught
            if out.closed:   # the reader went away: this step's records are all in metrics.jsonl
                if not saved:
                    save(pos)
                raise StdoutClosed
            if caught is not None:
                if not saved:  # a signal during this chunk's evaluation: saved just now
                    save(pos)
                _interrupted(caught, pos, run)
    out.stop_progress()
    if not trains and not last_eval:
        evaluate(start)  # nothing to train (--steps 0): still report the model's quality
    ms = 1e3 * run_s / done_steps if done_steps else float("nan")
    if ckpt is not None:
        ckpt.close()
    longest = max(compiled, default=None)   # the scanned chunk of most steps, if any was compiled
    return FitResult(state=state, step=max(start, steps) if trains else start, train=last_train, eval=last_eval,
                     compile_s=round(compile_s, 3), ms_per_step=round(ms, 4) if done_steps else None,
                     examples_per_s=round(examples * 1e3 / ms, 1) if done_steps else None,
                     peak_bytes=peak_bytes(), diverged=dict(diverged),
                     retime=_retimer(lambda: single or jstep.lower(state, jnp.int32(pos), data).compile(
                         runtime.step_compiler_options()), 1, state, data, pos) if done_steps else None,
                     retime_scanned=_retimer(lambda: compiled[longest], longest, state, data, pos)
                     if done_steps and longest is not None else None)


def _interrupted(signum: int, pos: int, run, save=None):
    """Raise Interrupted for a signal in a fit at step pos (saved there first with `save`)."""
    if save is not None:
        save(pos)
    run.out.stop_progress()
    how = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
    raise Interrupted(f"{how} at step {pos}: checkpoint saved. Resume with: {run.resume_command()}"
                      if run.dir is not None else f"{how} at step {pos}")


def _retimer(program, steps_per_call: int, state, data, at: int):
    """retime(min_s) -> seconds per step of the compiled program `program()` (called at the
    first timing: a scanned fit's one-step program is compiled only if asked for), which runs
    steps_per_call steps a call, run for at least min_s from a copy of `state` (the calls
    donate it, so the copy carries on from call to call). retime(None) frees the copy."""
    box = {}

    def retime(min_s: float | None) -> float | None:
        if min_s is None:
            box.clear()
            return None
        if "state" not in box:
            box["program"] = program()
            box["state"] = jax.tree.map(jnp.copy, state)
        calls, t0 = 0, time.perf_counter()
        while True:
            box["state"], _ = box["program"](box["state"], jnp.int32(at), data)
            calls += 1
            if calls % 8 == 0 or time.perf_counter() - t0 >= min_s:
                jax.block_until_ready(box["state"])   # dispatch runs ahead: wait before reading the clock
                if time.perf_counter() - t0 >= min_s:
                    return (time.perf_counter() - t0) / (calls * steps_per_call)
    return retime


def _log_position(run) -> dict:
    """{"log_bytes": metrics.jsonl's length, "log_last": a hash of its last record}, or {}."""
    try:
        with open(run.dir.file("metrics.jsonl"), "rb") as f:
            size = f.seek(0, os.SEEK_END)
            return {"log_bytes": size, "log_last": last_record_hash(f, size)}
    except (OSError, AttributeError):
        return {}


def _logged_divergence(metrics_path: str, trainer: Trainer, past: int) -> int | None:
    """The step at which this fit (a sweep's single model, known by its tag) diverged after
    step `past` in the log, if it did. A single model's divergence ends its fit, and the
    sweep's next model logs after it, so the resume's cut of records past the latest
    checkpoint (session) does not reach them."""
    if trainer.members or not trainer.tag:
        return None   # a fit of members trains on past one's divergence; a run's main model is the log's tail
    try:
        with open(metrics_path, encoding="utf-8") as f:
            for _, rec in _records(f, '"diverged"'):
                step = rec.get("step")
                if rec.get("event") == "info" and isinstance(step, int) and step > past and _tagged(rec, trainer.tag):
                    return step
    except OSError:
        pass
    return None


def _records(lines, *needles):
    """(index, record) of the metrics.jsonl lines that hold any of `needles` (a cheap test
    before parsing), skipping a record a kill cut off."""
    for n, line in enumerate(lines):
        if any(s in line for s in needles):
            try:
                yield n, json.loads(line)
            except ValueError:
                continue


def _tagged(rec: dict, tag: dict) -> bool:
    return all(rec.get(k) == v for k, v in tag.items())


def _has_trained(metrics_path: str, trainer: Trainer, past: int, dropped: bytes = b"") -> bool:
    """Whether this fit (known by its tag, or its members') lost a checkpoint: metrics.jsonl
    still holds its train records after step `past` (its first checkpoint's; trained again
    from step 0, they would be logged twice), or the run once ended (given a larger --steps,
    its first steps would train under another learning-rate schedule). `dropped`, the records
    the resume took out as stale, count for the second; a fit that diverged needs no
    checkpoint. An untagged fit (a run's main model) is left to the session."""
    tags = [{**trainer.tag, **m} for m in trainer.members] if trainer.members else [trainer.tag]
    if not all(tags):
        return False
    try:
        with open(metrics_path, encoding="utf-8") as f:
            kept = list(f)
    except OSError:
        return False
    lines = [*kept, *dropped.decode("utf-8", "replace").splitlines()]
    ended = any('"event":"summary"' in line for line in lines)
    trained = past_first = False
    for n, rec in _records(lines, '"event":"train"', '"diverged"'):
        if any(_tagged(rec, t) for t in tags):
            if "diverged" in rec:
                return False
            trained = True
            past_first = past_first or (n < len(kept) and (rec.get("step") or 0) > past)
    return past_first or (trained and ended)


def chunked(step_fn):
    """jit of (state, first, data, n) -> (state, metrics stacked over n steps): n steps
    of step_fn in one compiled call (lax.scan), the state buffers donated."""
    def chunk(state, first, data, n):
        def body(s, i):
            return step_fn(s, first + i, data)
        return jax.lax.scan(body, state, jnp.arange(n, dtype=jnp.int32))

    return jax.jit(chunk, static_argnums=3, donate_argnums=0)


def _lowered_flops(lowered) -> float:
    """FLOPs of one step from the lowered (not yet compiled) program; inf if unknown, so
    that an unmeasurable step is dispatched one call each (the safe choice for big steps)."""
    # GPU and TPU backends (PJRT plugins) analyse only compiled programs, which would cost a
    # compilation here: there Lowered.cost_analysis returns None (JAX catches the plugin's
    # NotImplementedError). XLA's HLO cost analysis on the host backend counts the same
    # module's FLOPs; without it, every GPU step was dispatched one call each, also the small
    # ones that run 10x faster scanned (ring8 on an H100 and an H200).
    for analyse in (lambda: lowered.cost_analysis(), lambda: _host_cost(lowered)):
        try:
            cost = analyse()
            cost = cost[0] if isinstance(cost, (list, tuple)) else cost
            return float(cost["flops"])
        except Exception:  # None, no "flops", or a plugin that raises
            continue
    return float("inf")


def _host_cost(lowered) -> dict | None:
    try:
        from jax._src.lib import _jax  # XLA's cost analysis; no public entry point before compiling

        return _jax.hlo_module_cost_analysis(_host_client(), lowered.compiler_ir("hlo").as_hlo_module())
    except Exception:   # the private API moved
        return None


@functools.cache
def _host_client():
    """JAX's CPU client, or, where JAX_PLATFORMS names no CPU (say "cuda", as an H100 run
    of the suite had it, which dispatched every small step one call each), a bare CPU
    client of our own (~10 ms; it only analyses, it runs nothing)."""
    try:
        return jax.local_devices(backend="cpu")[0].client
    except Exception:   # RuntimeError "Unknown backend cpu": JAX_PLATFORMS names no CPU
        from jax._src.lib import xla_client

        return xla_client.make_cpu_client()


def _analyse(compiled, n: int) -> dict:
    """Peak memory of a compiled program of n steps, and FLOPs of a single step (n = 1:
    XLA's cost analysis counts a loop body once, not n times), where XLA reports them."""
    res = {}
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        if n == 1 and cost and cost.get("flops") is not None:
            res["flops"] = float(cost["flops"])
    except Exception:
        pass
    try:
        m = compiled.memory_analysis()
        res["peak_bytes"] = int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
                                - m.alias_size_in_bytes)
    except Exception:  # not every backend implements it
        pass
    return res


def _fmt(v):
    from dlx.output import fmt

    return fmt(v)


def epoch_batch(key, step, n: int, batch: int):
    """Indices of batch number `step` when every epoch visits the n examples in a fresh
    random order (the last partial batch of an epoch is dropped). Pure in (key, step), so
    a resumed run draws exactly the batches the uninterrupted one would have."""
    per_epoch = max(n // batch, 1)
    epoch, i = step // per_epoch, step % per_epoch
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    if batch > n:  # tiny data sets: sample with replacement instead
        return jax.random.randint(jax.random.fold_in(key, step), (batch,), 0, n)
    return jax.lax.dynamic_slice_in_dim(perm, i * batch, batch)


def epoch_order(key, step, n: int, batch: int, order):
    """`epoch_batch` without re-sorting every step: returns (indices, order), where order
    (n,) is the current epoch's random order, recomputed only at an epoch's first batch
    (lax.cond) and carried in the training state (start it with `first_order`). Draws
    exactly the batches epoch_batch draws."""
    if batch > n:
        return epoch_batch(key, step, n, batch), order
    per_epoch = max(n // batch, 1)
    epoch, i = step // per_epoch, step % per_epoch
    order = jax.lax.cond(i == 0, lambda: jax.random.permutation(jax.random.fold_in(key, epoch), n), lambda: order)
    return jax.lax.dynamic_slice_in_dim(order, i * batch, batch), order


def first_order(key, n: int):
    """The order epoch_order starts from (epoch 0's)."""
    return jax.random.permutation(jax.random.fold_in(key, 0), n)


def param_count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
