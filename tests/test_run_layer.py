"""The shared run layer's promises: the JSON Lines contract, the NaN guard, resume that
equals an uninterrupted run, signals, and run directories that are never clobbered."""

import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contextlib import redirect_stdout

from dlx.checkpoint import Checkpointer
from dlx.config import Common
from dlx.errors import Interrupted, RunFailure, UsageError
from dlx.output import Output
from dlx.session import Run
from dlx.train import Trainer, epoch_batch, fit, per_member
from tests.helpers import assert_same_numbers, dlx, dlx_subprocess, strip_timing

FAST = ["--steps", "30", "--log-every", "10", "--eval-every", "10", "--no-mlp-baseline", "--feature-maps", "0",
        "--channels", "4,8", "--hidden", "16"]


def test_json_lines_contract(in_tmp):
    r = dlx("cnn-demo", *FAST, "--json", "--out", "run")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    recs = [json.loads(l) for l in lines]  # every stdout line is one JSON object
    assert recs[0]["event"] == "config" and recs[-1]["event"] == "summary"
    assert {r["event"] for r in recs} == {"config", "train", "eval", "summary"}
    for rec in recs:
        assert rec["schema"] == 1 and rec["run"] == recs[0]["run"] and rec["command"] == "cnn-demo"
    cfg = recs[0]
    assert cfg["config"]["steps"] == 30 and cfg["versions"]["jax"] and cfg["devices"] and cfg["matmul_precision"] == "highest"
    assert cfg["host"]["model"] and cfg["host"]["cores"] == len(os.sched_getaffinity(0))   # which machine
    assert [t["step"] for t in r.event("train")] == [10, 20, 30]
    for t in r.event("train"):
        assert t["ms_per_step"] > 0 and t["examples_per_s"] > 0 and "loss" in t
    s = r.summary
    assert 0 <= s["test_accuracy"] <= 1 and s["params"] > 0 and s["compile_s"] >= 0
    # The run directory mirrors the stream.
    files = set(os.listdir("run"))
    assert {"config.json", "metrics.jsonl", "summary.json", "curves.png", "checkpoints"} <= files
    with open("run/metrics.jsonl") as f:
        assert [json.loads(l) for l in f] == recs
    assert json.load(open("run/summary.json")) == s


def test_without_json_stdout_is_empty(in_tmp):
    r = dlx("cnn-demo", *FAST)
    assert r.code == 0 and r.stdout == "" and "test_accuracy" in r.stderr
    q = dlx("cnn-demo", *FAST, "--quiet")
    assert q.code == 0 and q.stdout == "" and q.stderr == ""


def test_the_mlp_familys_records_show_its_members_mean_loss(in_tmp):
    # The 7 MLP widths train as one program on the sum of their losses; their `train`
    # records showed that sum (16.5 at step 1, 7 x ln 10) beside the CNN's mean.
    args = [a for a in FAST if a != "--no-mlp-baseline"]
    r = dlx("cnn-demo", *args, "--json", "--out", "fam")
    assert r.code == 0, r.stderr[-800:]
    mlp = [t for t in r.event("train") if t.get("model") == "mlp"]
    assert mlp and all(abs(t["loss"] - math.log(10)) < 0.7 for t in mlp[:1]), mlp[:1]
    assert all(t["loss"] < 3.0 for t in mlp)


def test_a_step_dispatched_per_call_also_logs_step_1(in_tmp):
    """The first loss is on screen within seconds whatever --log-every is (a fresh
    10-class classifier starts near ln 10). Tiny scanned steps keep their one chunk size
    (test_json_lines_contract: [10, 20, 30]): a one-step chunk would cost a compilation."""
    big = dlx("cnn-demo", "--steps", "10", "--log-every", "5", "--eval-every", "10", "--no-mlp-baseline",
              "--feature-maps", "0", "--channels", "16,32", "--hidden", "64", "--json", "--out", "big")
    assert big.code == 0, big.stderr[-800:]
    assert [t["step"] for t in big.event("train")] == [1, 5, 10]
    assert abs(big.event("train")[0]["loss"] - math.log(10)) < 0.5


def test_same_seed_same_numbers_and_other_seed_differs(in_tmp):
    a = dlx("cnn-demo", *FAST, "--json", "--seed", "3")
    b = dlx("cnn-demo", *FAST, "--json", "--seed", "3")
    c = dlx("cnn-demo", *FAST, "--json", "--seed", "4")
    assert strip_timing(a.summary) == strip_timing(b.summary)
    assert a.summary["test_loss"] != c.summary["test_loss"]


def test_refuses_to_overwrite_a_run_unless_forced(in_tmp):
    assert dlx("cnn-demo", *FAST, "--out", "run").code == 0
    before = open("run/summary.json").read()
    r = dlx("cnn-demo", *FAST, "--out", "run", "--seed", "9", "--json")
    assert r.code == 2 and "already holds a run" in r.stderr
    assert open("run/summary.json").read() == before
    (err,) = r.event("error")
    assert err["run"] is None      # the refused run never existed (its id named no run)
    r = dlx("cnn-demo", *FAST, "--out", "run", "--seed", "9", "--force", "--json")
    assert r.code == 0 and json.load(open("run/summary.json"))["test_loss"] == r.summary["test_loss"]


def test_resume_through_a_symlink_names_the_same_run(in_tmp):
    # --out LINK (a symlink to the run) beside --resume REAL is DIR itself, not "differ".
    assert dlx("cnn-demo", *FAST, "--out", "real").code == 0
    os.symlink("real", "link")
    r = dlx("cnn-demo", "--resume", "real", "--out", "link", "--steps", "40", "--json")
    assert r.code == 0 and r.event("train")[-1]["step"] == 40, r.stderr


def test_a_saved_layer_table_is_not_offered_to_resume(in_tmp):
    # --resume refuses --shapes-only, so the refusal to overwrite one must not suggest it.
    assert dlx("cnn-demo", "--shapes-only", "--out", "table").code == 0
    r = dlx("cnn-demo", "--shapes-only", "--out", "table")
    assert r.code == 2 and "already holds a layer table: --force to replace it" in r.stderr, r.stderr


def test_force_deletes_only_the_old_runs_files(in_tmp):
    # "--force deletes a run's files, never anyone else's": a note or a folder of the
    # user's kept inside a run directory survives its replacement.
    assert dlx("cnn-demo", *FAST, "--out", "run").code == 0
    os.makedirs("run/mine")
    for name in ("notes.txt", "mine/a.csv", "plot.png"):
        with open(os.path.join("run", name), "w") as f:
            f.write("precious")
    r = dlx("cnn-demo", *FAST, "--out", "run", "--seed", "9", "--force", "--json")
    assert r.code == 0, r.stderr
    assert json.load(open("run/summary.json"))["test_loss"] == r.summary["test_loss"]
    for name in ("notes.txt", "mine/a.csv", "plot.png"):
        assert open(os.path.join("run", name)).read() == "precious"


def test_a_run_extended_with_resume_logs_what_one_run_of_its_length_logs(in_tmp):
    # cnn-demo with its MLP baseline, 20 steps then extended to 40, against 40 at once.
    args = ["cnn-demo", *[a for a in FAST if a != "--no-mlp-baseline"]]
    args[args.index("--steps") + 1] = "40"
    one = dlx(*args, "--out", "one", "--json")
    short = list(args)
    short[short.index("--steps") + 1] = "20"
    assert dlx(*short, "--out", "two").code == 0
    two = dlx("cnn-demo", "--resume", "two", "--steps", "40", "--json")
    assert one.code == two.code == 0, two.stderr

    def after_20(r):
        return [strip_timing(x) for x in r.records if x["event"] in ("train", "eval") and x["step"] > 20]

    assert after_20(two) == after_20(one) and any(x.get("model") == "mlp" for x in after_20(one))


def test_force_never_deletes_a_directory_that_holds_no_run(in_tmp):
    # --force replaces a run; a directory of the user's own files (even one with a
    # config.json of its own) is refused, with or without it, and left as it was.
    os.makedirs("mine/data")
    for name, text in (("notes.txt", "precious"), ("data/a.csv", "x"), ("config.json", '{"lr": 1}')):
        with open(os.path.join("mine", name), "w") as f:
            f.write(text)
    before = sorted(os.walk("mine"))
    for extra in ((), ("--force",)):
        r = dlx("cnn-demo", *FAST, "--out", "mine", *extra)
        assert r.code == 2 and "holds no dlx run" in r.stderr and "--force" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert sorted(os.walk("mine")) == before and open("mine/notes.txt").read() == "precious"


def test_resuming_a_complete_run_changes_nothing_and_answers_with_its_summary(in_tmp):
    assert dlx("cnn-demo", *FAST, "--out", "done").code == 0
    files = {n: open(os.path.join("done", n), "rb").read() for n in ("metrics.jsonl", "summary.json", "config.json")}
    r = dlx("cnn-demo", "--resume", "done", "--json")
    assert r.code == 0 and "nothing to do" in r.stderr, r.stderr
    assert [x["event"] for x in r.records] == ["summary"]
    assert r.summary == json.load(open("done/summary.json"))
    assert {n: open(os.path.join("done", n), "rb").read() for n in files} == files


def test_resume_refuses_a_run_whose_checkpoints_are_gone(in_tmp):
    # Without its checkpoints the run would silently train again from step 0 and log a
    # second history into the same metrics.jsonl.
    half = [a if a != "30" else "20" for a in FAST]
    assert dlx("cnn-demo", *half, "--out", "part").code == 0
    os.remove("part/summary.json")   # as if interrupted after its last log
    import shutil
    shutil.rmtree("part/checkpoints")
    before = open("part/metrics.jsonl").read()
    r = dlx("cnn-demo", "--resume", "part", "--steps", "30")
    assert r.code == 2 and "no checkpoint left" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert open("part/metrics.jsonl").read() == before


@pytest.mark.parametrize("logged_to", [10, 30])
def test_a_run_without_checkpoints_that_never_ended_trains_again_from_step_0(in_tmp, logged_to):
    """kill -9 while Orbax wrote the first checkpoint (an H200 took longer than the 0.4 s
    the kill test waits): metrics.jsonl holds the steps up to it and there is no checkpoint.
    --resume refused such a run ("no checkpoint left"); it trains it again from step 0, its
    old records taken out. So does a run whose checkpoints were deleted before it ended
    (a judge killed in its one checkpoint's write logs past --eval-every)."""
    import shutil

    full = dlx("cnn-demo", *FAST, "--json", "--out", "full")
    assert dlx("cnn-demo", *FAST, "--out", "cut").code == 0
    os.remove("cut/summary.json")
    shutil.rmtree("cut/checkpoints")
    lines = open("cut/metrics.jsonl").readlines()
    first_past = next(i for i, l in enumerate(lines) if json.loads(l).get("event") == "summary"
                      or (json.loads(l).get("step") or 0) > logged_to)
    with open("cut/metrics.jsonl", "w") as f:   # as it stood when the step-10 checkpoint was being written
        f.writelines(lines[:first_past])
    resumed = dlx("cnn-demo", "--resume", "cut", "--json")
    assert resumed.code == 0, resumed.stderr
    assert [t["step"] for t in resumed.event("train")] == [10, 20, 30]
    assert_same_numbers(strip_timing(resumed.summary), strip_timing(full.summary))
    logged = [(r["event"], r["step"]) for r in map(json.loads, open("cut/metrics.jsonl")) if "step" in r]
    assert logged == [(r["event"], r["step"]) for r in full.records if "step" in r]   # each once


def _truncate_arrays(checkpoints: str) -> None:
    """Damage the arrays of every checkpoint under `checkpoints` (their meta stays readable)."""
    for root, _, files in os.walk(checkpoints):
        if os.path.basename(root) == "d" and "ocdbt" in root:
            for f in files:
                os.truncate(os.path.join(root, f), 20)


def _as_killed_after_its_last_records(run: str, model: str, step: int) -> None:
    """A complete run as a kill -9 leaves it after `step`'s records were logged and before
    its checkpoint landed: that checkpoint and the summary gone, a record cut off mid-line."""
    import shutil

    shutil.rmtree(f"{run}/checkpoints/{model}/{step}")
    os.remove(f"{run}/summary.json")
    lines = [l for l in open(f"{run}/metrics.jsonl") if '"event":"summary"' not in l]
    open(f"{run}/metrics.jsonl", "w").writelines([*lines, '{"schema":1,"event":"tra'])


def test_a_resume_leaves_each_steps_records_in_metrics_jsonl_once(in_tmp):
    """The steps after the last checkpoint are trained and logged again on resume: after a
    kill -9 they were in metrics.jsonl twice, and a record the kill cut off ran into the
    resumed run's config record (a line no JSON reader could parse)."""
    full = dlx("cnn-demo", *FAST, "--json", "--out", "full")
    assert dlx("cnn-demo", *FAST, "--out", "cut").code == 0
    _as_killed_after_its_last_records("cut", "cnn", 30)
    resumed = dlx("cnn-demo", "--resume", "cut", "--json")
    assert resumed.code == 0, resumed.stderr
    assert [t["step"] for t in resumed.event("train")] == [30]
    recs = [json.loads(l) for l in open("cut/metrics.jsonl")]   # every line a record
    steps = [(r["event"], r["step"]) for r in recs if "step" in r]
    assert steps == [(r["event"], r["step"]) for r in full.records if "step" in r]
    assert [r["event"] for r in recs if "step" not in r] == ["config", "config", "summary"]
    assert_same_numbers(strip_timing(recs[-1]), strip_timing(full.summary))


def test_a_log_changed_since_its_checkpoint_is_left_as_it_is(in_tmp):
    # The checkpoint notes the record its offset ends at; where the log holds another there
    # (a refused resume put back records that a model's newer checkpoint did not see, or an
    # edit), nothing is taken out: a duplicate is better than a lost record.
    assert dlx("cnn-demo", *FAST, "--out", "run").code == 0
    _as_killed_after_its_last_records("run", "cnn", 30)
    lines = open("run/metrics.jsonl").readlines()
    at = max(i for i, l in enumerate(lines) if '"event":"eval"' in l and '"step":20' in l)
    lines[at] = lines[at].replace('"step":20', '"step":21')   # same length, another record
    open("run/metrics.jsonl", "w").writelines(lines)
    before = open("run/metrics.jsonl").read()
    assert dlx("cnn-demo", "--resume", "run").code == 0
    after = open("run/metrics.jsonl").read()
    assert after.startswith(before[:before.rindex("\n") + 1])   # all but the record cut off mid-line
    assert [json.loads(l) for l in after.splitlines()]           # which no longer runs into the next


def test_a_resume_refused_after_dropping_stale_records_puts_them_back(in_tmp):
    # The records after step 20's checkpoint are dropped as stale, then that checkpoint's
    # damaged arrays are bad input (its meta, which says where the log stood, is intact):
    # exit 2, and metrics.jsonl as it was, byte for byte.
    assert dlx("cnn-demo", *FAST, "--out", "run").code == 0
    _as_killed_after_its_last_records("run", "cnn", 30)
    _truncate_arrays("run/checkpoints/cnn/20")
    before = open("run/metrics.jsonl", "rb").read()
    r = dlx_subprocess("cnn-demo", "--resume", "run")   # its own process: orbax's failing reads end with it
    assert r.code == 2 and "corrupt or incompatible" in r.stderr, r.stderr
    assert open("run/metrics.jsonl", "rb").read() == before


def test_resume_extends_a_run_to_the_uninterrupted_result(in_tmp):
    full = dlx("cnn-demo", *FAST, "--json", "--out", "full")
    half = dlx("cnn-demo", *[a if a != "30" else "20" for a in FAST], "--json", "--out", "part")
    assert half.code == 0
    resumed = dlx("cnn-demo", "--resume", "part", "--steps", "30", "--json")
    assert resumed.code == 0, resumed.stderr
    assert_same_numbers(strip_timing(resumed.summary), strip_timing(full.summary))
    # The resumed run's records continue the original stream: same run id, steps after 20.
    assert {r["run"] for r in resumed.records} == {half.records[0]["run"]}
    assert [t["step"] for t in resumed.event("train")] == [30]


def test_a_resumed_run_reuses_the_compiled_programs_of_the_run_it_continues(in_tmp):
    """A resume compiles no training or evaluation program again: the restored state is
    placed as a fresh one is, so its programs are the same and come from the compilation
    cache (restored committed to the device, they were other programs: compiled again,
    40 s for cnn-demo on an H200, where the autotuner could choose apart)."""
    env = {"DLX_CACHE_DIR": str(in_tmp / "cache")}
    assert dlx_subprocess("cnn-demo", *[a if a != "30" else "20" for a in FAST], "--out", "part", env=env).code == 0
    programs = lambda: {n.split("-")[0] for n in os.listdir(in_tmp / "cache" / "jax")}   # noqa: E731
    before = os.listdir(in_tmp / "cache" / "jax")
    assert {"jit_chunk", "jit_run"} <= programs()   # training chunks and the evaluation
    r = dlx_subprocess("cnn-demo", "--resume", "part", "--steps", "30", env=env)
    assert r.code == 0, r.stderr
    new = {n.split("-")[0] for n in set(os.listdir(in_tmp / "cache" / "jax")) - set(before)}
    assert not new & {"jit_chunk", "jit_run", "jit_step_fn"}, new


def test_a_run_resumed_from_a_step_off_the_log_grid_logs_what_the_uninterrupted_run_logs(in_tmp):
    """--steps 25 at --log-every 20 logs a partial window (21-25) at its last step; resumed to
    30, the record at 30 covered only 26-30, and the summary's train metrics differed from an
    uninterrupted 30-step run's (train-gan ring8: d_loss 1.3079 vs 1.3133)."""
    args = [*FAST, "--log-every", "20"]
    full = dlx("cnn-demo", *args, "--json", "--out", "full")
    part = dlx("cnn-demo", *[a if a != "30" else "25" for a in args], "--json", "--out", "part")
    assert part.code == 0 and [t["step"] for t in part.event("train")] == [20, 25]
    resumed = dlx("cnn-demo", "--resume", "part", "--steps", "30", "--json")
    assert resumed.code == 0, resumed.stderr
    assert_same_numbers(strip_timing(resumed.event("train")[-1]), strip_timing(full.event("train")[-1]))
    assert_same_numbers(strip_timing(resumed.summary), strip_timing(full.summary))


def test_resume_rejects_changed_settings_and_non_runs(in_tmp):
    assert dlx("cnn-demo", *FAST, "--lr", "0.01", "--out", "run").code == 0
    r = dlx("cnn-demo", "--resume", "run", "--lr", "0.5")
    assert r.code == 2 and "--lr" in r.stderr
    # Typed at its default value (1e-3) is typed all the same: not silently the saved 0.01.
    r = dlx("cnn-demo", "--resume", "run", "--lr", "0.001")
    assert r.code == 2 and "--lr 0.001 differs from the saved run's 0.01" in r.stderr
    r = dlx("cnn-demo", "--resume", "run", "--steps", "10")
    assert r.code == 2 and "--steps 10 is fewer than the saved run's 30" in r.stderr
    r = dlx("cnn-demo", "--resume", "run", "--out", "elsewhere")
    assert r.code == 2 and "--out elsewhere and --resume run differ" in r.stderr
    assert not os.path.exists("elsewhere")
    os.makedirs("empty")
    r = dlx("cnn-demo", "--resume", "empty")
    assert r.code == 2 and "not a dlx run directory" in r.stderr


def test_options_typed_on_resume_are_checked_against_the_saved_run_not_the_defaults(in_tmp):
    # A ring8 run (--pack 2 by default there): --pack 4 typed on resume differs from it.
    # Checked against train-gan's default dataset (digits) it was refused as "--pack
    # applies to the 2-D toys", which the run is.
    assert dlx("train-gan", "--dataset", "ring8", "--width", "32", "--steps", "20", "--out", "toy").code == 0
    r = dlx("train-gan", "--resume", "toy", "--pack", "4")
    assert r.code == 2 and "--pack 4 differs from the saved run's 2" in r.stderr, r.stderr
    # Settings shown as typed, not as Python's None / True / '' reprs.
    r = dlx("cnn-demo", *FAST, "--out", "c")
    r = dlx("cnn-demo", "--resume", "c", "--mlp-baseline")
    assert r.code == 2 and "--mlp-baseline on differs from the saved run's off" in r.stderr, r.stderr


def test_corrupt_checkpoint_is_a_clear_error(in_tmp):
    assert dlx("cnn-demo", *FAST, "--out", "run").code == 0
    ck = "run/checkpoints/cnn"
    for step in os.listdir(ck):
        for root, _, files in os.walk(os.path.join(ck, step, "state")):
            for f in files:
                with open(os.path.join(root, f), "wb") as fh:
                    fh.write(b"garbage")
    r = dlx("cnn-demo", "--resume", "run", "--steps", "40")
    assert r.code == 2 and "corrupt" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("quiet", [True, False])
def test_a_truncated_checkpoint_is_one_line_to_the_end_of_the_process(in_tmp, quiet):
    # Truncated data files fail orbax's parallel reads one by one; the reads left pending
    # each printed an "Exception ignored" traceback as the process exited (~100-250 lines).
    # Without --quiet the resumed run's header and layer table came first, then the error.
    assert dlx("cnn-demo", *FAST, "--out", "run").code == 0
    _truncate_arrays("run/checkpoints")
    r = dlx_subprocess("cnn-demo", "--resume", "run", "--steps", "40", *(["--quiet"] if quiet else []))
    assert r.code == 2 and r.stderr.count("\n") == 1 and "corrupt or incompatible" in r.stderr, r.stderr[-1500:]


def test_a_resume_that_reads_its_checkpoint_shows_what_it_held(in_tmp):
    assert dlx("cnn-demo", *FAST, "--out", "fine").code == 0
    more = dlx_subprocess("cnn-demo", "--resume", "fine", "--steps", "40")
    assert more.code == 0 and "(resumed)" in more.stderr and "layers" in more.stderr and "results" in more.stderr


def test_a_restore_keeps_asyncios_shutdown_errors_off_stderr(caplog):
    # orbax-checkpoint 0.12.4 (an H200's, and Python 3.12 here): a truncated checkpoint's
    # failed reads reached asyncio's logger as the restore's event loop shut down, 1,285
    # lines above the one-line error (the test above, which 0.12.8 does not reach).
    import logging

    from dlx.checkpoint import _quiet_orbax

    with caplog.at_level(logging.DEBUG), _quiet_orbax():
        logging.getLogger("asyncio").error("unhandled exception during asyncio.run() shutdown")
    assert not caplog.records
    logging.getLogger("asyncio").error("after the restore")   # asyncio's own level again
    assert [r.getMessage() for r in caplog.records] == ["after the restore"]


# ---- the loop itself, with a hand-made task -----------------------------------------------

def _run(tmp_path, steps=20):
    cfg = Common(command="cnn-demo", steps=steps, out=str(tmp_path / "run"))
    run = Run(cfg, Output(command="test", json_mode=False, quiet=True), "test-run")
    run.start()
    return run


def _poisoned(nan_at: int):
    """A 'training' whose loss turns NaN at step nan_at (1-based)."""
    def init(key):
        return {"w": jnp.zeros(3), "key": key}

    def step(state, i, data):
        w = state["w"] + 1.0
        loss = jnp.where(i + 1 >= nan_at, jnp.nan, jnp.sum(w))
        return {**state, "w": w}, {"loss": loss}

    return Trainer(init=init, step=step, evaluate=lambda s: {"w0": float(s["w"][0])})


def test_a_missing_checkpoint_directory_is_no_checkpoint_and_is_not_created(tmp_path):
    # train-lstm --from-run reads a run's checkpoint and promises to write nothing.
    ck = Checkpointer(str(tmp_path / "none"))
    assert ck.latest_step() is None
    with pytest.raises(UsageError, match="no checkpoint"):
        ck.restore({"w": jnp.zeros(2)})
    ck.close()
    assert not (tmp_path / "none").exists()


def test_nan_guard_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(RunFailure) as e:
        fit(run, _poisoned(nan_at=13), steps=20, seed=0, log_every=5, eval_every=5)
    msg = str(e.value)
    assert "loss became NaN at step 13" in msg and "last good checkpoint: step 10" in msg
    steps = sorted(int(s) for s in os.listdir(tmp_path / "run/checkpoints/main") if s.isdigit())
    assert steps[-1] == 10


def test_a_signal_during_an_evaluation_saves_once_and_exits_resumable(tmp_path):
    """SIGINT landing while a checkpoint step evaluates: the loop had saved that step, then
    saved it again for the signal, and orbax's "already exists" ended the run as a failure."""
    def evaluate(state):
        if float(state["w"][0]) == 10:
            os.kill(os.getpid(), signal.SIGINT)   # caught by fit's handler, seen after the save
        return {"w0": float(state["w"][0])}

    t = Trainer(init=lambda key: {"w": jnp.zeros(3)},
                step=lambda s, i, d: ({"w": s["w"] + 1.0}, {"loss": jnp.sum(s["w"])}), evaluate=evaluate)
    with pytest.raises(Interrupted, match="SIGINT at step 10: checkpoint saved"):
        fit(_run(tmp_path), t, steps=20, seed=0, log_every=5, eval_every=10)
    assert sorted(int(s) for s in os.listdir(tmp_path / "run/checkpoints/main") if s.isdigit()) == [10]


@pytest.mark.parametrize("saved", [False, True])
def test_a_signal_between_two_models_names_what_is_saved(tmp_path, saved):
    """SIGTERM (or SIGINT) outside fit's loop, e.g. between two models of compare-rnn: exit
    130 with a resume hint when a model's checkpoint exists. SIGTERM there used to kill the
    process silently, and SIGINT said "nothing to resume" though --resume worked."""
    import types
    from dlx.session import execute

    def task_run(cfg, run):
        run.start()
        if saved:   # the first model of a sweep finished and saved its checkpoint
            os.makedirs(os.path.join(run.dir.path, "checkpoints", "rnn-T20", "100"))
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the run")

    sys.modules["_dlx_test_task"] = types.SimpleNamespace(run=task_run)
    before = signal.getsignal(signal.SIGTERM)
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as e:
        execute(Common(command="compare-rnn", steps=20, out=str(tmp_path / "my run"), json=True, quiet=True),
                "_dlx_test_task")
    del sys.modules["_dlx_test_task"]
    assert e.value.code == 130
    err = [json.loads(l) for l in out.getvalue().splitlines()][-1]
    assert err["event"] == "error" and err["kind"] == "interrupted"
    # The command is one a shell takes as it is (the path quoted), and one that works: with
    # nothing trained yet, --resume starts the kept run (it said "nothing to resume").
    resume = f"dlx compare-rnn --resume '{tmp_path / 'my run'}'"
    if saved:
        assert err["message"].endswith(f"Resume with: {resume}")
    else:
        assert err["message"] == f"interrupted before the first step; the run directory is kept, and {resume} starts it"
    assert signal.getsignal(signal.SIGTERM) is before          # the caller's handler is back
    assert (tmp_path / "my run" / "config.json").exists()       # an interrupted run is kept


def test_a_sigint_swallowed_by_a_gc_callback_still_ends_the_run(tmp_path, capsys):
    """A KeyboardInterrupt raised inside a garbage-collection callback is swallowed: a
    Ctrl-C 0.3 s after compare-rnn's last checkpoint landed in JAX's gc callback, the run
    printed "Exception ignored in: <function _xla_gc_callback>" and a traceback, then
    finished with exit 0. Now it ends before its summary, 130, with no traceback."""
    import gc
    import types
    from dlx.session import execute

    def swallow_a_sigint():
        def callback(phase, info):
            gc.callbacks.remove(callback)
            signal.raise_signal(signal.SIGINT)   # dlx's handler raises in here: swallowed
        gc.callbacks.append(callback)
        gc.collect()

    def task_run(cfg, run):
        run.start()
        swallow_a_sigint()
        run.finish({"loss": 1.0})

    sys.modules["_dlx_test_task"] = types.SimpleNamespace(run=task_run)
    before = signal.getsignal(signal.SIGINT)
    out = io.StringIO()
    try:
        with redirect_stdout(out), pytest.raises(SystemExit) as e:
            execute(Common(command="cnn-demo", steps=20, out=str(tmp_path / "run"), json=True, quiet=True),
                    "_dlx_test_task")
    finally:
        del sys.modules["_dlx_test_task"]
    assert e.value.code == 130
    recs = [json.loads(l) for l in out.getvalue().splitlines()]
    assert [r["event"] for r in recs][-1] == "error" and "summary" not in [r["event"] for r in recs]
    assert "Traceback" not in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before


def test_a_huge_step_count_is_scheduled_lazily(tmp_path):
    # Every log point listed up front: 10**11 steps at --log-every 100 took the memory.
    from dlx.train import _schedule
    points = _schedule(0, 10 ** 11, [100, 500], first=1)
    assert [next(points) for _ in range(5)] == [1, 100, 200, 300, 400]
    assert list(_schedule(950, 1003, [100, 500])) == [1000, 1003]
    assert list(_schedule(20, 20, [5])) == []


def test_vmapped_seeds_are_independent_runs(tmp_path):
    def init(key):
        return {"x": jax.random.normal(key, ()), "key": key}

    def step(state, i, data):
        x = state["x"] * 0.5 + jax.random.normal(jax.random.fold_in(state["key"], i), ())
        return {**state, "x": x}, {"x": x}

    t = Trainer(init=init, step=step, evaluate=lambda s: {"x": [float(v) for v in s["x"]]})
    res = fit(_run(tmp_path), t, steps=8, seed=1, log_every=4, eval_every=8, seeds=3)
    xs = res.eval["x"]
    assert len(xs) == 3 and len(set(xs)) == 3
    # Seed s of a vmapped run is the same computation as that key alone.
    key = jax.random.split(jax.random.PRNGKey(1), 3)[2]
    s = init(key)
    for i in range(8):
        s, _ = step(s, jnp.int32(i), None)
    assert abs(float(s["x"]) - xs[2]) < 1e-5


@pytest.mark.parametrize("scan", [True, False])
def test_retime_runs_the_one_step_program_on_a_copy(tmp_path, scan):
    # compare-rnn's side-by-side speed verdict: every fit, scanned or dispatched, can be timed
    # one step per call, a scanned one also in its chunk, per step; the timing leaves the
    # trained state as it was.
    calls = []

    def init(key):
        return {"x": jnp.float32(1.0)}

    def step(state, i, data):
        return {"x": state["x"] * 0.5 + 1.0}, {"x": state["x"]}

    t = Trainer(init=init, step=step, scan=scan)
    res = fit(_run(tmp_path), t, steps=6, seed=0, log_every=3, eval_every=6)
    before = float(res.state["x"])
    for _ in range(3):
        calls.append(res.retime(0.005))
    assert all(c > 0 for c in calls) and float(res.state["x"]) == before
    assert res.retime(None) is None            # frees the copy; a later call starts again
    assert res.retime(0.001) > 0 and float(res.state["x"]) == before
    if scan:
        assert res.retime_scanned(0.005) > 0 and float(res.state["x"]) == before
        assert res.retime_scanned(None) is None
    else:
        assert res.retime_scanned is None      # no chunk compiled: steps ran one call each
    none = fit(_run(tmp_path / "zero"), t, steps=0, seed=0, log_every=3, eval_every=6)
    assert none.retime is None and none.retime_scanned is None   # nothing trained: nothing to time


def test_a_program_of_several_steps_a_call_is_timed_per_step(monkeypatch):
    # A scanned chunk's call runs all its steps: retime_scanned divides by them. A clock that
    # moves 3 s per call of a 3-step program reads 1 s per step.
    from dlx import train

    clock = [0.0]
    monkeypatch.setattr(train.time, "perf_counter", lambda: clock[0])

    def program(state, first, data):
        clock[0] += 3.0
        return {"x": state["x"] + 1.0}, {}

    state = {"x": jnp.float32(0.0)}
    retime = train._retimer(lambda: program, 3, state, None, 0)
    assert retime(5.0) == 1.0                  # two calls (6 s) for min_s 5: 6 s / (2 calls * 3 steps)
    assert float(state["x"]) == 0.0            # the calls ran on a copy


def _members(lrs):
    """Gradient descent on (w - 3)^2, one member per learning rate (lr 2 or more diverges)."""
    def init(key):
        return {"w": jnp.zeros(len(lrs)), "lr": jnp.asarray(lrs, jnp.float32)}

    def one(state, i, data):
        g = 2 * (state["w"] - 3.0)
        w = state["w"] - state["lr"] * g
        return {**state, "w": w}, {"loss": (w - 3.0) ** 2}

    def evaluate(state, alive):
        return [{"w": float(w)} if a else None for w, a in zip(state["w"], alive)]

    return Trainer(init=init, step=per_member(one, len(lrs)), evaluate=evaluate,
                   members=[{"model": f"lr{lr}"} for lr in lrs])


def test_members_get_their_own_records_and_one_diverging_leaves_the_others(tmp_path):
    """A comma sweep's nets trained as the members of one program: each its own tagged
    records; a member going to Inf/NaN stops being reported, and the others train on."""
    run = Run(Common(command="cnn-demo", steps=400, out=str(tmp_path / "run"), json=True),
              Output(command="test", json_mode=True, quiet=True), "test-run")
    run.start()
    out = io.StringIO()
    with redirect_stdout(out):
        res = fit(run, _members([0.1, 20.0, 0.25]), steps=400, seed=0, log_every=40, eval_every=100)
    recs = [json.loads(line) for line in out.getvalue().splitlines()]
    trains = [r for r in recs if r["event"] == "train"]
    assert {r["model"] for r in trains if r["step"] == 400} == {"lr0.1", "lr0.25"}
    # lr 20: the error grows 39x per step, so the loss 9 * 39^(2t) passes float32's 3.4e38 at t = 12
    (msg,) = res.diverged.values()
    assert list(res.diverged) == [1] and re.search(r"loss became (Inf|NaN) at step (\d+)", msg)
    at = int(re.search(r"at step (\d+)", msg).group(1))
    assert at == 12 and not [r for r in recs if r.get("model") == "lr20.0" and r["event"] == "eval"]
    assert res.eval[1] is None and res.eval[0]["w"] == pytest.approx(3.0) and res.eval[2]["w"] == pytest.approx(3.0)
    assert res.train[0]["loss"] < 1e-6 and res.train[1] is None
    # Resume from the group's checkpoint at step 300 ends where the uninterrupted run did.
    ck = Checkpointer(str(tmp_path / "run/checkpoints/main"))
    state, meta = ck.restore({"w": jnp.zeros(3), "lr": jnp.zeros(3)}, step=300)
    ck.close()
    assert meta["diverged"] == {"1": msg} and len(meta["sums"]["loss"]) == 3


def test_when_every_member_diverges_training_stops_and_the_state_is_still_readable(tmp_path):
    res = fit(_run(tmp_path, steps=400), _members([20.0, 30.0]), steps=400, seed=0, log_every=40, eval_every=100)
    assert sorted(res.diverged) == [0, 1]
    assert [int(m.split("at step ")[1].split(";")[0]) for m in res.diverged.values()] == [12, 11]
    assert not jnp.isfinite(res.state["w"]).any()  # the last state, not a buffer donated to the step


def test_members_compute_what_each_model_alone_computes_bit_for_bit():
    """per_member runs one copy of the step per member: the same arithmetic as a model
    trained alone. (jax.vmap here batches the matmuls: the first member's loss at step 20
    was 2.3014986 in the group and 2.3014984 alone.)"""
    from flax import nnx

    from dlx.metrics.grads import cross_entropy
    from dlx.models.mlp import DeepMLP

    nets = [nnx.split(DeepMLP(64, 64, 10, 10, init=init, rngs=nnx.Rngs(0)), nnx.Param)
            for init in ("standard", "glorot", "he")]
    graphdef = nets[0][0]
    xs = jax.random.normal(jax.random.PRNGKey(0), (1437, 64))
    ys = jax.random.randint(jax.random.PRNGKey(1), (1437,), 0, 10)

    def step(state, i, data):  # plain SGD on a batch of 256 drawn from the step number
        idx = epoch_batch(jax.random.PRNGKey(3), i, 1437, 256)
        loss, grads = jax.value_and_grad(lambda p: cross_entropy(nnx.merge(graphdef, p)(xs[idx]), ys[idx]))(state)
        return jax.tree.map(lambda p, g: p - 0.1 * g, state, grads), {"loss": loss}

    states = [p for _, p in nets]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    together, alone = jax.jit(per_member(step, 3)), jax.jit(step)
    for i in range(20):
        stacked, m = together(stacked, jnp.int32(i), None)
        outs = [alone(s, jnp.int32(i), None) for s in states]
        states = [o[0] for o in outs]
    if jax.default_backend() == "cpu":
        assert m["loss"].tolist() == [float(o[1]["loss"]) for o in outs]
        for j, s in enumerate(states):
            assert all((a[j] == b).all() for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(s)))
    else:  # a GPU fuses and tunes the two programs apart: 2e-7 relative on an H200 at step 20
        np.testing.assert_allclose(m["loss"], [o[1]["loss"] for o in outs], rtol=2e-6)
        for j, s in enumerate(states):
            for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(s)):
                np.testing.assert_allclose(a[j], b, rtol=1e-5, atol=1e-6)


def test_epoch_batches_visit_every_example_once_per_epoch():
    key = jax.random.PRNGKey(0)
    idx = jnp.concatenate([epoch_batch(key, jnp.int32(i), 40, 8) for i in range(5)])
    assert sorted(idx.tolist()) == list(range(40))
    nxt = jnp.concatenate([epoch_batch(key, jnp.int32(i), 40, 8) for i in range(5, 10)])
    assert sorted(nxt.tolist()) == list(range(40)) and nxt.tolist() != idx.tolist()


# ---- signals, in a real process ------------------------------------------------------------

def test_sigterm_saves_a_checkpoint_and_resume_matches(in_tmp):
    # SIGINT is tested for every command in tests/test_reliability.py.
    sig = signal.SIGTERM
    args = ["cnn-demo", "--steps", "400", "--log-every", "10", "--eval-every", "100", "--no-mlp-baseline",
            "--feature-maps", "0", "--channels", "4,8", "--hidden", "16", "--json"]
    full = dlx(*args, "--out", "full")
    p = subprocess.Popen([sys.executable, "-m", "dlx", *args, "--out", "cut"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stdout:  # interrupt once training is under way, between two checkpoints
        rec = json.loads(line)
        if rec["event"] == "train" and rec["step"] >= 120:
            p.send_signal(sig)
            break
    rest, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Resume with: dlx cnn-demo --resume cut" in err
    recs = [json.loads(l) for l in rest.splitlines()]
    assert recs[-1]["event"] == "error" and recs[-1]["kind"] == "interrupted"
    resumed = dlx("cnn-demo", "--resume", "cut", "--json")
    assert resumed.code == 0, resumed.stderr
    assert_same_numbers(strip_timing(resumed.summary), strip_timing(full.summary))


@pytest.mark.skipif(os.environ.get("JAX_PLATFORMS") != "cpu",
                    reason="host CPU devices against a one-device run in this process: CPU only")
def test_data_parallel_over_cpu_devices_matches_one_device(in_tmp):
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("data parallelism over host devices needs 2 cores (one device per core)")
    n = min(4, cores)   # one host device per core at most (more can deadlock: see below)
    args = ["cnn-demo", "--steps", "20", "--log-every", "10", "--eval-every", "20", "--no-mlp-baseline",
            "--feature-maps", "0", "--channels", "4,8", "--hidden", "16", "--json"]
    one = dlx(*args, "--out", "one")
    many = dlx_subprocess(*args, "--out", "many", "--devices", str(n))
    assert many.code == 0, many.stderr
    assert many.records[0]["devices"] == [f"cpu:{i} cpu" for i in range(n)]
    # On a host with four devices, --devices 1 trains on one, and the config record says which.
    flags = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    single = dlx_subprocess(*args, "--steps", "0", "--out", "single", env=flags)
    assert single.code == 0 and single.records[0]["devices"] == ["cpu:0 cpu"], single.stderr
    assert many.summary["test_accuracy"] == pytest.approx(one.summary["test_accuracy"], abs=1 / 359)
    assert many.summary["test_loss"] == pytest.approx(one.summary["test_loss"], rel=1e-4)
    bad = dlx(*args, "--devices", "3", "--batch-size", "64")
    assert bad.code == 2 and ("multiple of --devices" in bad.stderr or "core(s)" in bad.stderr)
    # More host devices than cores: train-gan --devices 4 on two cores waited for a
    # participant that never ran, and XLA aborted the process after 60 s (exit 134).
    over = dlx_subprocess(*args, "--out", "over", "--devices", str(cores + 1), "--batch-size", str(64 * (cores + 1)))
    assert over.code == 2 and f"but {cores} core(s)" in over.stderr and not os.path.exists("over"), over.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s_:
        s_.bind(("127.0.0.1", 0))
        return s_.getsockname()[1]


def test_two_processes_on_loopback_train_one_model_like_one_device(in_tmp):
    """Multi-host as on a cluster, here two processes of this machine joined by
    jax.distributed (gloo collectives on CPU): one data-parallel mesh over both, one
    checkpoint written collectively into the shared --out, JSON Lines only from process 0
    and nothing but JSON on its stdout, and the numbers of a one-device run."""
    port = _free_port()
    args = ["cnn-demo", "--steps", "20", "--log-every", "10", "--eval-every", "10", "--no-mlp-baseline",
            "--feature-maps", "0", "--channels", "4,8", "--hidden", "16", "--json"]
    multi = [*args, "--out", "mh", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}  # one CPU device per process, whatever the parent has
    procs = [subprocess.Popen([sys.executable, "-m", "dlx", *multi, "--process-id", str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 0)]
    (out1, err1), (out0, err0) = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], err0[-800:] + err1[-800:]
    recs = [json.loads(line) for line in out0.splitlines()]   # every stdout line is a record
    assert out1 == "" and recs[-1]["event"] == "summary"
    assert recs[0]["devices"] == ["cpu:0 cpu", "cpu:2048 cpu"]
    assert sorted(os.listdir("mh/checkpoints/cnn")) == ["10", "20"]
    one = dlx(*args, "--out", "one")
    assert recs[-1]["test_accuracy"] == pytest.approx(one.summary["test_accuracy"], abs=1 / 359)
    assert recs[-1]["test_loss"] == pytest.approx(one.summary["test_loss"], rel=1e-4)
    no_out = dlx_subprocess(*args, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0")
    assert no_out.code == 2 and "needs --out" in no_out.stderr


def test_two_processes_stop_together_when_only_one_is_told_to(in_tmp):
    """Process 0's reader leaving (`| head`), or a signal to one process only (a Ctrl-C
    reaches the one in the foreground), stops both at one step, checkpointed together.
    One process stopping alone left the other blocked in its next collective, and the
    stopped one in the collective checkpoint: both hung, past SIGTERM."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    started = []

    def launch(*args):
        port = _free_port()
        started.extend(subprocess.Popen([sys.executable, "-m", "dlx", *args, "--json", "--coordinator",
                                         f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                       for i in (1, 0))
        return started[-2:]

    def first_train_record(p0):
        for line in p0.stdout:
            if json.loads(line)["event"] == "train":
                return
        raise AssertionError("process 0 ended before its first train record")

    try:
        # Steps 10 and 20 are one chunk each; the reader leaves after step 10's record, so
        # process 0 finds it gone writing step 20's and both stop there.
        p1, p0 = launch("cnn-demo", "--steps", "400", "--log-every", "10", "--eval-every", "100", "--no-mlp-baseline",
                        "--feature-maps", "0", "--channels", "4,8", "--hidden", "16", "--out", "mh")
        first_train_record(p0)
        p0.stdout.close()
        (_, err1), (_, err0) = p1.communicate(timeout=120), p0.communicate(timeout=120)
        assert (p1.returncode, p0.returncode) == (0, 0), err0[-800:] + err1[-800:]
        assert "Traceback" not in err0 + err1
        assert os.listdir("mh/checkpoints/cnn") == ["20"]
        # Resumed on both, SIGTERM to process 1 alone: both save one step and exit 130, each
        # naming the command that resumes it.
        p1, p0 = launch("cnn-demo", "--resume", "mh")
        first_train_record(p0)
        p1.send_signal(signal.SIGTERM)
        (_, err1), (_, err0) = p1.communicate(timeout=120), p0.communicate(timeout=120)
        assert (p1.returncode, p0.returncode) == (130, 130), err0[-800:] + err1[-800:]
        at = re.search(r"SIGTERM at step (\d+): checkpoint saved. Resume with: dlx cnn-demo --resume mh$", err0, re.M)
        assert at and 30 <= int(at[1]) < 400, err0[-800:]
        assert (f"SIGTERM at step {at[1]}: checkpoint saved. Resume with: dlx cnn-demo --resume mh --process-id 1"
                in err1), err1[-800:]
        assert sorted(os.listdir("mh/checkpoints/cnn"), key=int)[-1] == at[1]
    finally:
        for p in started:   # a hung pair (the bug) must not outlive the test
            p.kill()


def test_a_process_that_fails_alone_ends_and_so_do_the_others(in_tmp):
    """Process 0 fails by itself (its stdout's disk is full: the config record cannot be
    written). Its exit used to wait in jax.distributed's shutdown barrier for process 1,
    itself waiting for process 0 in a collective: both hung for 5 minutes, then aborted.
    The same for a signal outside training's agreed stops (one landing in Python code
    while a command starts)."""
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    args = ["cnn-demo", "--steps", "400", "--feature-maps", "0", "--no-mlp-baseline", "--json", "--out", "mh",
            "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id"]
    started = time.monotonic()
    with open("/dev/full", "w") as full:
        procs = [subprocess.Popen([sys.executable, "-m", "dlx", *args, str(i)], env=env, stderr=subprocess.PIPE,
                                  stdout=full if i == 0 else subprocess.PIPE, text=True) for i in (1, 0)]
    p1, p0 = procs
    try:
        (_, err0), (_, err1) = p0.communicate(timeout=60), p1.communicate(timeout=60)
    finally:
        for p in procs:
            p.kill()
    # Here the wait ended after 30 s, when process 1's first collective gave up on process 0.
    assert time.monotonic() - started < 25, "the processes waited for each other"
    assert p0.returncode == 1 and "cannot write the JSON records to stdout: disk full" in err0, err0[-800:]
    # JAX's service, which process 0 ran, aborts process 1 (SIGABRT: 134 in a shell); or its
    # next collective fails first.
    assert p1.returncode == -signal.SIGABRT or (p1.returncode == 1 and "stopped answering" in err1), err1[-800:]


def test_ctrl_c_ends_a_process_waiting_for_the_others_to_join(in_tmp):
    # Process 1 of 2 waits inside jax.distributed for a coordinator nobody started, where
    # Python's handlers cannot run: Ctrl-C used to be ignored until JAX's 5-minute timeout.

    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    p = subprocess.Popen([sys.executable, "-m", "dlx", "cnn-demo", "--out", "mh", "--coordinator",
                          f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "1"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)   # past the imports, into the wait
        assert p.poll() is None
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode in (-signal.SIGINT, 130) and out == ""
    assert not os.path.exists("mh") and not os.path.exists("mh.process1")


def test_epoch_order_draws_what_epoch_batch_draws():
    from dlx.train import epoch_order, first_order

    key = jax.random.PRNGKey(7)
    order = first_order(key, 50)
    for i in range(12):  # across three epochs of 4 batches (2 left over each epoch)
        idx, order = epoch_order(key, jnp.int32(i), 50, 12, order)
        assert idx.tolist() == epoch_batch(key, jnp.int32(i), 50, 12).tolist()


def test_scan_decision_counts_flops_where_the_backend_analyses_only_compiled_programs():
    """GPU and TPU plugins raise on Lowered.cost_analysis; the step's FLOPs then come from
    the host's analysis of the same module, so small steps are still scanned there."""
    from dlx import train

    lowered = jax.jit(lambda a, b: jnp.tanh(a @ b)).lower(jnp.ones((64, 32)), jnp.ones((32, 16)))

    class PluginLowered:  # what a CUDA plugin's lowered program does
        def __init__(self, answer):
            self.answer = answer

        def cost_analysis(self):
            # jax.stages.Lowered returns None there (it catches the plugin's
            # NotImplementedError; an H200 run of the suite showed it); older JAX raised
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

        def compiler_ir(self, dialect):
            return lowered.compiler_ir(dialect)

    dots = 2 * 64 * 32 * 16
    flops = train._lowered_flops(lowered)
    assert dots <= flops < math.inf
    for answer in (None, {}, [{}], NotImplementedError("Lowered.cost_analysis not implemented on platform 'cuda'")):
        assert train._lowered_flops(PluginLowered(answer)) == flops, answer
    assert train._lowered_flops(object()) == math.inf   # nothing to analyse: dispatched, the safe choice


def test_small_steps_are_scanned_where_lowered_programs_have_no_cost_analysis(in_tmp, monkeypatch):
    """What the CUDA plugin does: Lowered.cost_analysis returns None. An H200 run of the suite
    had the contract test above see a step-1 record: its small step went one call each."""
    monkeypatch.setattr(jax.stages.Lowered, "cost_analysis", lambda self: None)
    r = dlx("cnn-demo", *FAST, "--json", "--out", "run")
    assert r.code == 0, r.stderr
    assert [t["step"] for t in r.event("train")] == [10, 20, 30]


def test_scan_decision_counts_flops_where_jax_platforms_names_no_cpu(monkeypatch):
    """JAX_PLATFORMS=cuda starts no CPU backend (an H100 run of the suite had it so, and every
    small step went one call each); the analysis then uses a host client of dlx's own."""
    from dlx import train

    lowered = jax.jit(lambda a, b: jnp.tanh(a @ b)).lower(jnp.ones((64, 32)), jnp.ones((32, 16)))
    real = jax.local_devices
    try:
        jax_cpu = real(backend="cpu")[0].client
    except RuntimeError:   # this process runs with JAX_PLATFORMS naming no CPU already
        jax_cpu = None
    reference = train._host_cost(lowered)["flops"]

    def no_cpu(*args, backend=None, **kw):
        if backend == "cpu":
            raise RuntimeError("Unknown backend cpu. Available: ['cuda']")
        return real(*args, backend=backend, **kw)

    monkeypatch.setattr(jax, "local_devices", no_cpu)
    train._host_client.cache_clear()
    try:
        client = train._host_client()
        assert client is not jax_cpu
        assert train._host_cost(lowered)["flops"] == reference >= 2 * 64 * 32 * 16
    finally:
        train._host_client.cache_clear()   # later tests get JAX's own client again


def test_a_signal_while_dlx_starts_is_an_interrupt_not_a_crash(tmp_path):
    """A Ctrl-C in a command's first ~0.2 s landed in the imports (JAX's, numpy's): a
    traceback, "internal error: ImportError", a SIGSEGV or a silent exit 0. From
    dlx.__main__'s first line it is remembered, and the run stops before writing anything."""
    code = ("import os, signal, sys\nfrom dlx import runtime\nruntime.catch_signals()\n"
            "os.kill(os.getpid(), signal.SIGINT)   # as if during the imports below\n"
            "from dlx.__main__ import main\n"
            f"sys.argv = ['dlx', 'cnn-demo', *{FAST!r}, '--json', '--out', 'run']\nmain()")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 130, p.stderr
    assert p.stderr.strip().splitlines() == ["error: interrupted before the first checkpoint; nothing to resume"]
    assert json.loads(p.stdout.splitlines()[-1])["kind"] == "interrupted"
    assert not (tmp_path / "run").exists()
    # Once the outcome is decided, a signal during the exit (JAX's teardown, with Python's
    # default handlers back) killed the process without a word: now it is ignored.
    code = ("import signal, sys\nfrom dlx.__main__ import main\nsys.argv = ['dlx', '--version']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.splitlines()[-1] == "True True", p.stderr


def test_a_second_sigint_quits_at_once():
    # It used to raise KeyboardInterrupt from the handler, which XLA's gc callback could
    # swallow: the run then saved and exited as if interrupted once.
    # It writes the error record last, as any failure does (it used to leave a train record last).
    code = ("import os, signal, time\nfrom dlx.output import Output\nfrom dlx.train import _Signals\n"
            "out = Output(command='cnn-demo', json_mode=True, quiet=True)\n"
            "with _Signals(out):\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(0.2)\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(10)\nprint('still running')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 130 and "still running" not in p.stdout
    last = json.loads(p.stdout.splitlines()[-1])
    assert (last["event"], last["kind"], last["exit_code"]) == ("error", "interrupted", 130)
    assert p.stderr.strip().splitlines()[-1] == "error: second SIGINT: quit without saving"
    assert p.stderr.strip().endswith("second SIGINT: quit without saving")


def test_one_ctrl_c_delivered_twice_at_once_is_one_interrupt():
    # Under `timeout 600 dlx ...` a Ctrl-C reaches dlx twice (the terminal's to the group,
    # and timeout's copy): it quit without saving, as if pressed twice.
    code = ("import os, signal, time\nfrom dlx.train import _Signals\n"
            "with _Signals() as sig:\n    os.kill(os.getpid(), signal.SIGINT)\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(0.5)\nprint('caught', sig.caught)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == f"caught {int(signal.SIGINT)}", (p.returncode, p.stderr)


def test_the_end_of_the_last_whole_record_is_found_past_64_kib():
    # A record cut off mid-line longer than the 64 KiB read back was only partly removed.
    import io

    from dlx.session import _end_of_last_line

    cut_off = b'{"schema":1,"event":"info","sample":"' + b"y" * 70000
    for log, end in ((b"", 0), (b'{"a":1}\n', 8), (b'{"a":1}\n' + cut_off, 8), (cut_off, 0), (b"x\n" * 40000, 80000)):
        assert _end_of_last_line(io.BytesIO(log)) == end



def test_messages_are_whole_lines_in_a_log(in_tmp):
    """stderr to a file or pipe: a message is one line however long (Rich wrapped them at 80
    columns, splitting the run directory's path and the GAN's collapse warnings)."""
    where = "a_rather_long_directory_name_for_a_log/" + "x" * 60
    r = dlx("cnn-demo", *FAST, "--out", where)
    assert r.code == 0, r.stderr
    assert any(line.startswith("dlx cnn-demo run") and line.endswith(where) for line in r.stderr.splitlines()), \
        r.stderr[:400]


def test_a_second_signal_does_not_interrupt_the_handling_of_the_first():
    # Outside a fit's steps the first signal raises KeyboardInterrupt; the second (the copy
    # of a Ctrl-C that `timeout` passes on, handled separately while dlx waits on a
    # compilation) raised again inside the handling, and the error record went missing.
    code = ("import os, signal, time\nfrom dlx import runtime\nruntime.catch_signals()\nruntime.raise_signals(True)\n"
            "try:\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(5)\nexcept KeyboardInterrupt:\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(0.2)\n    print('reported')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "reported", p.stderr[-500:]
