"""`dlx train-lstm` as a user runs it, at tiny budgets: it learns, samples, samples again
from a saved run, reports the long-range tasks against their baselines, refuses bad input."""

import json
import math
import os

import pytest

from dlx.data import builtin_corpus
from tests.helpers import dlx, strip_timing

# The running Python's pydoc topics: 103 distinct characters on 3.11, 104 on 3.12.
CORPUS = builtin_corpus()
VOCAB = len(set(CORPUS.text))

TINY = ("--steps", "30", "--hidden", "32", "--seq-len", "32", "--batch-size", "16", "--eval-every", "30",
        "--log-every", "10")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("lstm")
    out = str(d / "run")
    r = dlx("train-lstm", *TINY, "--prime", "The ", "--sample-len", "50", "--out", out, "--json")
    assert r.code == 0, r.stderr
    return r, out


def test_short_text_run_learns_and_samples(text_run):
    r, out = text_run
    s = r.summary
    assert s["val_loss"] < s["uniform_val_loss"] == pytest.approx(math.log(VOCAB))
    assert s["val_bpc"] == pytest.approx(s["val_loss"] / math.log(2), rel=1e-5)
    assert s["perplexity"] == pytest.approx(math.exp(s["val_loss"]), rel=1e-4)
    assert s["sample"].startswith("The ") and len(s["sample"]) == len("The ") + 50
    for g in ("forget_gate", "input_gate", "output_gate"):
        assert 0 < s["gates"][g] < 1
    assert s["gates"]["cell_norm"] > 0
    evals = r.event("eval")
    assert evals and "forget_gate" in evals[-1]
    samples = [rec for rec in r.event("info") if "sample" in rec]
    assert samples[-1]["step"] == 30 and samples[-1]["sample"] == s["sample"]
    for f in ("config.json", "summary.json", "metrics.jsonl", "gates.json", "gates.png", "curves.png"):
        assert os.path.isfile(os.path.join(out, f)), f
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["corpus_sha256"] == CORPUS.sha256 and cfg["corpus"] == "built-in:pydoc-topics"
    assert len(cfg["vocab_chars"]) == VOCAB
    with open(os.path.join(out, "gates.json")) as f:
        (layer,) = json.load(f)["layers"]
    assert len(layer["forget"]) == 32                          # one value per time step


def test_two_layer_lstm_profiles_and_plots_each_layer(in_tmp):
    # Layers after the first are drawn dashed: that style once reached matplotlib as data,
    # and every --layers 2 LSTM run failed at its end.
    r = dlx("train-lstm", "--steps", "4", "--hidden", "16", "--seq-len", "8", "--batch-size", "4", "--layers", "2",
            "--eval-every", "2", "--log-every", "2", "--sample-len", "5", "--out", "run", "--json")
    assert r.code == 0, r.stderr
    assert os.path.isfile("run/gates.png") and os.path.isfile("run/summary.json")
    with open("run/gates.json") as f:
        layers = json.load(f)["layers"]
    assert len(layers) == 2 and all(len(layer["forget"]) == 8 for layer in layers)


def test_a_run_on_a_relative_data_path_resumes_from_anywhere(in_tmp, monkeypatch):
    # The run saves --data as an absolute path: resumed from another directory it finds the
    # file, and the same file typed by another relative path is not "a different --data".
    os.makedirs("w")
    with open("w/t.txt", "w") as f:
        f.write("the quick brown fox jumps over the lazy dog. " * 40)
    monkeypatch.chdir("w")
    args = ("--steps", "4", "--hidden", "8", "--seq-len", "8", "--batch-size", "4", "--eval-every", "4",
            "--log-every", "2", "--sample-len", "5")
    assert dlx("train-lstm", "--data", "t.txt", *args, "--out", "lm").code == 0
    monkeypatch.chdir(in_tmp)
    with open("w/lm/config.json") as f:
        assert json.load(f)["config"]["data"] == str(in_tmp / "w" / "t.txt")
    r = dlx("train-lstm", "--resume", "w/lm", "--steps", "6", "--json")
    assert r.code == 0 and r.summary["steps"] == 6, r.stderr
    r = dlx("train-lstm", "--resume", "w/lm", "--steps", "8", "--data", "w/t.txt", "--json")
    assert r.code == 0 and r.summary["steps"] == 8, r.stderr


def test_options_resume_fills_in_are_not_checked_as_typed(in_tmp):
    # A run whose saved settings would now be refused if typed (made before the refusal:
    # --prime with --sample-len 0) still resumes; and train-gan's saved --lr-g and --lr-d
    # do not make a typed --lr "do nothing".
    args = ("--steps", "2", "--hidden", "8", "--seq-len", "8", "--batch-size", "4", "--eval-every", "2",
            "--sample-len", "0")
    assert dlx("train-lstm", *args, "--out", "lm").code == 0
    with open("lm/config.json") as f:
        saved = json.load(f)
    saved["config"]["prime"] = "th"
    with open("lm/config.json", "w") as f:
        json.dump(saved, f)
    r = dlx("train-lstm", "--resume", "lm", "--steps", "4")
    assert r.code == 0, r.stderr
    assert dlx("train-gan", "--dataset", "ring8", "--steps", "2", "--out", "gan").code == 0
    with open("gan/config.json") as f:
        lr = json.load(f)["config"]["lr"]
    r = dlx("train-gan", "--resume", "gan", "--steps", "4", "--lr", str(lr))
    assert r.code == 0, r.stderr


def test_from_run_samples_without_training_or_writing(text_run, in_tmp):
    _, out = text_run
    r = dlx("train-lstm", "--from", out, "--steps", "0", "--prime", "def ", "--sample-len", "25", "--json")
    assert r.code == 0, r.stderr
    s = r.summary
    assert s["from_step"] == 30
    assert s["sample"].startswith("def ") and len(s["sample"]) == 4 + 25
    assert not r.event("train")
    assert os.listdir(in_tmp) == []
    (config,) = r.event("config")   # the model sampled, not this command line's defaults
    assert config["config"]["hidden"] == 32 and config["config"]["seq_len"] == 32 and "versions" in config
    saved = json.load(open(os.path.join(out, "config.json")))["config"]
    for k in ("lr", "batch_size", "clip", "data"):   # the settings that built it (these read the defaults)
        assert config["config"][k] == saved[k], k
    # Greedy sampling is deterministic.
    a = dlx("train-lstm", "--from", out, "--steps", "0", "--temperature", "0", "--sample-len", "20", "--json")
    b = dlx("train-lstm", "--from", out, "--steps", "0", "--temperature", "0", "--sample-len", "20", "--seed", "5",
            "--json")
    assert a.summary["sample"] == b.summary["sample"]


def test_adding_reports_mse_against_its_baseline_and_same_seed_same_summary(in_tmp):
    args = ("train-lstm", "--task", "adding", "--steps", "40", "--hidden", "16", "--seq-len", "20",
            "--lr", "1e-2", "--eval-every", "40", "--json")
    a = dlx(*args, "--out", "a")
    assert a.code == 0, a.stderr
    s = a.summary
    assert s["task"] == "adding" and s["baseline"] == pytest.approx(1 / 6)
    assert 0 <= s["mse"] < 0.5                                 # nothing absurd: near or under the baseline
    assert "forget_gate" in s["gates"] and "val_loss" not in s and "sample" not in s
    b = dlx(*args, "--out", "b")
    assert b.code == 0, b.stderr
    assert strip_timing(a.summary) == strip_timing(b.summary)


def test_copy_reports_the_memoryless_baseline_with_its_task_defaults(in_tmp):
    # --steps 0: the untrained model is evaluated; the GRU has no gate statistics.
    r = dlx("train-lstm", "--task", "copy", "--cell", "gru", "--steps", "0", "--json")
    assert r.code == 0, r.stderr
    (cfg,) = r.event("config")
    assert cfg["config"]["seq_len"] == 20 and cfg["config"]["hidden"] == 64 and cfg["length"] == 40
    s = r.summary
    assert s["baseline"] == pytest.approx(10 * math.log(8) / 40)
    assert 0 <= s["accuracy"] <= 1 and s["loss"] > s["baseline"]
    assert "gates" not in s


def _one_line_exit_2(r, needle, tmp, keep=()):
    assert r.code == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(os.listdir(tmp)) == sorted(keep)


@pytest.mark.parametrize("content, needle", [
    (b"", "file is empty"),
    (b"\x00\x01\x02binary\x00" * 20, "looks binary"),
    (b"caf\xe9 au lait " * 20, "not valid UTF-8"),
    (b"too short", "only 9 characters"),
])
def test_bad_text_files(in_tmp, content, needle):
    (in_tmp / "in.txt").write_bytes(content)
    r = dlx("train-lstm", "--data", "in.txt", "--steps", "1", "--json")
    _one_line_exit_2(r, needle, in_tmp, keep=["in.txt"])


@pytest.mark.parametrize("args, needle", [
    (["--data", "missing.txt"], "no such file"),
    (["--temperature", "-0.5"], "--temperature must be a finite number >= 0"),
    (["--task", "sine"], "--task must be one of text, adding, copy, mnist1d"),
    (["--cell", "tcn"], "--cell must be one of lstm, gru, rnn"),
    (["--cell", "gru", "--forget-bias", "2"], "--forget-bias applies to --cell lstm only"),
    (["--hidden", "0"], "--hidden must be a positive integer"),
    (["--seq-len", "-3"], "--seq-len must be a positive integer"),
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--sample-len", "-1"], "--sample-len must be a non-negative integer"),
    (["--prime", "\u263a"], "--prime has characters the corpus does not"),
    (["--from", "nowhere"], "add --steps 0"),
    (["--from", "nowhere", "--steps", "0"], "--from nowhere: no such directory"),
    (["--from", os.__file__, "--steps", "0"], "not a directory"),
    (["--from", "", "--steps", "0"], "--from must name a directory, got an empty string"),
    (["--from", "nowhere", "--steps", "0", "--hidden", "64"], "--hidden does not apply"),   # was ignored
    (["--from", "nowhere", "--steps", "0", "--out", "x"], "--out does not apply"),
    (["--task", "mnist1d", "--seq-len", "100"], "40 steps"),
    (["--task", "adding", "--data", "in.txt"], "--data applies to --task text only"),
    # Options that would do nothing where they were typed (each was once silently ignored,
    # --embed on real-valued inputs failed with exit 1 after creating the run).
    (["--task", "copy", "--temperature", "0.3"], "--temperature applies to --task text only"),
    (["--task", "adding", "--sample-len", "10"], "--sample-len applies to --task text only"),
    (["--task", "adding", "--embed", "8"], "--embed applies to token inputs"),
    (["--task", "mnist1d", "--embed", "8"], "--embed applies to token inputs"),
    (["--prime", "the", "--sample-len", "0"], "--prime shapes the samples, and --sample-len 0 asks for none"),
    (["--temperature", "0.5", "--sample-len", "0"], "--temperature shapes the samples"),
    (["--from", "nowhere", "--steps", "0", "--resume", "r"], "--from and --resume contradict each other"),
    (["--from", "nowhere", "--steps", "0", "--sample-len", "0"], "--sample-len 0 asks for no sample"),
])
def test_bad_options(in_tmp, args, needle):
    extra = [] if "--steps" in args else ["--steps", "1"]
    _one_line_exit_2(dlx("train-lstm", *args, *extra, "--json"), needle, in_tmp)


def test_bench_builds_the_text_step_train_lstm_trains():
    import jax

    from dlx.tasks.train_lstm import text_trainer

    trainer, _ = text_trainer(vocab=65, embed=16, hidden=16, batch_size=4, seq_len=8)
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    assert state["params"]["embed"]["embedding"].shape == (65, 16)
    _, metrics = jax.eval_shape(trainer.step, state, jax.numpy.int32(0), trainer.data)   # traced, not run
    assert metrics["loss"].shape == () and trainer.evaluate is None


@pytest.mark.parametrize("args", [["train-lstm", "--help"], ["train-lstm", "--temperature", "-1"],
                                  ["train-lstm", "--task", "copy", "--prime", "x"]])
def test_help_and_argument_errors_do_not_import_jax(args):
    from tests.test_cli import _no_jax

    p = _no_jax(*args)
    assert p.returncode == (0 if "--help" in args else 2), p.stderr
