"""The command line as scripts and people meet it: help, version, exit codes, bad input."""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import dlx, dlx_subprocess

NO_JAX = ("import sys; from dlx.cli import main\n"
          "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
          "assert 'jax' not in sys.modules, 'jax was imported'\nsys.exit(code)")


def _no_jax(*args):
    return subprocess.run([sys.executable, "-c", NO_JAX, *args], capture_output=True, text=True, timeout=60)


def test_help_does_not_import_jax():
    p = _no_jax("--help")
    assert p.returncode == 0, p.stderr
    assert "cnn-demo" in p.stdout + p.stderr


@pytest.mark.parametrize("args", [["cnn-demo", "--steps", "0", "--pool", "median"],
                                  ["cnn-demo", "--batch-size", "0"],
                                  ["cnn-demo", "--lr", "nan"],
                                  ["cnn-demo", "--no-such-option"],
                                  # these two were said after importing JAX (1 s, not 0.2)
                                  ["cnn-demo", "--devices", "2", "--batch-size", "7"],
                                  ["cnn-demo", "--devices", str((os.cpu_count() or 1) + 1)]])
def test_argument_errors_do_not_import_jax(args):
    p = _no_jax(*args)
    assert p.returncode == 2, p.stderr


def test_version_and_module_entry_point():
    from dlx import __version__

    p = dlx_subprocess("--version")
    assert p.code == 0 and p.stdout.strip() == f"dlx {__version__}"


@pytest.mark.parametrize("args, needle", [
    (["cnn-demo", "--pool", "median"], "--pool must be one of max, avg, none"),
    (["cnn-demo", "--padding", "full"], "--padding must be one of same, valid"),
    (["cnn-demo", "--steps", "-1"], "--steps must be a non-negative integer"),
    (["cnn-demo", "--batch-size", "0"], "--batch-size must be a positive integer"),
    (["cnn-demo", "--lr", "inf"], "--lr must be a finite number > 0"),
    (["cnn-demo", "--lr", "-0.1"], "--lr must be a finite number > 0"),
    (["cnn-demo", "--channels", "8"], "--channels takes two values"),
    (["cnn-demo", "--dataset", "cifar"], "--dataset must be one of"),
    (["cnn-demo", "--steps", "ten"], "Invalid value for '--steps'"),
    (["cnn-demo", "--dataset", "mnist"], "needs --data PATH"),
    (["cnn-demo", "--dataset", "mnist", "--data", "/nonexistent/file.gz"], "no such file"),
    (["cnn-demo", "--kernel", "9", "--padding", "valid"], "does not fit"),
    (["cnn-demo", "--resume", "/nonexistent/run"], "no such directory"),
    (["cnn-demo", "--resume", os.__file__], "not a directory"),
    (["cnn-demo", "--dataset", "mnist", "--data", ""], "--data must name a file, got ''"),   # was the cwd
    # Beyond int32 / float32: these passed, then crashed or filled the memory mid-run.
    (["cnn-demo", "--steps", "99999999999"], "--steps must be at most 2147483647"),
    (["train-gan", "--seed", "99999999999999999999"], "--seed must be at most 2147483647"),
    (["cnn-demo", "--lr", "1e308"], "(float32: at most 3.4e38)"),
    (["compare-rnn", "--seq-len", "99999999999"], "--seq-len must be at most 2147483647"),
    (["compare-rnn", "--cells", "rnn,,gru"], "--cells has an empty item"),
    (["grad-probe", "--init", "he,"], "--init has an empty item"),
    (["grad-probe", "--depth", "10,10"], "--depth lists a value twice"),
    (["compare-rnn", "--seq-len", "25,25"], "--seq-len lists a value twice"),
    (["compare-rnn", "--seq-len", "25,025"], "--seq-len lists a value twice"),
    (["grad-probe", "--init-scale", "1,1.0"], "--init-scale lists a value twice"),
    (["no-such-command"], "No such command"),
    # Options that would do nothing here are refused, not silently ignored.
    (["train-gan", "--depth", "3"], "--depth sets the 2-D toys' MLPs"),
    (["grad-probe", "--optimizer", "adam"], "--optimizer acts during training: add --train-steps N"),
    (["grad-probe", "--lr", "0.5"], "--lr acts during training"),
    (["grad-probe", "--eval-every", "7"], "--eval-every acts during training"),
    (["cnn-demo", "--shapes-only", "--noise", "0.3"], "--noise does nothing with --shapes-only"),
    (["cnn-demo", "--shapes-only", "--steps", "5"], "--steps does nothing with --shapes-only"),
    (["cnn-demo", "--shapes-only", "--seed", "3"], "--seed does nothing with --shapes-only"),
    (["cnn-demo", "--shapes-only", "--no-mlp-baseline"], "--no-mlp-baseline does nothing"),   # named --mlp-baseline
    (["cnn-demo", "--pool", "none", "--padding", "valid", "--kernel", "9"], "or a smaller --kernel or --stride"),
    (["cnn-demo", "--pool", "none", "--pool-size", "3"], "--pool-size applies to --pool max or avg"),
    (["compare-rnn", "--match-params", "--cells", "gru"], "give two or more --cells"),
    (["cnn-demo", "--out", ""], "--out must name a directory"),
    # --devices where nothing trains (the probe alone) was taken, and refused valid batches
    (["grad-probe", "--devices", "2"], "--devices acts during training: add --train-steps N"),
    (["grad-probe", "--arch", "rnn", "--devices", "2"], "--devices acts during training, which the RNN probe"),
    (["cnn-demo", "--coordinator", "127.0.0.1:1234"], "joins a multi-host run"),
    (["train-gan", "--dataset", "ring8", "--lr-g", "1e-3", "--lr-d", "1e-3", "--lr", "0.5"], "it does nothing"),
    # Each failed as an internal error (exit 1) once the work had begun.
    (["bench", "ring8", "--batch", "3"], "--batch 3 must be a multiple of 2 for ring8"),
    (["grad-probe", "--arch", "rnn", "--seq-len", "1"], "--seq-len must be at least 2"),
    (["grad-probe", "--arch", "rnn", "--lr", "0.5"], "--lr acts during training, which the RNN probe does not do"),
    (["grad-probe", "--arch", "rnn", "--eval-every", "5"], "--eval-every acts during training"),
    # A malformed address failed with an IndexError inside JAX; a port out of range hung.
    (["cnn-demo", "--coordinator", "bad", "--num-processes", "2"], "--coordinator must be HOST:PORT"),
    (["cnn-demo", "--coordinator", "127.0.0.1:99999", "--num-processes", "2"], "a port from 1 to 65535"),
    (["cnn-demo", "--coordinator", ":1234", "--num-processes", "2"], "--coordinator must be HOST:PORT"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, args, needle):
    r = dlx(*args, "--json")
    assert r.code == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr
    assert os.listdir(in_tmp) == []
    errs = [rec for rec in r.records if rec["event"] == "error"]
    assert errs and errs[-1]["exit_code"] == 2
    # Every record names its run (null when bad options stopped it before one existed)
    # and command (null when there is none); the records of option errors lacked both.
    assert "run" in errs[-1] and errs[-1]["command"] == (args[0] if args[0] != "no-such-command" else None)


def test_wrong_magic_and_truncated_idx_files(in_tmp):
    bad = in_tmp / "x-images-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x09\x03" + b"\x00" * 20)
    r = dlx("cnn-demo", "--dataset", "mnist", "--data", str(bad))
    assert r.code == 2 and "wrong magic" in r.stderr
    bad.write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100)
    r = dlx("cnn-demo", "--dataset", "mnist", "--data", str(bad))
    assert r.code == 2 and "truncated" in r.stderr
    assert sorted(os.listdir(in_tmp)) == ["x-images-idx3-ubyte"]


def test_out_that_cannot_be_created(in_tmp):
    (in_tmp / "file").write_text("x")
    r = dlx("cnn-demo", "--steps", "1", "--out", str(in_tmp / "file" / "run"))
    assert r.code == 2 and "cannot create" in r.stderr
    assert sorted(os.listdir(in_tmp)) == ["file"]


def test_sizes_beyond_memory_are_a_clear_runtime_error(in_tmp):
    # 10**8 points a batch: XLA cannot allocate the step's 411 GiB; that was "internal error".
    r = dlx("train-gan", "--dataset", "ring8", "--batch-size", "100000000", "--steps", "2", "--out", "big", "--json")
    assert r.code == 1
    lines = [l for l in r.stderr.splitlines() if l.startswith("error")]
    assert lines == [lines[0]] and re.match(r"error: out of memory \(\d+\.\d GiB requested\); try smaller sizes", lines[0])
    assert r.records[-1]["event"] == "error" and r.records[-1]["kind"] == "runtime"
    assert r.records[-1]["run"] == r.records[0]["run"] is not None   # the run its config record named
    # The same failure reported by XLA as INTERNAL (a 1e6-wide net's weights at init).
    r = dlx("grad-probe", "--width", "1000000", "--out", "wide")
    assert r.code == 1 and re.search(r"error: out of memory \(\d+\.\d GiB requested\)", r.stderr), r.stderr
    # Past 2^64 bytes XLA aborts the whole process (exit 134, a C++ message); dlx turns
    # such sizes away from their shapes, before compiling anything.
    huge = "2147483647"
    for args in (("grad-probe", "--arch", "mlp", "--width", huge), ("grad-probe", "--arch", "rnn", "--width", huge),
                 ("compare-rnn", "--batch-size", huge, "--seq-len", huge, "--steps", "1")):
        r = dlx(*args, "--out", f"huge-{args[0]}-{args[2]}")
        assert r.code == 1 and re.search(r"error: out of memory \(\d+\.\d GiB requested\)", r.stderr), r.stderr


@pytest.mark.parametrize("args", [["train-lstm", "--layers"], ["compare-rnn", "--layers"], ["grad-probe", "--depth"],
                                  ["train-gan", "--dataset", "ring8", "--depth"]])
def test_more_layers_than_the_memory_could_build_are_refused_up_front(in_tmp, args):
    # --layers 2147483647 filled the memory (4 GB in 3 s) until the system killed dlx,
    # without a word: the model's list of layers alone needs ~10 TiB of Python objects.
    r = dlx(*args, "2147483647", "--steps", "1", "--json")
    assert r.code == 1
    assert re.fullmatch(r"error: out of memory \(\d+\.\d GiB requested to build --(layers|depth) 2147483647, this "
                        r"machine has \d+\.\d GiB\); try fewer layers", r.stderr.strip()), r.stderr
    assert r.records[-1]["event"] == "error" and r.records[-1]["exit_code"] == 1
    assert os.listdir(in_tmp) == []


def test_copy_task_lengths_must_fit_int32_with_its_20_extra_steps(in_tmp):
    from dlx.config import COPY_EXTRA_STEPS
    from dlx.tasks.sequence import make_task

    assert make_task("copy", seq_len=5).length == 5 + COPY_EXTRA_STEPS
    for args in (("train-lstm", "--task", "copy", "--seq-len", "2147483640"),
                 ("compare-rnn", "--task", "copy", "--seq-len", "20,2147483628")):
        r = dlx(*args, "--steps", "1", "--out", "run")
        assert r.code == 2 and "T must be at most 2147483627" in r.stderr, r.stderr
        assert not os.path.exists("run")


def test_out_of_memory_line_reads_each_backends_wording():
    """The GPU says it otherwise than XLA:CPU: an H200 run of the suite printed "an allocation
    failed" for the test above, whose request was in its autotuner's message in GiB."""
    from dlx.session import _oom_request

    assert _oom_request("RESOURCE_EXHAUSTED: Out of memory allocating 441234567168 bytes.") == "410.9 GiB requested"
    assert _oom_request("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 102433554448 bytes.") == "95.4 GiB requested"
    assert _oom_request("Status: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 47.70GiB with allocator "
                        "GPU_0_bfc on device 0.") == "47.7 GiB requested"
    assert _oom_request("RESOURCE_EXHAUSTED: failed to allocate memory") == "an allocation failed"


@pytest.mark.parametrize("cache", ["dlx cache", "none"])
def test_an_unwritable_home_leaves_stderr_quiet(in_tmp, cache):
    # matplotlib warned twice (config directory not writable, a temporary one made), under
    # --quiet too, and built its font cache afresh each run: it now keeps it in dlx's cache
    # directory where that is writable, and is quiet where nothing is.
    env = {"HOME": "/proc/no-home", "XDG_CONFIG_HOME": "", "XDG_CACHE_HOME": "", "MPLCONFIGDIR": "",
           "DLX_CACHE_DIR": str(in_tmp / "cache") if cache == "dlx cache" else ""}
    env = {k: v for k, v in env.items() if v}
    e = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR",
                                                          "DLX_CACHE_DIR")}
    p = subprocess.run([sys.executable, "-m", "dlx", "cnn-demo", "--steps", "4", "--log-every", "2",
                        "--eval-every", "4", "--no-mlp-baseline", "--feature-maps", "0", "--channels", "2,4",
                        "--hidden", "8", "--quiet", "--out", "run"], env={**e, **env}, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert os.path.isfile("run/curves.png")
    assert os.path.isdir(in_tmp / "cache" / "matplotlib") == (cache == "dlx cache")


def test_a_value_not_measured_reads_as_a_dash_for_people():
    from dlx.output import fmt

    assert fmt(None) == "-"   # the results table of --steps 0 read "None" for ms_per_step
    assert (fmt(True), fmt(1234), fmt(0.5)) == ("True", "1,234", "0.5")
