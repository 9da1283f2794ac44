"""Process-level settings every command applies before JAX starts."""

import ctypes
import os
import subprocess
import sys

import pytest

# A step whose temporaries (two (2048, 8192) float32 arrays, 64 MiB each) never leave the
# call, run CALLS times: whether the allocator setting applied, and the median minor page faults
# of one call. Not the last call's or the fewest: with the setting, the heap still grows by
# the working set in a few calls while its free blocks settle (small live allocations split
# the freed holes), at varying calls: 1-9 of 30 calls here, once all of the first 8.
_FAULTS = """
import resource
from dlx import runtime
applied = runtime.keep_freed_memory()
import jax, jax.numpy as jnp
f = jax.jit(lambda x: (jnp.cumsum(x * 2.0, axis=0) + 1.0).sum())
x = jnp.ones((2048, 8192), jnp.float32)
faults = []
for _ in range(CALLS):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(x).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, sorted(faults)[len(faults) // 2])
"""


def _glibc() -> bool:
    try:
        ctypes.CDLL(None).gnu_get_libc_version
        return True
    except (OSError, AttributeError):
        return False


def _faults(calls=40, **env):
    p = subprocess.run([sys.executable, "-c", _FAULTS.replace("CALLS", str(calls))],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu", **env})
    assert p.returncode == 0, p.stderr
    applied, faults = p.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not _glibc(), reason="the allocator setting is glibc's")
def test_large_temporaries_are_reused_not_faulted_in_every_call():
    # Without the setting, every call maps its 128 MiB of temporaries afresh (32K pages of
    # 4 KiB faulted in); with it, the freed blocks are reused in most calls.
    applied, untuned = _faults(8, DLX_MALLOC_TUNING="0")  # every call faults
    assert not applied
    assert untuned > 16384, "the check no longer sees the faults the setting removes"
    applied, tuned = _faults()
    assert applied
    assert tuned < 1024, f"{tuned} minor page faults in the median call with the setting ({untuned} without)"


_PRECISION = """
from dlx import runtime
runtime.setup_jax()
import jax, jax.numpy as jnp
x, k = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
text = jax.jit(jnp.dot).lower(x[0, 0], k[0, 0]).as_text() + jax.jit(conv).lower(x, k).as_text()
print(runtime.backend_info()["matmul_precision"])
print(sorted({l.split("precision = ")[1].split("]")[0] + "]" for l in text.splitlines() if "precision = " in l}))
"""


@pytest.mark.parametrize("env, want, ops", [
    ({}, "highest", "['[HIGHEST, HIGHEST]']"),                        # full float32, also on GPUs (not TF32)
    ({"JAX_DEFAULT_MATMUL_PRECISION": "tensorfloat32"}, "tensorfloat32", "['[HIGH, HIGH]']"),  # the user's choice wins
])
def test_float32_matmuls_and_convolutions_run_in_float32_unless_the_user_chooses(env, want, ops):
    e = {k: v for k, v in os.environ.items() if k != "JAX_DEFAULT_MATMUL_PRECISION"}
    p = subprocess.run([sys.executable, "-c", _PRECISION], capture_output=True, text=True, timeout=120,
                       env={**e, "JAX_PLATFORMS": "cpu", **env})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == [want, ops]


_IMPORTS = """
import sys
if "preload" in sys.argv:
    import IPython  # as inside a notebook
from dlx import runtime
runtime.setup_jax()
import dlx.train
print("flax.nnx" in sys.modules, "IPython" in sys.modules, "orbax" in sys.modules)
import flax.nnx, IPython  # IPython still importable afterwards
print(IPython.get_ipython.__module__)
"""


def _ipython_installed() -> bool:
    import importlib.util
    return importlib.util.find_spec("IPython") is not None


def test_start_up_imports_neither_ipython_nor_orbax():
    # flax.nnx imports IPython just to ask whether it runs in a notebook (0.36 s of every
    # launch here); orbax (0.28 s) is needed only at a run's first checkpoint.
    p = subprocess.run([sys.executable, "-c", _IMPORTS], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    if not _ipython_installed():
        assert p.stdout.split("\n")[0] == "True False False" and "No module named 'IPython'" in p.stderr
        return
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["True", "False", "False", "IPython.core.getipython"]


@pytest.mark.skipif(not _ipython_installed(), reason="needs IPython installed")
def test_inside_ipython_flax_is_imported_as_usual():
    p = subprocess.run([sys.executable, "-c", _IMPORTS, "preload"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[1:] == ["True", "False", "IPython.core.getipython"]


# XLA:CPU's codegen level: set where the CPU is the only backend, never over the user's.
_FLAGS = """
import os
from dlx import runtime
runtime.setup_jax()
print(os.environ.get("XLA_FLAGS", ""))
"""


@pytest.mark.parametrize("user, want", [("", "--xla_backend_optimization_level=2"),
                                        ("--xla_backend_optimization_level=3", "--xla_backend_optimization_level=3")])
def test_cpu_codegen_level_is_set_unless_the_user_chose_one(user, want):
    p = subprocess.run([sys.executable, "-c", _FLAGS], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": user})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [want]


@pytest.mark.parametrize("platforms, cpu", [("cpu", True), ("cuda", False), ("cpu,cuda", False), ("tpu", False)])
def test_cpu_only_follows_jax_platforms(monkeypatch, platforms, cpu):
    from dlx import runtime

    monkeypatch.setenv("JAX_PLATFORMS", platforms)
    assert runtime.cpu_only() is cpu


@pytest.mark.parametrize("flags, options", [
    ("--xla_backend_optimization_level=2", {"xla_backend_optimization_level": 3}),  # dlx's level: the step keeps -O3
    ("--xla_backend_optimization_level=1", {}),                                      # the user's own level applies
    ("", {}),                                                                        # XLA's defaults
])
def test_a_step_run_one_call_each_compiles_at_xlas_own_level(monkeypatch, flags, options):
    from dlx import runtime

    monkeypatch.setenv("XLA_FLAGS", flags)
    assert runtime.step_compiler_options() == options


def test_dlx_debug_is_off_for_0_false_no_off(monkeypatch):
    from dlx import runtime

    for value, on in (("1", True), ("yes", True), ("0", False), ("false", False), ("OFF", False), ("", False)):
        monkeypatch.setenv("DLX_DEBUG", value)
        assert runtime.debugging() is on, value
    monkeypatch.delenv("DLX_DEBUG")
    assert runtime.debugging() is False
