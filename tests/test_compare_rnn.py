"""dlx compare-rnn: parameter counts against the formulas, --match-params, the summary's
documented fields, seeds, determinism, verdict logic, and bad input."""

import json
import os
import re
from types import SimpleNamespace

import pytest

from tests.helpers import assert_same_numbers, dlx, strip_timing

CELLS = ("rnn", "gru", "lstm")
TINY = ("--steps", "30", "--hidden", "16", "--seeds", "2", "--batch-size", "16",
        "--log-every", "15", "--eval-every", "30", "--json")


# ---- parameter counts ------------------------------------------------------------------

@pytest.mark.parametrize("task_name", ["adding", "copy"])
@pytest.mark.parametrize("layers", [1, 2])
def test_param_counts_equal_the_formulas(task_name, layers):
    import jax

    from dlx.models.cells import param_count as cell_count
    from dlx.tasks.compare_rnn import model_params
    from dlx.tasks.sequence import make_task, recurrent_trainer
    from dlx.train import param_count

    task = make_task(task_name, seq_len=6)
    for cell, G in zip(CELLS, (1, 3, 4)):
        H = 7
        counts = model_params(cell, task, H, layers)
        trainer, _ = recurrent_trainer(task, cell=cell, hidden=H, layers=layers, lr=1e-3, batch_size=4,
                                       evaluate=False)
        params = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))["params"]
        assert counts["params"] == param_count(params), cell
        X = task.in_features
        assert counts["recurrent_params"] == G * H * (X + H + 1) + (layers - 1) * G * H * (2 * H + 1)
        assert counts["recurrent_params"] == cell_count(cell, X, H) + (layers - 1) * cell_count(cell, H, H)
        assert counts["head_params"] == H * task.out_features + task.out_features


@pytest.mark.parametrize("task_name, hidden", [("adding", 32), ("adding", 64), ("copy", 32), ("copy", 128)])
def test_match_params_sizes_the_cells_to_within_a_few_percent(task_name, hidden):
    from dlx.tasks.compare_rnn import hidden_widths, model_params
    from dlx.tasks.sequence import make_task

    task = make_task(task_name, seq_len=6)
    widths = hidden_widths(CELLS, task, hidden, 1, match=True)
    assert widths["lstm"] == hidden and widths["lstm"] < widths["gru"] < widths["rnn"]
    counts = {c: model_params(c, task, widths[c])["params"] for c in CELLS}
    for c in CELLS:  # each within 3% of the LSTM's count (widths are integers)
        assert abs(counts[c] / counts["lstm"] - 1) < 0.03, (widths, counts)
    # without the flag every cell keeps --hidden
    assert hidden_widths(CELLS, task, hidden, 1, match=False) == {c: hidden for c in CELLS}
    # without the LSTM, the GRU is the reference
    assert hidden_widths(("rnn", "gru"), task, hidden, 1, match=True)["gru"] == hidden


def test_task_names_and_default_lengths_match_the_shared_module():
    from dlx.commands import compare_rnn as cmd
    from dlx.tasks import sequence

    assert set(cmd.TASKS) == set(sequence.TASKS)
    assert cmd.DEFAULT_SEQ_LEN == sequence.DEFAULT_SEQ_LEN


# ---- one real (tiny) sweep, shared by the tests below ------------------------------------

@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """All three cells at one length (each fit costs a compile: keep their number small).
    The run's one-step compilations are counted in ONE_STEP_COMPILES."""
    from dlx import runtime

    out = tmp_path_factory.mktemp("compare") / "run"
    options = runtime.step_compiler_options

    def counted():   # asked for by every one-step program compiled (fit, the side-by-side timing)
        ONE_STEP_COMPILES.append(1)
        return options()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runtime, "step_compiler_options", counted)
        r = dlx("compare-rnn", "--task", "adding", "--seq-len", "12", *TINY, "--out", str(out))
    assert r.code == 0, r.stderr
    return r, out


ONE_STEP_COMPILES: list = []


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The GRU alone over two lengths."""
    out = tmp_path_factory.mktemp("compare") / "sweep"
    r = dlx("compare-rnn", "--task", "adding", "--cells", "gru", "--seq-len", "12,6", *TINY, "--out", str(out))
    assert r.code == 0, r.stderr
    return r, out


def test_summary_has_the_documented_fields(three):
    r, out = three
    s = r.summary
    assert s["task"] == "adding" and s["metric"] == "mse" and s["seq_lens"] == [12] and s["seq_len"] == 12
    assert s["baseline"] == pytest.approx(1 / 6)        # on the metric: always predicting 1
    assert set(s["cells"]) == set(CELLS)
    for cell in CELLS:
        c = s["cells"][cell]
        for field in ("mse", "params", "ms_per_step", "compile_s", "examples_per_s", "peak_bytes", "spread",
                      "per_seed", "hidden", "solved"):
            assert field in c, (cell, field)
        assert set(c["spread"]) >= {"n", "mean", "std", "ci95", "values"}
        assert c["mse"] == c["spread"]["mean"] == c["by_seq_len"]["12"]["mse"]
        assert set(c["by_seq_len"]) == {"12"}
    # --hidden 16 without --match-params: the counts follow G*H*(X+H+1) + H*1 + 1 (X = 2)
    assert {k: s["cells"][k]["params"] for k in CELLS} == {k: G * 16 * 19 + 17 for k, G in zip(CELLS, (1, 3, 4))}
    claims = [v["claim"] for v in s["verdicts"]]
    assert "GRU has fewer parameters than LSTM" in claims and "LSTM beats GRU on adding" in claims
    assert "gated cells beat the plain RNN on long dependencies" in claims
    for v in s["verdicts"]:
        assert set(v) == {"claim", "supported", "evidence"} and v["supported"] in (True, False, None)
        assert v["evidence"]
    assert s["verdicts"][0]["supported"] is True  # fewer parameters: arithmetic, never noise
    pairs = {(p["a"], p["b"], p["seq_len"]) for p in s["paired"]}
    assert pairs == {("rnn", "gru", 12), ("rnn", "lstm", 12), ("gru", "lstm", 12)}
    assert os.path.isfile(out / "compare.png") and os.path.isfile(out / "summary.json")
    with open(out / "summary.json") as f:
        assert json.load(f)["cells"]["gru"]["mse"] == s["cells"]["gru"]["mse"]


def test_resuming_a_finished_run_changes_nothing(three, tmp_path):
    """Resumed with nothing left to train, each cell compiles nothing: its peak_bytes came
    back null and the memory verdict "inconclusive" (it read true before)."""
    import shutil

    r, out = three
    shutil.copytree(out, tmp_path / "run")
    again = dlx("compare-rnn", "--resume", str(tmp_path / "run"), "--json")
    assert again.code == 0, again.stderr
    assert all(c["peak_bytes"] for c in again.summary["cells"].values())
    timing = {"wall_s", "compile_s", "ms_per_step", "examples_per_s", "run", "elapsed_s",   # not peak_bytes
              "step_ms", "step_ms_rounds"}
    # The speed verdict is a timing: side by side after training, and from the fits' own
    # times when a finished run is resumed (nothing compiled to run again).
    strip = lambda d: ({"claim": d["claim"]} if isinstance(d, dict) and d.get("claim") == "GRU steps faster than LSTM"
                       else {k: strip(v) for k, v in d.items() if k not in timing} if isinstance(d, dict)
                       else [strip(v) for v in d] if isinstance(d, list) else d)
    assert strip(again.summary) == strip(r.summary)


def test_per_seed_values_have_one_entry_per_seed_and_differ(three):
    s = three[0].summary
    for cell in CELLS:
        vals = s["cells"][cell]["per_seed"]
        assert len(vals) == 2 and vals[0] != vals[1] and vals == s["cells"][cell]["spread"]["values"]
    evals = [e for e in three[0].event("eval") if e["cell"] == "gru" and e["seq_len"] == 12]
    # As train-gan's --seeds records: the mean under the metric, the values beside it.
    assert evals and len(evals[-1]["mse_per_seed"]) == 2
    assert evals[-1]["mse"] == pytest.approx(sum(evals[-1]["mse_per_seed"]) / 2)
    assert evals[-1]["mse_per_seed"] == s["cells"]["gru"]["per_seed"]


def test_sweep_keeps_every_length_and_the_longest_on_top(sweep):
    s = sweep[0].summary
    c = s["cells"]["gru"]
    assert s["seq_lens"] == [6, 12] and s["seq_len"] == 12 and set(c["by_seq_len"]) == {"6", "12"}
    assert s["length"] == 12                                    # the longest length's, not the first's
    assert c["mse"] == c["by_seq_len"]["12"]["mse"] and c["by_seq_len"]["6"]["mse"] != c["mse"]
    lone = [v for v in s["verdicts"] if v["claim"] == "GRU steps faster than LSTM"]
    assert lone[0]["supported"] is None and "needs --cells" in lone[0]["evidence"]
    assert s["paired"] == []


def test_same_seed_same_numbers_whatever_the_other_cells(three, sweep):
    """Seed i of the GRU sees the same data and initial key whether it is trained beside the
    RNN and LSTM or alone, at one length or in a sweep: the numbers are identical on the CPU.
    On a GPU (README) they agree to float32 rounding: XLA may order a reduction differently
    in the two programs (an H100 gave 4e-7 relative)."""
    alone = strip_timing(sweep[0].summary["cells"]["gru"]["by_seq_len"]["12"])
    beside = strip_timing(three[0].summary["cells"]["gru"]["by_seq_len"]["12"])
    assert_same_numbers(alone, beside)


# ---- verdicts on known numbers ------------------------------------------------------------

def _fake(task_name="adding", metric="mse", lower=True, **per_cell):
    from dlx import stats

    task = SimpleNamespace(name=task_name, metric=metric, lower_is_better=lower, in_features=2, out_features=1,
                           vocab=None)
    cells = tuple(c for c in CELLS if c in per_cell)
    cfg = SimpleNamespace(cells=cells, hidden=16, layers=1, seeds=3)
    by_len = {100: {c: {"per_seed": v, "spread": stats.spread(v), "params": 1, "ms_per_step": ms,
                        "peak_bytes": mem, "solved": None}
                    for c, (v, ms, mem) in per_cell.items()}}
    return task, cfg, by_len


def test_verdicts_follow_the_paired_intervals():
    from dlx.tasks.compare_rnn import verdicts

    task, cfg, by_len = _fake(rnn=([0.17, 0.16, 0.18], 5.0, 100), gru=([0.004, 0.0035, 0.0045], 9.0, 300),
                              lstm=([0.001, 0.0015, 0.002], 10.0, 400))
    v = {x["claim"]: x["supported"] for x in verdicts(task, cfg, {c: 16 for c in cfg.cells}, by_len)}
    assert v["GRU has fewer parameters than LSTM"] is True
    assert v["GRU steps faster than LSTM"] is None          # the fits' own times (9 vs 10 ms) decide nothing
    assert v["GRU needs less memory per step than LSTM"] is True
    assert v["gated cells beat the plain RNN on long dependencies"] is True
    assert v["LSTM beats GRU on adding"] is True             # lower mse on every seed

    task, cfg, by_len = _fake(rnn=([0.001, 0.002, 0.0015], 5.0, 100), gru=([0.17, 0.16, 0.18], 10.2, 300),
                              lstm=([0.2, 0.1, 0.15], 10.0, 300))
    v = {x["claim"]: x["supported"] for x in verdicts(task, cfg, {c: 16 for c in cfg.cells}, by_len)}
    assert v["GRU steps faster than LSTM"] is None
    assert v["GRU needs less memory per step than LSTM"] is False
    assert v["gated cells beat the plain RNN on long dependencies"] is False
    assert v["LSTM beats GRU on adding"] is None             # the interval holds 0

    # accuracy: higher is better; not a long-dependency task
    task, cfg, by_len = _fake("mnist1d", "accuracy", False, gru=([0.90, 0.91, 0.92], 9.0, 1),
                              lstm=([0.85, 0.86, 0.88], 12.0, 1))
    v = {x["claim"]: x["supported"] for x in verdicts(task, cfg, {c: 16 for c in cfg.cells}, by_len)}
    assert v["LSTM beats GRU on mnist1d"] is False
    assert v["gated cells beat the plain RNN on long dependencies"] is None

    # one seed: no interval, said once per paired difference (it was said once more)
    task, cfg, by_len = _fake(rnn=([0.17], 5.0, 100), gru=([0.16], 9.0, 300))
    cfg.seeds = 1
    (ev,) = [x["evidence"] for x in verdicts(task, cfg, {c: 16 for c in cfg.cells}, by_len)
             if x["claim"] == "gated cells beat the plain RNN on long dependencies"]
    assert ev.count("(one seed: no interval)") == 1, ev


def test_long_dependency_claim_needs_a_length_the_plain_rnn_fails_at():
    # Where the plain RNN solves the task, the length is no long dependency for it.
    from dlx.tasks.compare_rnn import verdicts

    task, cfg, by_len = _fake(rnn=([0.003, 0.004, 0.005], 5.0, 100), gru=([0.0004, 0.0003, 0.0005], 9.0, 300))
    by_len[100]["rnn"]["solved"] = True
    (v,) = [x for x in verdicts(task, cfg, {c: 16 for c in cfg.cells}, by_len)
            if x["claim"] == "gated cells beat the plain RNN on long dependencies"]
    assert v["supported"] is None and "the plain RNN solves adding at T=100" in v["evidence"]
    by_len[100]["rnn"]["solved"] = False                      # the same numbers, judged
    (v,) = [x for x in verdicts(task, cfg, {c: 16 for c in cfg.cells}, by_len)
            if x["claim"] == "gated cells beat the plain RNN on long dependencies"]
    assert v["supported"] is True


def test_speed_verdict_reads_the_side_by_side_rounds():
    """The fits' own ms/step (here 20 vs 10: GRU slower) give way to the rounds timed side by
    side after training; a verdict needs the median beyond 5% and every round agreeing."""
    from dlx.tasks.compare_rnn import verdicts

    def speed(gru_rounds, lstm_rounds):
        task, cfg, by_len = _fake(gru=([0.1, 0.2, 0.3], 20.0, 1), lstm=([0.1, 0.2, 0.3], 10.0, 1))
        by_len[100]["gru"]["step_ms_rounds"], by_len[100]["lstm"]["step_ms_rounds"] = gru_rounds, lstm_rounds
        (v,) = [x for x in verdicts(task, cfg, {c: 16 for c in cfg.cells}, by_len)
                if x["claim"] == "GRU steps faster than LSTM"]
        return v

    v = speed([8.0, 8.5, 9.0, 8.2, 8.8], [10.0, 10.1, 9.8, 10.3, 10.0])
    assert v["supported"] is True and "GRU/LSTM = 0.84 (rounds 0.80, 0.84" in v["evidence"] and "5 rounds side by side" in v["evidence"]
    assert speed([12.0, 12.5, 13.0, 12.2, 12.8], [10.0] * 5)["supported"] is False
    # median 0.85, but one round the other way: not decided
    assert speed([8.0, 8.5, 10.5, 8.2, 8.8], [10.0] * 5)["supported"] is None
    assert speed([9.8, 10.1, 10.0, 9.9, 10.2], [10.0] * 5)["supported"] is None     # within 5%


def test_a_failed_side_by_side_timing_is_said_and_decides_nothing(monkeypatch):
    import jax

    from dlx.tasks import compare_rnn

    said, records, freed = [], [], []

    def ok(min_s):
        if min_s is None:
            freed.append("ok")
        return 0.01

    def fails(min_s):
        if min_s is None:
            freed.append("fails")
            return None
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: out of memory")

    run = SimpleNamespace(out=SimpleNamespace(warn=said.append, emit=lambda e, r: records.append((e, r))))
    assert compare_rnn.side_by_side(run, {"gru": ok, "lstm": fails}) == {}
    assert len(said) == 1 and "side-by-side timing failed" in said[0] and "RESOURCE_EXHAUSTED" in said[0]
    assert records[0][0] == "info" and "RESOURCE_EXHAUSTED" in records[0][1]["side_by_side"]
    assert sorted(freed) == ["fails", "ok"]                        # both copies freed
    assert compare_rnn.side_by_side(run, {"gru": ok, "lstm": None}) == {}   # one cell: nothing to compare
    with pytest.raises(ValueError):                                # a bug is not swallowed
        compare_rnn.side_by_side(run, {"gru": ok, "lstm": lambda m: (_ for _ in ()).throw(ValueError("bug"))})
    monkeypatch.setattr(jax, "process_count", lambda: 2)           # several hosts: not timed at all
    assert compare_rnn.side_by_side(run, {"gru": ok, "lstm": ok}) == {}


def test_summary_has_the_side_by_side_step_times(three):
    s = three[0].summary
    for cell in CELLS:                                        # every cell, at the longest length
        c = s["cells"][cell]
        assert len(c["step_ms_rounds"]) == 5 and all(x > 0 for x in c["step_ms_rounds"])
        assert c["step_ms"] == pytest.approx(sorted(c["step_ms_rounds"])[2])
    (v,) = [x for x in s["verdicts"] if x["claim"] == "GRU steps faster than LSTM"]
    assert "side by side" in v["evidence"]
    # Tiny steps: every fit scanned them, and the rounds ran the scanned chunks they trained
    # with. No one-step program was compiled for the timing (4-6 s each on a 2-core Xeon).
    assert ONE_STEP_COMPILES == []


def _fit(retime, scanned):
    return SimpleNamespace(retime=retime, retime_scanned=scanned)


def test_the_side_by_side_rounds_time_every_cell_in_one_form():
    from dlx.tasks.compare_rnn import timing_programs

    one, chunk = (lambda m: 1.0), (lambda m: 0.1)
    every = {"gru": _fit(one, chunk), "lstm": _fit(one, chunk)}
    assert timing_programs(every) == {"gru": chunk, "lstm": chunk}          # all scanned: their chunks
    mixed = {"gru": _fit(one, chunk), "lstm": _fit(one, None)}              # one dispatched one call a step
    assert timing_programs(mixed) == {"gru": one, "lstm": one}              # every cell's one-step program
    # A cell that trained nothing here (resumed complete, --steps 0) has neither and is left out.
    assert timing_programs({**every, "rnn": _fit(None, None)}) == {"gru": chunk, "lstm": chunk, "rnn": None}
    assert timing_programs({"rnn": _fit(None, None)}) == {"rnn": None}


# ---- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["--cells", "rnn,tcn"], "--cells must be one of rnn, gru, lstm"),
    (["--cells", "gru,gru"], "lists a value twice"),
    (["--cells", "gru,lstm", "--rnn-activation", "relu"], "--rnn-activation applies to the plain RNN"),
    (["--task", "parity"], "--task must be one of"),
    (["--seq-len", "0"], "--seq-len must be a positive integer"),
    (["--seq-len", "25,-50"], "--seq-len must be a positive integer"),
    (["--seq-len", "25,fifty"], "--seq-len must be a comma-separated list of positive integers"),
    (["--seq-len", "1"], "--seq-len must be at least 2"),
    (["--task", "mnist1d", "--seq-len", "100"], "MNIST-1D signals have 40 steps"),
    (["--hidden", "0"], "--hidden must be a positive integer"),
    (["--seeds", "0"], "--seeds must be a positive integer"),
    (["--seeds", "-2"], "--seeds must be a positive integer"),
    (["--layers", "0"], "--layers must be a positive integer"),
    (["--rnn-activation", "sigmoid"], "--rnn-activation must be one of tanh, relu"),
    (["--task", "adding", "--data", "x.txt"], "--data is for --task text"),
    (["--task", "text", "--data", "/nonexistent/corpus.txt"], "no such file"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, args, needle):
    r = dlx("compare-rnn", *args, "--json")
    assert r.code == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert os.listdir(in_tmp) == []
    assert r.records and r.records[-1]["event"] == "error" and r.records[-1]["exit_code"] == 2


def test_baseline_is_on_the_metric():
    """The summary's `baseline` sits beside `metric`: for copy that is accuracy (1 of 8
    symbols guessed), not the task's cross-entropy baseline, which train-lstm reports."""
    from dlx.tasks.compare_rnn import metric_baseline
    from dlx.tasks.sequence import make_task

    assert metric_baseline(make_task("copy", seq_len=25)) == pytest.approx(1 / 8)
    assert metric_baseline(make_task("adding", seq_len=25)) == pytest.approx(1 / 6)


def test_a_run_of_zero_steps_draws_its_figure_without_warnings(in_tmp):
    # An empty legend made matplotlib warn on stderr, also under --quiet.
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = dlx("compare-rnn", "--task", "adding", "--seq-len", "6", "--cells", "gru", "--seeds", "1", "--steps", "0",
                "--hidden", "4", "--quiet", "--out", "zero")
    assert r.code == 0 and r.stderr == "", r.stderr
    assert os.path.isfile("zero/compare.png")
    assert not [w for w in caught if "legend" in str(w.message)], [str(w.message) for w in caught]


def test_resume_refuses_a_changed_length_and_a_model_whose_checkpoint_is_gone(in_tmp):
    # --seq-len (the config's seq_lens) typed anew was dropped without a word; a model whose
    # checkpoint was deleted trained again from step 0, its records logged twice.
    import shutil

    args = ("--task", "adding", "--cells", "gru,lstm", "--seq-len", "6,8", "--hidden", "4", "--seeds", "1",
            "--steps", "10", "--eval-every", "10", "--log-every", "5", "--quiet")
    assert dlx("compare-rnn", *args, "--out", "run").code == 0
    r = dlx("compare-rnn", "--resume", "run", "--seq-len", "6", "--steps", "20")
    assert r.code == 2 and "--seq-len 6 differs" in r.stderr, r.stderr     # the option's name, not the field's
    assert dlx("compare-rnn", "--resume", "run", "--seq-len", "8,6", "--steps", "10").code == 0  # the same lengths
    before = open("run/metrics.jsonl").read()
    last = [json.loads(l) for l in before.splitlines() if '"event":"train"' in l][-1]
    shutil.copytree("run", "kept")
    # The last model's records are after every other model's checkpoint, so a resume takes
    # them out as stale: they still count as training that its lost checkpoint had saved.
    for name in (f"{last['cell']}-T{last['seq_len']}", "lstm-T6"):
        shutil.rmtree("run")
        shutil.copytree("kept", "run")    # each case from the complete run (a refused resume
        shutil.rmtree(f"run/checkpoints/{name}")   # keeps the checkpoints the others saved)
        kept_steps = sorted(os.path.relpath(d, "run") for d, _, _ in os.walk("run/checkpoints")
                            if os.path.basename(d).isdigit())
        r = dlx("compare-rnn", "--resume", "run", "--steps", "20")
        assert r.code == 2 and f"{name} has trained" in r.stderr, r.stderr
        assert open("run/metrics.jsonl").read() == before                # left as it was, and the
        assert sorted(os.path.relpath(d, "run") for d, _, _ in os.walk("run/checkpoints")   # models that
                      if os.path.basename(d).isdigit()) == kept_steps    # trained on first saved nothing
    shutil.rmtree("run/checkpoints")
    r = dlx("compare-rnn", "--resume", "run", "--steps", "20")       # complete, every checkpoint gone
    assert r.code == 2 and "no checkpoint left" in r.stderr, r.stderr


def test_a_model_killed_while_writing_its_first_checkpoint_trains_again(in_tmp):
    """The models before it are restored; the one whose first checkpoint never landed (its
    steps logged up to that checkpoint, the run not ended) trains again from step 0."""
    import shutil

    args = ("--task", "adding", "--cells", "gru,lstm", "--seq-len", "6", "--hidden", "4", "--seeds", "1",
            "--steps", "10", "--eval-every", "10", "--log-every", "5", "--json", "--quiet")
    full = dlx("compare-rnn", *args, "--out", "full")
    assert full.code == 0, full.stderr
    shutil.copytree("full", "cut")
    os.remove("cut/summary.json")
    shutil.rmtree("cut/checkpoints/lstm-T6")
    lines = [l for l in open("cut/metrics.jsonl") if '"event":"summary"' not in l]
    open("cut/metrics.jsonl", "w").writelines(lines)
    r = dlx("compare-rnn", "--resume", "cut", "--json", "--quiet")
    assert r.code == 0, r.stderr
    assert {t.get("cell") for t in r.event("train")} == {"lstm"}    # the GRU was restored, not retrained
    assert_same_numbers(strip_timing(r.summary["cells"]), strip_timing(full.summary["cells"]))
    def logged(recs):
        return [(x["event"], x.get("cell"), x["step"]) for x in recs if "step" in x]
    assert logged(map(json.loads, open("cut/metrics.jsonl"))) == logged(full.records)   # each once


def test_a_diverging_model_is_named_in_the_error(in_tmp):
    # The line read "grad_norm became NaN at step 2; ...", not saying which cell of the run.
    r = dlx("compare-rnn", "--steps", "50", "--hidden", "8", "--batch-size", "4", "--seeds", "2", "--seq-len", "10",
            "--lr", "1e30", "--clip", "0", "--out", "d")
    assert r.code == 1
    assert re.search(r"error: (lstm|gru|rnn) seq_len=10: \w+ became (NaN|Inf) at step \d+", r.stderr), r.stderr[-500:]
