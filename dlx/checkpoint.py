"""Checkpoints with orbax: the whole training state pytree plus a JSON `meta` entry.

The state is stored as its flat list of leaves and rebuilt against the tree structure of
a freshly initialised (abstract) state, so any pytree a task uses (nnx.State, optax
states, PRNG keys as uint32 arrays) round-trips without orbax knowing its node types.
Orbax writes each step to a temporary directory and renames it when complete, so a
process killed mid-write leaves the previous checkpoint as the latest usable one.

Orbax is imported when a checkpoint is first read or written, not with this module:
importing it took 0.28 s, and a fresh run, which has nothing to restore, needs it only at
its first save, after its first results are on screen. A fresh run imports it on a
background thread as it starts (`prefetch`): on a slower 2-core Intel Xeon the import took
~1.5 s, and a Ctrl-C before the first save waited for it.
"""

from __future__ import annotations

import contextlib
import logging
import os

import jax
import numpy as np

from dlx import runtime
from dlx.errors import LocalFailure, UsageError


def _leaves_dict(tree) -> dict:
    return {f"{i:05d}": leaf for i, leaf in enumerate(jax.tree.leaves(tree))}


@contextlib.contextmanager
def _quiet_orbax():
    """Orbax logs what it skips (a damaged step's metadata) as absl ERROR lines on stderr,
    which is for people and dlx's own messages: dlx reports what matters (a corrupt
    checkpoint it cannot restore) itself, and falls back to an intact one quietly. With
    orbax-checkpoint 0.12.4, a damaged checkpoint's failed reads also reached asyncio's
    logger as the restore's event loop shut down: 1,285 lines above the one-line error."""
    logs = [logging.getLogger(name) for name in ("absl", "asyncio")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


_prefetched = False


def prefetch() -> None:
    """Import orbax on a daemon thread, once, so that the first save (often the one a signal
    asks for) does not wait for the import. The main thread's own import, should it come
    first, waits for this one (Python locks each module while it is imported)."""
    global _prefetched
    if _prefetched:
        return
    _prefetched = True
    import importlib
    import threading

    def load():
        try:
            importlib.import_module("orbax.checkpoint")
        except Exception:   # reported, if it matters, by the save that needs it
            pass

    threading.Thread(target=load, name="dlx-orbax-import", daemon=True).start()


class Checkpointer:
    def __init__(self, directory: str, keep: int = 2):
        self.directory = os.path.abspath(directory)
        self.keep = keep
        self._mngr = None  # orbax's manager, made on first use (it creates the directory)

    def _manager(self):
        if self._mngr is None:
            import orbax.checkpoint as ocp

            self._mngr = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(max_to_keep=self.keep, enable_async_checkpointing=False,
                                                     create=True),
            )
        return self._mngr

    def latest_step(self) -> int | None:
        if self._mngr is None and not os.path.isdir(self.directory):
            return None  # nothing was ever saved here
        with _quiet_orbax():
            return self._manager().latest_step()

    def latest_meta(self) -> dict | None:
        """The latest checkpoint's meta alone (no arrays read); None without one, or if
        it cannot be read (restore then says what is wrong)."""
        step = self.latest_step()
        if step is None:
            return None
        import orbax.checkpoint as ocp

        try:
            with _quiet_orbax():
                got = self._manager().restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            return dict(got["meta"])
        except Exception:  # damaged: left to restore, which reports it
            return None

    def save(self, step: int, state, meta: dict) -> None:
        import orbax.checkpoint as ocp

        try:
            args = ocp.args.Composite(state=ocp.args.StandardSave(_leaves_dict(state)), meta=ocp.args.JsonSave(meta))
            self._manager().save(step, args=args, force=True)
            self._mngr.wait_until_finished()
        except OSError as e:
            raise LocalFailure(f"cannot write checkpoint at step {step} in {self.directory}: {e.strerror or e}; "
                             "earlier checkpoints are intact") from None
        except ValueError as e:  # orbax wraps some I/O failures
            raise LocalFailure(f"cannot write checkpoint at step {step} in {self.directory}: {e}") from None

    def restore(self, abstract_state, step: int | None = None):
        """Return (state, meta) of the latest (or given) step, shaped like abstract_state."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise UsageError(f"no checkpoint in {self.directory}")
        import orbax.checkpoint as ocp

        treedef = jax.tree.structure(abstract_state)
        target = _leaves_dict(abstract_state)
        # Quiet from the start: when one read of a damaged checkpoint fails, the others'
        # callbacks print tracebacks from TensorStore's threads while orbax is still
        # raising (quieted only once it had, they still came first in 2 runs of 6).
        hooks = runtime.quiet_library_threads()
        try:
            args = ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
            with _quiet_orbax():
                got = self._manager().restore(step, args=args)
            for k, want in zip(sorted(target), jax.tree.leaves(abstract_state)):
                have = got["state"][k]
                if have.shape != want.shape or have.dtype != want.dtype:
                    raise ValueError(f"leaf {have.shape}/{have.dtype} where {want.shape}/{want.dtype} expected")
        except Exception as e:  # orbax raises many types for damaged files (quiet stays: see above)
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if len(msg) > 200:   # orbax's messages run to paragraphs: the start, cut at a word
                msg = msg[:200].rsplit(" ", 1)[0] + " ..."
            raise UsageError(f"checkpoint at step {step} in {self.directory} is corrupt or incompatible ({msg})") from None
        runtime.loud_again(hooks)
        # Orbax hands back arrays committed to their device, a fresh state's are not, and jit
        # lowers committed arguments with sharding annotations: another program. A resumed run
        # so missed the compilation cache for its steps (compiled them again, 40 s for
        # cnn-demo on an H200), and a GPU's autotuner could choose apart from the uninterrupted
        # run's. Placed as a fresh state is, its programs are the same ones. One leaf at a
        # time, each dropped once copied: the state is not held twice on the device.
        leaves = [jax.device_put(np.asarray(got["state"].pop(k))) for k in sorted(target)]
        return jax.tree.unflatten(treedef, leaves), dict(got["meta"])

    def close(self) -> None:
        if self._mngr is not None:
            self._mngr.close()
