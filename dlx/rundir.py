"""Run directories: create or reopen one, hold it exclusively, write files atomically.

A run directory holds config.json, metrics.jsonl, summary.json, PNG plots and
checkpoints/ (orbax). It is created only once the inputs have been validated, so bad
input leaves nothing behind; it refuses to replace an existing run unless --force, never
deletes a directory that holds no dlx run (not even with --force), and two processes given
the same directory cannot both hold it.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import re
import secrets
import shutil
import tempfile

from dlx.errors import LocalFailure, UsageError

LOCK = ".lock"

# Every name a run writes at its top level (tests check each command's run against it):
# --force deletes these and nothing else, so a user's own file kept among them survives.
RUN_FILES = re.compile(
    r"(config\.json|metrics\.jsonl|summary\.json|gates\.json|checkpoints|scatter_points\.npz"
    r"|(curves|compare|scatter|samples|gates|grad_norms)\.png|samples_step\d+\.png"
    r"|feature_maps_conv\d+\.png|\.tmp-.*)"
)


def is_run_file(name: str) -> bool:
    return RUN_FILES.fullmatch(name) is not None


def new_run_id(command: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{command}-{stamp}-{secrets.token_hex(2)}"


def is_run(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "config.json"))


def holds_dlx_run(path: str) -> bool:
    """Whether path's config.json is one dlx wrote (a run id, a command, a config object),
    not merely a file of that name: --force deletes only what a run directory holds."""
    try:
        saved = read_config(path)
    except UsageError:
        return False
    return isinstance(saved.get("run"), str) and isinstance(saved["config"].get("command"), str)


def not_a_dir(path: str) -> str:
    """Why path, which is not a directory, cannot be a run's: for --resume and --from."""
    return "not a directory" if os.path.exists(path) else "no such directory"


def read_config(path: str) -> dict:
    if not os.path.isdir(path):
        raise UsageError(f"--resume {path}: {not_a_dir(path)}")
    if not is_run(path):
        raise UsageError(f"--resume {path}: not a dlx run directory (no config.json)")
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            saved = json.load(f)
        if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
            raise ValueError("no config object")
        return saved
    except (OSError, ValueError) as e:
        raise UsageError(f"--resume {path}: config.json is unreadable ({e})") from None


def last_record_hash(f, end: int) -> str | None:
    """Names the metrics.jsonl record (binary file f) that ends at offset `end`, from at most
    its last 64 KiB: a checkpoint notes the one logged before it, and a resume finds that
    place again by it. None where `end` is not a record's end."""
    import hashlib

    start = max(end - 65536, 0)
    f.seek(start)
    head = f.read(end - start)
    if head and not head.endswith(b"\n"):
        return None
    parts = head.rsplit(b"\n", 2)
    return hashlib.sha1(parts[-2] if len(parts) > 1 else b"").hexdigest()[:16]


def atomic_write(path: str, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class RunDir:
    """An open, locked run directory."""

    def __init__(self, path: str, *, resume: bool, force: bool):
        self.path = path
        self.created = False
        self._lock_fd = None
        if resume:
            self._lock()
            return
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(f"--out {path}: exists and is not a directory")
        if not os.path.exists(path):
            try:
                os.makedirs(path)
            except FileExistsError:
                pass  # another process made it first: the lock below decides
            except OSError as e:
                raise UsageError(f"--out {path}: cannot create directory ({e.strerror})") from None
            else:
                self.created = True
        if not os.access(path, os.W_OK):
            self._undo()
            raise UsageError(f"--out {path}: directory is not writable")
        self._refuse_foreign(path)  # before the lock, which would leave a .lock among them
        self._lock()
        self._refuse_foreign(path)
        leftovers = [n for n in os.listdir(path) if n != LOCK]
        if leftovers and not force:
            self.close()
            try:   # a layer table saved with --shapes-only has no training to continue
                table_only = read_config(path)["config"].get("shapes_only") is True
            except UsageError:
                table_only = False
            raise UsageError(f"--out {path} already holds a layer table: --force to replace it" if table_only else
                             f"--out {path} already holds a run: use --resume {path} to continue it or --force to "
                             "replace it")
        for n in filter(is_run_file, leftovers):  # --force: the old run's files, no one else's
            p = os.path.join(path, n)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)

    def _refuse_foreign(self, path: str) -> None:
        # A non-empty directory that holds no run has someone's own files in it: not even
        # --force deletes them.
        if any(n != LOCK for n in os.listdir(path)) and not holds_dlx_run(path):
            self.close()
            raise UsageError(f"--out {path} is not empty and holds no dlx run: give a new or empty directory")

    def _lock(self) -> None:
        try:
            self._lock_fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            self._undo()
            raise UsageError(f"{self.path} is in use by another dlx process; give each run its own --out") from None
        except OSError as e:
            self._undo()
            raise UsageError(f"{self.path}: cannot open run directory ({e.strerror})") from None

    def _undo(self) -> None:
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            self.created = False

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def write_json(self, name: str, obj) -> None:
        try:
            atomic_write(self.file(name), json.dumps(obj, indent=2) + "\n")
        except OSError as e:
            raise LocalFailure(f"cannot write {self.file(name)}: {e.strerror}") from None

    def close(self, *, discard: bool = False) -> None:
        if self._lock_fd is not None:  # the .lock file stays; only the flock is released
            os.close(self._lock_fd)
            self._lock_fd = None
        if discard:
            self._undo()
