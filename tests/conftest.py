import os
import tempfile

# Tests run on the CPU whatever the machine has, with their own cache directory (shared
# by the whole session, so generated data sets and compiled programs are reused).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("DLX_CACHE_DIR", tempfile.mkdtemp(prefix="dlx-test-cache-"))

import pytest  # noqa: E402

from tests.helpers import DlxResult, dlx, dlx_subprocess  # noqa: E402,F401


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty directory, so default run directories land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
