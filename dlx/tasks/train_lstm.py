"""`dlx train-lstm`, the work: a recurrent model on a sequence task, samples, gate diagnostics.

The text task is a character-level language model; its vocabulary (the id -> character
string) is saved in config.json as `vocab_chars`, so `--from RUN --steps 0` can sample
from the run's final checkpoint without the corpus. For an LSTM, every evaluation also
measures the gates on a fixed held-out batch: the mean forget / input / output gate and
the cell-state norm ||c_t||, averaged over time (eval records: the trajectory over
training) and per time step for the final model (gates.json, gates.png).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dlx import plots
from dlx.checkpoint import Checkpointer
from dlx.data import Corpus, load_text
from dlx.errors import UsageError
from dlx.rundir import not_a_dir
from dlx.tasks.sequence import SeqTask, gate_probe_inputs, gate_stats, make_task, recurrent_trainer
from dlx.train import fit, param_count

GATES = ("forget", "input", "output")


# ---- sampling --------------------------------------------------------------------------

@partial(jax.jit, static_argnums=(0, 3, 4))
def _generate(graphdef, params, prime_ids, length: int, temperature: float, key):
    """Feed prime_ids (P,) through the model, then draw `length` tokens (length,)."""
    model = nnx.merge(graphdef, params)

    def feed(state, tok):
        return model.step_tokens(state, tok[None])

    state, logits = jax.lax.scan(feed, model.init_state(1), prime_ids)

    def draw(carry, k):
        state, logits = carry                                # logits (1, V)
        if temperature == 0:
            tok = jnp.argmax(logits, -1)
        else:
            tok = jax.random.categorical(k, logits / temperature, axis=-1)
        state, logits = model.step_tokens(state, tok)
        return (state, logits), tok[0]

    _, toks = jax.lax.scan(draw, (state, logits[-1]), jax.random.split(key, length))
    return toks


def sample_text(task: SeqTask, graphdef, params, *, prime: str, length: int, temperature: float, key) -> str:
    """prime + `length` characters drawn from the model. With no prime the model starts
    after a newline (or the first character of the vocabulary), which is not shown."""
    start = prime or ("\n" if "\n" in task.chars else task.chars[0])
    toks = _generate(graphdef, params, jnp.asarray(task.encode(start)), length, float(temperature), key)
    return prime + task.decode(np.asarray(toks))


def check_prime(task: SeqTask, prime: str) -> None:
    missing = sorted(set(prime) - set(task.chars))
    if missing:
        raise UsageError(f"--prime has characters the corpus does not: {''.join(missing)!r}")


# ---- gate diagnostics ------------------------------------------------------------------

def _gate_fn(graphdef):
    return jax.jit(lambda params, x: gate_stats(graphdef, params, x))


def gate_scalars(layers: list[dict]) -> dict:
    """Means over time of each layer's gate profile: forget_gate, input_gate, output_gate,
    cell_norm (layer 1), with a _l2, _l3 ... suffix for deeper layers."""
    out = {}
    for li, stats in enumerate(layers):
        suffix = "" if li == 0 else f"_l{li + 1}"
        for g in GATES:
            out[f"{g}_gate{suffix}"] = float(np.mean(stats[g]))
        out[f"cell_norm{suffix}"] = float(np.mean(stats["cell_norm"]))
    return out


def plot_gates(metrics_path: str, profile: list[dict], png_path: str, title: str) -> None:
    """Left: gate means and ||c_t|| against the time step, final model. Right: their
    time averages against the training step (from the eval records)."""
    plt = plots._plt()
    evals = []
    with open(metrics_path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("event") == "eval" and "forget_gate" in rec:
                evals.append(rec)
    evals.sort(key=lambda r: r["step"])
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), squeeze=False)
    colors = {"forget": "tab:blue", "input": "tab:green", "output": "tab:orange"}
    (ax_g, ax_tg), (ax_c, ax_tc) = axes
    for li, stats in enumerate(profile):
        style = "-" if li == 0 else (0, (4, 1 + li))
        t = np.arange(1, len(stats["forget"]) + 1)
        for g in GATES:
            ax_g.plot(t, stats[g], linestyle=style, color=colors[g], label=f"{g} gate" + (f" (layer {li + 1})" if li else ""))
        ax_c.plot(t, stats["cell_norm"], linestyle=style, color="tab:red", label=f"layer {li + 1}")
    ax_g.set(title="final model: mean gate value per time step", xlabel="time step t", ylim=(0, 1))
    ax_c.set(title="final model: cell-state norm ||c_t|| (long-term memory)", xlabel="time step t")
    steps = [r["step"] for r in evals]
    for g in GATES:
        ax_tg.plot(steps, [r[f"{g}_gate"] for r in evals], marker=".", color=colors[g], label=f"{g} gate")
    ax_tg.set(title="gate means (layer 1) over training", xlabel="training step", ylim=(0, 1))
    ax_tc.plot(steps, [r["cell_norm"] for r in evals], marker=".", color="tab:red")
    ax_tc.set(title="mean ||c_t|| (layer 1) over training", xlabel="training step")
    for ax in (ax_g, ax_tg, ax_c):
        plots.legend(ax, fontsize=7)
    fig.suptitle(title, fontsize=10)
    plots.tight_layout(fig)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


# ---- the Trainer that `dlx bench` times -------------------------------------------------

def text_trainer(*, vocab: int, embed: int | None, hidden: int, batch_size: int, seq_len: int,
                 layers: int = 1, cell: str = "lstm", lr: float = 3e-3, clip: float = 1.0,
                 forget_bias: float = 1.0):
    """(Trainer, graphdef) of the text task exactly as train-lstm builds it, on a
    synthetic corpus of `vocab` distinct characters (step time does not depend on the
    text). For `dlx bench`; evaluation is left off."""
    rng = np.random.RandomState(0)
    alphabet = [chr(0x41 + i) for i in range(vocab)]
    text = "".join(rng.choice(alphabet, size=max(100_000, 4 * (seq_len + 1))))
    task = make_task("text", seq_len=seq_len, corpus=Corpus(text, "synthetic"), vocab="".join(alphabet))
    return recurrent_trainer(task, cell=cell, hidden=hidden, layers=layers, embed=embed, lr=lr,
                             batch_size=batch_size, clip=clip, forget_bias=forget_bias, evaluate=False)


# ---- the command -------------------------------------------------------------------------

def _model_kwargs(cfg) -> dict:
    return dict(cell=cfg.cell, hidden=cfg.hidden, layers=cfg.layers, embed=cfg.embed, lr=cfg.lr,
                batch_size=cfg.batch_size, clip=cfg.clip, forget_bias=cfg.forget_bias)


def _opt_step(state) -> int | None:
    try:
        return int(np.max(np.asarray(optax.tree_utils.tree_get(state["opt"], "count"))))
    except Exception:  # an optimizer without a step count
        return None


def run(cfg, run):
    if cfg.from_run is not None:
        return _sample_saved(cfg, run)
    corpus = load_text(cfg.data) if cfg.task == "text" else None
    task = make_task(cfg.task, seq_len=cfg.seq_len, corpus=corpus)
    text = task.name == "text"
    if text:
        check_prime(task, cfg.prime)
        if cfg.resume:
            _check_same_corpus(cfg.resume, corpus)
    trainer, graphdef = recurrent_trainer(task, **_model_kwargs(cfg))
    n_params = param_count(jax.eval_shape(trainer.init, jax.random.PRNGKey(0))["params"])

    extra = {**task.describe(), "params": n_params}
    if text:
        extra.update(corpus.describe(), vocab_chars=task.chars)
    run.start(**extra)

    metrics_fn = trainer.evaluate
    gates_fn = _gate_fn(graphdef) if cfg.cell == "lstm" else None
    probe = jnp.asarray(gate_probe_inputs(task))
    sample_key = jax.random.PRNGKey(cfg.seed + 1)

    def sample(params, step):
        return sample_text(task, graphdef, params, prime=cfg.prime, length=cfg.sample_len,
                           temperature=cfg.temperature, key=jax.random.fold_in(sample_key, step))

    last_sample: list = []                                   # [step, text] of the latest eval

    def evaluate(state):
        res = metrics_fn(state)
        if gates_fn is not None:
            res.update(gate_scalars(jax.device_get(gates_fn(state["params"], probe))))
        if text and cfg.sample_len:
            # An `info` record, not a field of the eval record: a string there would
            # read as a tag to the curve plots.
            step = _opt_step(state) or 0
            last_sample[:] = [step, sample(state["params"], step)]
            run.emit("info", {"step": step, "sample": last_sample[1]})
            run.out.info(f"[dim]sample at step {step}:[/]\n{_show(last_sample[1])}")
        return res

    trainer.evaluate = evaluate
    res = fit(run, trainer, steps=cfg.steps, seed=cfg.seed, log_every=cfg.log_every, eval_every=cfg.eval_every,
              description=f"{cfg.cell} {task.name}")
    params = res.state["params"]

    summary = {"task": task.name, "cell": cfg.cell, "steps": res.step, "params": n_params}
    if text:
        summary.update({k: res.eval[k] for k in ("val_loss", "val_bpc", "perplexity")})
        summary["uniform_val_loss"] = math.log(task.vocab)   # a model that knows only the vocabulary
    elif task.name == "copy":
        summary.update(loss=res.eval["loss"], accuracy=res.eval["accuracy"], baseline=task.baseline,
                       beats_baseline=bool(res.eval["loss"] < task.baseline))
    else:
        summary[task.metric] = res.eval[task.metric]
        summary["baseline"] = task.baseline
        if task.name == "mnist1d":
            summary["test_loss"] = res.eval["test_loss"]
    if gates_fn is not None:
        profile = jax.device_get(gates_fn(params, probe))
        profile = [{k: np.asarray(v).tolist() for k, v in layer.items()} for layer in profile]
        summary["gates"] = gate_scalars(profile)
        run.dir.write_json("gates.json", {"step": res.step, "probe": f"{len(probe)} held-out sequences",
                                          "layers": profile})
        plot_gates(run.path("metrics.jsonl"), profile, run.path("gates.png"),
                   f"dlx train-lstm: LSTM gates ({task.name}, hidden {cfg.hidden})")
    summary.update(compile_s=res.compile_s, ms_per_step=res.ms_per_step, examples_per_s=res.examples_per_s)
    if text and cfg.sample_len:
        summary["sample"] = last_sample[1] if last_sample and last_sample[0] == res.step else sample(params, res.step)
    plots.curves_from_metrics(run.path("metrics.jsonl"), run.path("curves.png"), f"dlx train-lstm ({task.name})")
    table = {k: v for k, v in summary.items() if not isinstance(v, (dict, list)) and k != "sample"}
    table.update(summary.get("gates", {}))
    if text and cfg.sample_len:
        run.out.info(f"[bold]sample[/] (temperature {cfg.temperature}):\n{_show(summary['sample'])}")
    run.finish(summary, table=table)


def _show(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _check_same_corpus(run_dir: str, corpus: Corpus) -> None:
    from dlx.rundir import read_config

    saved = read_config(run_dir)
    sha = saved.get("corpus_sha256")
    if sha is not None and sha != corpus.sha256:
        raise UsageError(f"--resume {run_dir}: the text differs from the one this run was trained on "
                         f"(sha256 {corpus.sha256[:12]}… vs {sha[:12]}…)")


# ---- --from RUN --steps 0: sample from a saved run -------------------------------------------

def _read_saved(path: str) -> dict:
    cfg_path = os.path.join(path, "config.json")
    if not path.strip():
        raise UsageError("--from must name a directory, got an empty string")
    if not os.path.isdir(path):
        raise UsageError(f"--from {path}: {not_a_dir(path)}")
    try:
        with open(cfg_path, encoding="utf-8") as f:
            saved = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"--from {path}: not a dlx run directory (no config.json)") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"--from {path}: config.json is unreadable ({e})") from None
    old = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(old, dict) or old.get("command") != "train-lstm":
        raise UsageError(f"--from {path}: not a `dlx train-lstm` run")
    if old.get("task") != "text" or not isinstance(saved.get("vocab_chars"), str):
        raise UsageError(f"--from {path}: that run trained on --task {old.get('task')}; only text runs can be sampled")
    if not os.path.isdir(os.path.join(path, "checkpoints", "main")):
        raise UsageError(f"--from {path}: the run has no checkpoint to sample from")
    return saved


def _sample_saved(cfg, run):
    path = cfg.from_run
    saved = _read_saved(path)
    old = saved["config"]
    chars = saved["vocab_chars"]
    T = int(old["seq_len"])
    # A model-only text task: the vocabulary fixes the shapes; no corpus is needed.
    task = make_task("text", seq_len=T, corpus=Corpus(chars * (2 * (T + 1) // len(chars) + 1), "vocab"),
                     vocab=chars)
    check_prime(task, cfg.prime)
    trainer, graphdef = recurrent_trainer(task, cell=old["cell"], hidden=old["hidden"], layers=old["layers"],
                                          embed=old.get("embed"), lr=old["lr"], batch_size=old["batch_size"],
                                          clip=old["clip"], forget_bias=old["forget_bias"], evaluate=False)
    ckpt = Checkpointer(os.path.join(path, "checkpoints", "main"))
    try:
        state, meta = ckpt.restore(jax.eval_shape(trainer.init, jax.random.PRNGKey(0)))
    finally:
        ckpt.close()
    step = int(meta["step"])
    # The config record shows the model sampled (the saved run's), not this command line's
    # defaults, and like every command's the versions and devices (persist=False: no files).
    # Its training settings too: they built it (batch_size and lr read the defaults).
    model = {k: old[k] for k in ("cell", "hidden", "layers", "embed", "seq_len", "forget_bias", "lr", "batch_size",
                                 "clip", "data") if k in old}
    run.cfg = dataclasses.replace(cfg, **model)
    run.start(persist=False, **{"from": path, "from_run": saved.get("run"), "from_step": step,
                                "corpus_sha256": saved.get("corpus_sha256"), "vocab_size": len(chars)})
    run.out.info(f"[bold]dlx train-lstm[/] sampling from {path} (step {step}; nothing is written)")
    text = sample_text(task, graphdef, state["params"], prime=cfg.prime, length=cfg.sample_len,
                       temperature=cfg.temperature, key=jax.random.PRNGKey(cfg.seed))
    run.out.info(f"[bold]sample[/] (temperature {cfg.temperature}):\n{_show(text)}")
    run.finish({"from": path, "from_step": step, "temperature": cfg.temperature, "sample": text},
               table={"from": path, "from_step": step, "temperature": cfg.temperature,
                      "sample_chars": len(text)})
