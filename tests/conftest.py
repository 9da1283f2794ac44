import os
import tempfile

# Tests run on the CPU whatever the machine has, with their own cache directory (shared
# by the whole session, so generated data sets and compiled programs are reused).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("DLX_CACHE_DIR", tempfile.mkdtemp(prefix="dlx-test-cache-"))
# dlx runs --seeds N > 1 with single-threaded Eigen (a work-around for a rare XLA:CPU hang in
# long vmapped runs; tested in test_run_layer.py). The suite's short runs keep XLA's default
# pool: with two xdist workers on two cores, single-threaded Eigen in every compare-rnn and
# seeded subprocess made the suite about a minute slower. An explicit flag wins over dlx's.
if "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true").strip()

import jax  # noqa: E402
import pytest  # noqa: E402

# Start this process's backend now, with the default XLA flags: in-process dlx calls then
# cannot change it (dlx sets flags for a backend it starts, e.g. single-threaded Eigen for
# --seeds N), whichever test happens to run first on a worker.
jax.devices()

from tests.helpers import DlxResult, dlx, dlx_subprocess  # noqa: E402,F401


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty directory, so default run directories land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
