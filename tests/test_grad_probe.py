"""`dlx grad-probe` as a user runs it: verdicts, anchors, sweeps, RNN decay, clipping, bad input.

Compiles are the cost here, so the CLI calls are few and shaped to share programs: every
call with the same depth, activation and number of nets per group reuses one compiled
probe (dlx.tasks.grad_probe jits at module level).
"""

import json
import math
import os
import re

import numpy as np
import pytest

from tests.helpers import assert_same_numbers, dlx, strip_timing


def _probe(out, *args):
    r = dlx("grad-probe", "--json", "--quiet", "--out", str(out), *args)
    assert r.code == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    # Three activations at one depth: one vmapped program choosing each net's activation
    # with lax.switch (the command's path for SWITCH_FROM activations or more).
    out = tmp_path_factory.mktemp("sweep") / "run"
    return out, _probe(out, "--activation", "sigmoid,tanh,relu", "--init", "standard,glorot,he").summary


def _result(summary, activation, init):
    (r,) = [r for r in summary["results"] if (r["activation"], r["init"]) == (activation, init)]
    return r


def test_sweep_returns_one_result_per_combination_with_its_settings(sweep):
    out, s = sweep
    settings = [(r["activation"], r["init"], r["init_scale"], r["depth"], r["width"]) for r in s["results"]]
    assert settings == [(a, i, 1.0, 10, 64) for a in ("sigmoid", "tanh", "relu") for i in ("standard", "glorot", "he")]
    assert s["combinations"] == 9 and sum(s["verdicts"].values()) == 9
    for r in s["results"]:
        assert [l["layer"] for l in r["layers"]] == list(range(1, 11))
        assert set(r["layers"][0]) >= {"weight_grad_norm", "preact_grad_norm", "act_mean", "act_std", "saturation"}
    assert os.path.getsize(out / "grad_norms.png") > 0
    assert json.loads((out / "summary.json").read_text())["results"] == s["results"]


def test_sigmoid_depth_10_vanishes_relu_he_healthy(sweep):
    _, s = sweep
    for init in ("standard", "glorot", "he"):
        sigmoid = _result(s, "sigmoid", init)
        assert sigmoid["verdict"] == "vanishing" and sigmoid["ratio"] < 1e-3  # 2e-8 to 3e-5 measured
        # The units sit near 0.5, not saturated: sigmoid' <= 1/4 per layer is enough.
        assert all(l["saturation"] < 0.05 for l in sigmoid["layers"])
    assert _result(s, "relu", "he")["verdict"] == "healthy"


def test_anchor_tanh_standard_init_shrinks_toward_input_glorot_keeps_level(sweep):
    # Glorot & Bengio 2010, figure 7: back-propagated gradients, i.e. dL/dz per layer.
    _, s = sweep
    standard, glorot = ([l["preact_grad_norm"] for l in _result(s, "tanh", i)["layers"]] for i in ("standard", "glorot"))
    assert np.all(np.diff(standard) > 0)  # smaller at every step toward the input
    assert standard[0] / standard[-1] < 2e-2  # 7e-3 measured
    assert max(glorot) / min(glorot) < 5  # 2.1 measured
    assert [_result(s, "tanh", i)["verdict"] for i in ("standard", "glorot")] == ["vanishing", "healthy"]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    return out, _probe(out, "--activation", "relu", "--init", "he")


def test_single_combination_keeps_fields_at_top_level_and_equals_the_sweep(sweep, single):
    out, r = single
    s = r.summary
    assert {"layers", "ratio", "verdict", "results"} <= set(s)
    assert len(s["results"]) == 1 and s["verdict"] == "healthy"
    # The single net's static program and the sweep's lax.switch program agree.
    swept = _result(sweep[1], "relu", "he")
    for field in ("preact_grad_norm", "weight_grad_norm", "saturation"):
        np.testing.assert_allclose([l[field] for l in s["layers"]], [l[field] for l in swept["layers"]], rtol=1e-5)
    # The probe alone does no training, but the run directory is complete.
    assert r.event("config") and not r.event("train")
    assert {"config.json", "metrics.jsonl", "summary.json", "grad_norms.png"} <= set(os.listdir(out))


def test_large_init_explodes_and_overflow_is_not_healthy(single, tmp_path):
    # Twice He doubles each layer's backward gain: ~2**9 over 10 layers. 1e4 times He
    # overflows float32: NaN ratio, written as null. (Same program as `single`.)
    double = _probe(tmp_path / "x2", "--init-scale", "2").summary
    huge = _probe(tmp_path / "x1e4", "--init-scale", "10000").summary
    assert double["verdict"] == "exploding" and double["ratio"] > 100
    assert huge["verdict"] == "exploding" and huge["ratio"] is None


def test_anchor_30_layer_relu_glorot_shrinks_activations_he_keeps_them(tmp_path):
    # He et al. 2015, figure 3: Glorot halves the variance per ReLU layer, ~2**-15 in std
    # by layer 30. At width 64 the std at layer 30 drifts with the seed (He 0.05 to 0.4,
    # Glorot 2e-6 to 2e-5 over seeds 0-4), hence the wide bands.
    s = _probe(tmp_path / "run", "--depth", "30", "--init", "glorot,he").summary
    glorot_std, he_std = (r["layers"][-1]["act_std"] for r in s["results"])
    assert glorot_std < 1e-4
    assert 2e-2 < he_std < 10
    assert [r["verdict"] for r in s["results"]] == ["vanishing", "healthy"]


def test_rnn_linear_decays_by_rho_tanh_faster_lstm_slower(tmp_path):
    rhos = [0.5, 0.9, 1.1]
    s = _probe(tmp_path / "run", "--arch", "rnn", "--cell", "linear,tanh,lstm", "--spectral-radius", "0.5,0.9,1.1",
               "--seq-len", "20", "--width", "8", "--batch-size", "16").summary
    by = {(r["cell"], r["spectral_radius"]): r for r in s["results"]}
    assert len(by) == 9 and all(len(r["grad_norms"]) == 20 for r in s["results"])
    for rho in rhos:
        linear, tanh, lstm = by["linear", rho], by["tanh", rho], by["lstm", rho]
        # W scaled to spectral radius rho: every step back multiplies ||dL/dh_t|| by rho
        # (orthogonal init, so exactly).
        assert linear["decay_per_step"] == pytest.approx(rho, rel=1e-3)
        assert linear["ratio"] == pytest.approx(rho**19, rel=1e-3)
        assert tanh["decay_per_step"] < rho  # |tanh'| <= 1 can only shrink the factor
        assert lstm["decay_per_step"] > tanh["decay_per_step"]  # the cell state's additive path
    assert [by["linear", rho]["verdict"] for rho in rhos] == ["vanishing", "healthy", "healthy"]
    assert os.path.getsize(tmp_path / "run" / "grad_norms.png") > 0


# Large weights (1.5 x He over 10 ReLU layers) and plain SGD at lr 0.1: the loss starts
# near 124 and the gradient overflows within a few steps.
DIVERGES = ("--init-scale", "1.5", "--optimizer", "sgd", "--lr", "0.1", "--train-steps", "20",
            "--eval-every", "10", "--log-every", "10")


def test_divergence_without_clipping_exits_1_naming_the_step(tmp_path):
    r = dlx("grad-probe", "--json", "--out", str(tmp_path / "run"), *DIVERGES)
    assert r.code == 1
    lines = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    step = int(re.search(r"became (?:NaN|Inf) at step (\d+)", lines[0]).group(1))
    assert step <= 10  # step 3 measured
    (result,) = r.summary["results"]
    assert result["diverged_at_step"] == step and result["verdict"] == "exploding"
    assert r.event("error")[-1]["exit_code"] == 1

    # In a sweep with --init-scale 1 (same depth and activation: one program), the 1.5 net
    # diverges at the same step; the 1.0 net trains on to the end, and the run exits 1.
    r = dlx("grad-probe", "--json", "--out", str(tmp_path / "sweep"), *DIVERGES[2:], "--init-scale", "1,1.5")
    assert r.code == 1 and "1 of 2 combinations diverged" in r.stderr
    ok, bad = r.summary["results"]
    assert bad["diverged_at_step"] == step and bad["verdict"] == "exploding"
    assert "diverged" not in ok and math.isfinite(ok["train_loss"])
    assert ok["steps"] == 20 and [h["step"] for h in ok["history"]] == [0, 10, 20]
    by = lambda combo, event: [x["step"] for x in r.event(event) if x["combo"] == combo]  # noqa: E731
    assert by("relu/he x1 depth 10", "train") == [1, 10, 20]
    assert all(s < step for s in by("relu/he x1.5 depth 10", "train"))
    assert os.listdir(tmp_path / "sweep" / "checkpoints") == ["relu_depth10"]  # one fit, one checkpoint


def test_a_sweep_with_a_net_that_diverged_before_any_checkpoint_resumes(tmp_path):
    # relu x1.5 diverges at step 3, before its first checkpoint; tanh trains on in its own
    # program. Its train records without a checkpoint are a divergence, not a lost
    # checkpoint: extending the run must not be refused (it was, exit 2).
    out = str(tmp_path / "sw")
    r = dlx("grad-probe", "--activation", "relu,tanh", "--out", out, *DIVERGES)
    assert r.code == 1 and "1 of 2 combinations diverged" in r.stderr, r.stderr
    assert r.stderr.count("relu/he x1.5 depth 10") == 1, r.stderr   # the net named once (it was twice)
    r = dlx("grad-probe", "--resume", out, "--train-steps", "30", "--json")
    assert r.code == 1 and "1 of 2 combinations diverged" in r.stderr, r.stderr
    ok = [x for x in r.summary["results"] if "diverged" not in x]
    assert [x["steps"] for x in ok] == [30]
    _each_record_once(os.path.join(out, "metrics.jsonl"))


def _each_record_once(path):
    with open(path, encoding="utf-8") as f:
        log = [json.loads(x) for x in f]
    seen = [(x["event"], x.get("combo"), x["step"]) for x in log if x["event"] in ("train", "eval", "info")]
    assert len(seen) == len(set(seen)), sorted(k for k in seen if seen.count(k) > 1)


def test_a_sweep_net_that_diverged_after_its_checkpoint_is_not_logged_twice_on_resume(tmp_path):
    # relu x1.5 saves a checkpoint at step 2 and diverges at step 3; tanh trains after it.
    # Extended, the run trains relu again from step 2 into the same divergence: its result is
    # the first run's (its last probe is step 2's, as then), and its records, which tanh's
    # follow in the log, are not written again (they were: steps 3's divergence twice).
    out = str(tmp_path / "sw")
    args = ("--activation", "relu,tanh", "--out", out, *DIVERGES[:6], "--train-steps", "20", "--eval-every", "2",
            "--log-every", "1", "--json")
    first = dlx("grad-probe", *args)
    assert first.code == 1, first.stderr
    r = dlx("grad-probe", "--resume", out, "--train-steps", "24", "--json")
    assert r.code == 1 and "relu-he_x1.5_depth_10 diverged at step 3 before" in r.stderr, r.stderr
    bad = lambda res: [x for x in res.summary["results"] if "diverged" in x]   # noqa: E731
    assert bad(r) == bad(first) and bad(r)[0]["diverged_at_step"] == 3
    assert [x["step"] for x in bad(r)[0]["history"]] == [0, 2]
    assert not [x for x in r.records if x.get("combo", "").startswith("relu") and x["event"] != "summary"]
    _each_record_once(os.path.join(out, "metrics.jsonl"))


def test_clipping_prevents_divergence_and_never_exceeds_theta(tmp_path):
    r = _probe(tmp_path / "run", *DIVERGES, "--clip", "1")
    s = r.summary
    assert "diverged" not in s and math.isfinite(s["train_loss"])
    assert s["clip_fraction"] > 0.5 and s["max_grad_norm"] > 1  # clipping fired, on large gradients
    assert s["max_clipped_grad_norm"] <= 1 * (1 + 1e-5)
    trains = r.event("train")
    # steps dispatched one call each also log step 1 (the first loss on screen at once)
    assert [t["step"] for t in trains] == [1, 10, 20] and all(0 <= t["clipped"] <= 1 for t in trains)
    # Every eval record holds the per-layer profile at its step; step 0 is the untrained net.
    evals = r.event("eval")
    assert [e["step"] for e in evals] == [0, 10, 20]
    assert all(len(e["preact_grad_norm"]) == 10 and len(e["saturation"]) == 10 for e in evals)
    assert [h["step"] for h in s["history"]] == [0, 10, 20]
    assert s["initial"]["ratio"] == pytest.approx(evals[0]["ratio"])


def test_a_resumed_sweep_ends_where_the_uninterrupted_one_did(tmp_path):
    args = ("--depth", "3", "--width", "8", "--batch-size", "32", "--init", "glorot,he", "--log-every", "5",
            "--eval-every", "10")
    full = _probe(tmp_path / "full", *args, "--train-steps", "20")
    _probe(tmp_path / "part", *args, "--train-steps", "10")
    # --train-steps is --steps: typed on resume, it trains on (it used to be ignored).
    resumed = dlx("grad-probe", "--resume", str(tmp_path / "part"), "--train-steps", "20", "--json")
    assert resumed.code == 0, resumed.stderr
    assert_same_numbers(strip_timing(resumed.summary), strip_timing(full.summary))
    assert [(t["combo"], t["step"]) for t in resumed.event("train")] == [
        ("relu/glorot x1 depth 3", 15), ("relu/he x1 depth 3", 15), ("relu/glorot x1 depth 3", 20),
        ("relu/he x1 depth 3", 20)]
    # --steps 0 is grad-probe's default, but typed: fewer than the run's 20, refused.
    r = dlx("grad-probe", "--resume", str(tmp_path / "part"), "--steps", "0")
    assert r.code == 2 and "--steps 0 is fewer than the saved run's 20" in r.stderr


def test_a_sweep_interrupted_between_its_groups_resumes_to_the_uninterrupted_summary(tmp_path, monkeypatch):
    """Ctrl-C after the first group's last checkpoint, before the second group starts. The
    resumed first group has nothing left to train: its summary held the step-0 probe (fit
    restores the last eval record and evaluates nothing). The second group's history had
    no step 0 (its step-0 record was written only by a run that was not resumed)."""
    from dlx.tasks import grad_probe

    args = ("--depth", "3", "--width", "8", "--batch-size", "32", "--activation", "tanh,relu",
            "--train-steps", "20", "--eval-every", "10")
    full = _probe(tmp_path / "full", *args)
    real_fit = grad_probe.fit

    def fit_then_ctrl_c(*a, **kw):
        real_fit(*a, **kw)
        raise KeyboardInterrupt   # as a Ctrl-C once the first group's last checkpoint is saved

    monkeypatch.setattr(grad_probe, "fit", fit_then_ctrl_c)
    cut = dlx("grad-probe", "--json", "--quiet", "--out", str(tmp_path / "part"), *args)
    assert cut.code == 130, cut.stderr
    monkeypatch.setattr(grad_probe, "fit", real_fit)
    resumed = dlx("grad-probe", "--resume", str(tmp_path / "part"), "--json")
    assert resumed.code == 0, resumed.stderr
    assert [h["step"] for r in resumed.summary["results"] for h in r["history"]] == [0, 10, 20, 0, 10, 20]
    assert_same_numbers(strip_timing(resumed.summary), strip_timing(full.summary))


@pytest.mark.parametrize("args, needle", [
    (["--depth", "0"], "--depth must be a positive integer"),
    (["--batch-size", "5000"], "--batch-size 5000 is more than the 1438 training examples of digits"),
    (["--depth", "4,x"], "--depth must be a comma-separated list"),
    (["--width", "0"], "--width must be a positive integer"),
    (["--activation", "swish"], "--activation must be one of sigmoid, tanh"),
    (["--init", "xavier"], "--init must be one of standard, glorot, he"),
    (["--activation", "relu,relu"], "--activation lists a value twice"),
    (["--init-scale", "-1"], "--init-scale must be a finite number > 0"),
    (["--arch", "cnn"], "--arch must be one of mlp, rnn"),
    (["--arch", "rnn", "--cell", "elman"], "--cell must be one of tanh, relu, linear, gru, lstm"),
    (["--arch", "rnn", "--seq-len", "0"], "--seq-len must be a positive integer"),
    (["--arch", "rnn", "--seq-len", "-3"], "--seq-len must be a positive integer"),
    (["--arch", "rnn", "--spectral-radius", "0"], "--spectral-radius must be a finite number > 0"),
    (["--arch", "rnn", "--train-steps", "5"], "--train-steps applies to --arch mlp only"),
    (["--cell", "lstm"], "--cell applies to --arch rnn only"),
    (["--clip", "1"], "--clip acts during training"),
    (["--train-steps", "5", "--steps", "6"], "disagree"),
    (["--optimizer", "rmsprop"], "--optimizer must be one of sgd, adam"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, args, needle):
    r = dlx("grad-probe", *args, "--json")
    assert r.code == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert os.listdir(in_tmp) == []


def test_option_lists_agree_with_the_models():
    from dlx.commands import grad_probe
    from dlx.models.mlp import ACTIVATION_NAMES, INITS

    assert grad_probe.ACTIVATIONS == ACTIVATION_NAMES
    assert grad_probe.INITS == INITS


def test_sparkline_over_log10_on_a_common_scale():
    from dlx.tasks.grad_probe import spark_scale, sparkline

    rows = [[1e-8, 1e-4, 1e-1], [0.05, 0.1, 0.1]]
    lo, hi = spark_scale(rows)
    assert (lo, hi) == (pytest.approx(-8), pytest.approx(-1))
    assert sparkline(rows[0], lo, hi) == "▁▅█"
    assert sparkline([0.0, float("nan"), 1e-1], lo, hi) == "·!█"
    # A flat profile stays flat: the scale is at least one decade wide.
    lo, hi = spark_scale([[0.06, 0.06, 0.06]])
    assert hi - lo == pytest.approx(1) and len(set(sparkline([0.06, 0.06, 0.06], lo, hi))) == 1


def test_help_and_bad_input_do_not_import_jax():
    from tests.test_cli import _no_jax

    assert _no_jax("grad-probe", "--help").returncode == 0
    p = _no_jax("grad-probe", "--arch", "rnn", "--cell", "elman")
    assert p.returncode == 2, p.stderr
