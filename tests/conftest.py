import atexit
import os
import shutil
import tempfile

# Tests run on the CPU whatever the machine has, with their own cache directory (shared
# by the whole session, so generated data sets and compiled programs are reused). One this
# process made is removed when it ends: each run left ~40 MB in /tmp, 2.8 GB after a few
# hundred runs.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "DLX_CACHE_DIR" not in os.environ:
    os.environ["DLX_CACHE_DIR"] = tempfile.mkdtemp(prefix="dlx-test-cache-")
    atexit.register(shutil.rmtree, os.environ["DLX_CACHE_DIR"], ignore_errors=True)
from dlx import runtime  # noqa: E402

runtime.setup_jax()  # as every command does before XLA starts its threads (allocator, float32 matmuls)
import jax  # noqa: E402
import pytest  # noqa: E402

pytest.register_assert_rewrite("tests.helpers")  # its assertions show their diffs, as a test's do

# Start this process's backend now, with the default XLA flags: in-process dlx calls then
# cannot change it (dlx sets flags for a backend it starts, e.g. the host device count for
# --devices N), whichever test happens to run first on a worker.
jax.devices()

from tests.helpers import DlxResult, dlx, dlx_subprocess  # noqa: E402,F401


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty directory, so default run directories land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
