"""`dlx grad-probe`, the work: probe every combination, optionally train and probe again.

MLP: the probe batch is the first --batch-size training examples of the dataset, flattened.
Combinations that share a depth share their shapes, so they are probed in one vmapped
program: with a single activation the activation is static (least code); with several,
one program evaluates every activation and selects each net's own (on 2 CPU cores at
depth 10: 1.6 s to trace and compile per static activation, 2.5 s for the selecting
program whatever the count).

RNN: the cell reads --seq-len steps of Gaussian inputs (RNN_INPUTS features) and the loss
reads h_T only, so ||dL/dh_t|| for t < T is the trip back through time. Cells of one kind
are probed together, vmapped over their spectral radii.

Training (--train-steps) goes through the shared loop: combinations of one depth and
activation (they differ only in their weights) train as the members of one `fit`, in one
program, each tagged with its settings; every `eval` record holds the per-layer profile at
that step.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dlx import plots
from dlx.data import load_images
from dlx.errors import RunFailure, UsageError
from dlx.metrics.grads import (
    LAYER_FIELDS,
    clip_stats,
    cross_entropy,
    layer_rows,
    mlp_probe_sweep,
    probe_cell,
    rnn_probe_sweep,
    stack_states,
    verdict,
)
from dlx.models.mlp import DeepMLP, activation_id
from dlx.tasks.classify import split_init
from dlx.train import Trainer, epoch_batch, fit, init_program, per_member, refuse_impossible_sizes, shard_batch

RNN_INPUTS = 8
SPARK = "▁▂▃▄▅▆▇█"
SPARK_CHARS = {"line": 60, "table": 24}  # a table row fits 80 columns

# Module-level jits: every call with an equal graphdef and shapes (the same structure, any
# init or scale) reuses one compiled program, across combinations, fits and CLI calls.
_mlp_sweep = jax.jit(mlp_probe_sweep, static_argnums=0)
_rnn_sweep = jax.jit(rnn_probe_sweep, static_argnums=0)


@partial(jax.jit, static_argnums=0)
def _accuracies(graphdef, stacked_params, x, y):
    """Test accuracy of each of a stack of parameter sets (leading axis)."""
    def one(params):
        return jnp.mean(jnp.argmax(nnx.merge(graphdef, params)(x), -1) == y)

    return jax.vmap(one)(stacked_params)


def run(cfg, run):
    if cfg.arch == "rnn":
        return _run_rnn(cfg, run)
    return _run_mlp(cfg, run)


# ---- MLP ------------------------------------------------------------------------------

def _label(c: dict) -> str:
    if "cell" in c:
        return f"{c['cell']} rho={c['spectral_radius']:g}"
    return f"{c['activation']}/{c['init']} x{c['init_scale']:g} depth {c['depth']}"


def _probe_mlp(nets: list, x, y) -> list[dict]:
    """Probe every (combo, graphdef, params): one vmapped program per depth. Host numpy
    dicts, in order."""
    out: list[dict | None] = [None] * len(nets)
    by_depth: dict[int, list[int]] = {}
    for k, (c, _, _) in enumerate(nets):
        by_depth.setdefault(c["depth"], []).append(k)
    for members in by_depth.values():
        acts = {nets[k][0]["activation"] for k in members}
        ids = None if len(acts) == 1 else jnp.array([activation_id(nets[k][0]["activation"]) for k in members])
        stacked = stack_states([nets[k][2] for k in members])
        res = jax.device_get(_mlp_sweep(nets[members[0]][1], stacked, x, y, ids))
        for j, k in enumerate(members):
            out[k] = {name: np.asarray(v[j]) for name, v in res.items()}
    return out


def _profile(p: dict) -> dict:
    """The summary fields of one MLP probe (host floats; NaN ratio -> null in JSON)."""
    ratio = float(p["ratio"])
    return {"layers": layer_rows(p), "ratio": ratio, "verdict": verdict(ratio),
            "weight_ratio": float(p["weight_ratio"]), "decay_per_layer": float(p["decay_per_layer"]),
            "probe_loss": float(p["loss"])}


def _run_mlp(cfg, run):
    data = load_images(cfg.dataset, cfg.data)  # bad --data fails here, before anything is written
    n_train = len(data.y_train)
    if cfg.batch_size > n_train:  # the probe batch is the first --batch-size examples
        raise UsageError(f"--batch-size {cfg.batch_size} is more than the {n_train} training examples of {cfg.dataset}")
    x_train = data.x_train.reshape(n_train, -1).astype(np.float32)
    x, y = jnp.asarray(x_train[:cfg.batch_size]), jnp.asarray(data.y_train[:cfg.batch_size])
    combos = cfg.combinations()
    run.start(**data.describe(), probe_batch=int(len(y)), combinations=len(combos))

    nets = []
    for c in combos:
        # The structure from an abstract model, the weights from one init program. Built
        # eagerly, each draw and op ran as a program of its own: a default run from an empty
        # cache took 6.93 s against 6.47 now.
        graphdef, init = split_init(lambda rngs, c=c: DeepMLP(
            x.shape[1], cfg.width, c["depth"], data.classes, activation=c["activation"], init=c["init"],
            init_scale=c["init_scale"], rngs=rngs))
        nets.append((c, graphdef, init_program(init)(jax.random.key(cfg.seed))))
    probes = _probe_mlp(nets, x, y)

    results: list[dict | None] = [None] * len(nets)
    if cfg.steps == 0:
        results = [{**c, "width": cfg.width, **_profile(p)} for (c, _, _), p in zip(nets, probes)]
    else:
        train_data = (x_train, data.y_train)
        test = (jnp.asarray(data.x_test.reshape(len(data.y_test), -1)), jnp.asarray(data.y_test))
        # Combinations of one depth and activation differ only in their weights (init,
        # scale): one fit trains them in one program, one compilation, one dispatch per
        # step and one checkpoint for all. Activations stay apart (other graphdefs).
        groups: dict[tuple, list[int]] = {}
        for k, (c, _, _) in enumerate(nets):
            groups.setdefault((c["depth"], c["activation"]), []).append(k)
        for members in groups.values():
            group = [(nets[k][0], nets[k][2], probes[k]) for k in members]
            for k, r in zip(members, _train(cfg, run, group, nets[members[0]][1], train_data, (x, y), test)):
                results[k] = {**nets[k][0], "width": cfg.width, **r}

    _plot_mlp(run.path("grad_norms.png"), results, cfg)
    if cfg.steps:
        plots.curves_from_metrics(run.path("metrics.jsonl"), run.path("curves.png"), "dlx grad-probe training")
    _finish(cfg, run, results, settings=[("activation", "act"), ("init", "init"), ("init_scale", "scale"),
                                         ("depth", "depth"), ("width", "width")], extra=[],
            norms=lambda r: [row["preact_grad_norm"] for row in r["layers"]], what="|dL/dz|, layer 1 → L")


def _train(cfg, run, group: list, graphdef, train_data, probe_batch, test) -> list[dict]:
    """SGD or Adam (optionally clipped) on the training set through the shared loop; the
    probe runs at every evaluation. `group`: (combo, params0, probe0) of combinations that
    share one structure (depth and activation: the same graphdef), trained in one program
    (`per_member`: one copy of the step each, so each computes what it would alone), each a
    member with its own records. Returns, per member, the final profile, its history and
    the clipping statistics, or its divergence message."""
    tx = optax.sgd(cfg.lr) if cfg.optimizer == "sgd" else optax.adam(cfg.lr)
    theta, batch, n = cfg.clip, cfg.batch_size, len(train_data[1])
    labels = [_label(c) for c, _, _ in group]
    single = len(group) == 1

    def init_one(key, params0):
        # The probed net itself (same seed), so step 0 of training is the probe above.
        return {"params": params0, "opt": tx.init(params0), "key": jax.random.fold_in(key, 1),
                "step": jnp.int32(0), "clipped_steps": jnp.int32(0),
                "max_grad_norm": jnp.float32(0), "max_clipped_norm": jnp.float32(0), "last_loss": jnp.float32(jnp.nan)}

    def step_one(state, i, data):
        xs, ys = data
        idx = epoch_batch(state["key"], i, n, batch)  # every member: the same batches
        xb, yb = shard_batch((xs[idx], ys[idx]))
        loss, grads = jax.value_and_grad(lambda p: cross_entropy(nnx.merge(graphdef, p)(xb), yb))(state["params"])
        if theta > 0:
            grads, st = clip_stats(grads, theta)
        else:
            norm = optax.tree.norm(grads)
            st = {"global_norm": norm, "clipped": jnp.bool_(False), "clipped_norm": norm}
        updates, opt = tx.update(grads, state["opt"], state["params"])
        new = {**state, "params": optax.apply_updates(state["params"], updates), "opt": opt,
               "step": state["step"] + 1, "clipped_steps": state["clipped_steps"] + st["clipped"].astype(jnp.int32),
               "max_grad_norm": jnp.maximum(state["max_grad_norm"], st["global_norm"]),
               "max_clipped_norm": jnp.maximum(state["max_clipped_norm"], st["clipped_norm"]), "last_loss": loss}
        return new, {"loss": loss, "grad_norm": st["global_norm"], "clipped": st["clipped"].astype(jnp.float32)}

    x, y = probe_batch
    histories: list[list] = [[] for _ in group]
    last = [p for _, _, p in group]  # each member's latest probe
    probed = [False] * len(group)    # whether this process probed the trained member

    def record(j: int, at: int, p: dict, acc: float) -> dict:
        prof = _profile(p)
        histories[j].append({"step": at, "ratio": prof["ratio"], "verdict": prof["verdict"],
                             "probe_loss": prof["probe_loss"], "test_accuracy": acc})
        # No verdict string here: curves.png reads string fields of eval records as series tags.
        return {"probe_loss": prof["probe_loss"], "test_accuracy": acc, "ratio": prof["ratio"],
                "decay_per_layer": prof["decay_per_layer"], **{k: p[k].tolist() for k in LAYER_FIELDS}}

    def evaluate(state, alive=None):
        params = stack_states([state["params"]]) if single else state["params"]
        probes = jax.device_get(_mlp_sweep(graphdef, params, x, y))
        accs, at = jax.device_get((_accuracies(graphdef, params, *test), state["step"]))
        at = np.reshape(at, -1)  # (members,): one transfer, not one per member
        out = []
        for j in range(len(group)):
            if alive is not None and not alive[j]:
                out.append(None)  # diverged: its last probe stays the one before
                continue
            last[j], probed[j] = {k: v[j] for k, v in probes.items()}, True
            out.append(record(j, int(at[j]), last[j], float(accs[j])))
        return out[0] if single else out

    logged = [_logged_history(run.path("metrics.jsonl"), lb) if run.resumed else [] for lb in labels]
    # The profile before any training, as the eval record of step 0: also in a resumed sweep,
    # for the groups that the interrupted run had not reached.
    unlogged = [j for j in range(len(group)) if not any(h["step"] == 0 for h in logged[j])]
    if unlogged:
        accs0 = jax.device_get(_accuracies(graphdef, stack_states([p for _, p, _ in group]), *test))
        for j in unlogged:
            run.emit("eval", {"step": 0, "combo": labels[j], **record(j, 0, group[j][2], float(accs0[j]))})
    if single:
        # One combination: its own fit, named and tagged by it (as before groups existed).
        trainer = Trainer(init=lambda key: init_one(key, group[0][1]), step=step_one, data=train_data,
                          evaluate=evaluate, examples_per_step=batch,
                          name=labels[0].replace("/", "-").replace(" ", "_"), tag={"combo": labels[0]})
    else:
        stacked0 = stack_states([p for _, p, _ in group])
        trainer = Trainer(init=lambda key: jax.vmap(init_one, in_axes=(None, 0))(key, stacked0),
                          step=per_member(step_one, len(group)), data=train_data,
                          evaluate=evaluate, examples_per_step=batch,
                          name=f"{group[0][0]['activation']}_depth{group[0][0]['depth']}",  # one group each
                          # tags are strings only: curves.png would plot numbers as metrics
                          members=[{"combo": lb} for lb in labels])
    initial = [{"ratio": float(p0["ratio"]), "verdict": verdict(p0["ratio"]),
                "preact_grad_norm": p0["preact_grad_norm"].tolist(), "weight_grad_norm": p0["weight_grad_norm"].tolist()}
               for _, _, p0 in group]
    try:
        res = fit(run, trainer, steps=cfg.steps, seed=cfg.seed, log_every=cfg.log_every,
                  eval_every=cfg.eval_every, description=labels[0] if single else f"{len(group)} nets, {labels[0]} ...")
    except RunFailure as e:  # one combination alone
        histories[0][:0] = _before(logged[0], histories[0])
        run.out.stop_progress()
        return [_diverged(str(e), last[0], initial[0], histories[0])]
    if not all(probed[j] or j in res.diverged for j in range(len(group))):
        # Resumed from the last checkpoint with nothing left to train: fit restores that
        # step's eval record and evaluates nothing, so probe the restored nets again (the
        # same numbers; no record: it was logged before the interruption).
        params = stack_states([res.state["params"]]) if single else res.state["params"]
        probes = jax.device_get(_mlp_sweep(graphdef, params, x, y))
        for j in range(len(group)):
            if not probed[j] and j not in res.diverged:
                last[j] = {k: v[j] for k, v in probes.items()}
    s = jax.device_get({k: res.state[k] for k in ("step", "clipped_steps", "max_grad_norm", "max_clipped_norm",
                                                  "last_loss")})
    results = []
    for j in range(len(group)):
        histories[j][:0] = _before(logged[j], histories[j])
        if j in res.diverged:
            results.append(_diverged(res.diverged[j], last[j], initial[j], histories[j]))
            continue
        sj = {k: np.asarray(v).reshape(-1)[j] for k, v in s.items()}
        ev = res.eval if single else res.eval[j]
        out = {**_profile(last[j]), "initial": initial[j], "history": histories[j], "steps": int(sj["step"]),
               # The last step's loss, not fit's mean over the last log interval: --log-every
               # is a presentation option and may change on --resume.
               "train_loss": float(sj["last_loss"]), "test_accuracy": (ev or {}).get("test_accuracy"),
               "clip_fraction": int(sj["clipped_steps"]) / max(int(sj["step"]), 1),
               "max_grad_norm": float(sj["max_grad_norm"])}
        if theta > 0:
            out["clip"] = theta
            out["max_clipped_grad_norm"] = float(sj["max_clipped_norm"])
        results.append(out)
    return results


def _diverged(message: str, probe: dict, initial: dict, history: list) -> dict:
    # The loss went to NaN/Inf: the gradients exploded, whatever the last probe said.
    at = re.search(r"at step (\d+)", message)
    return {**_profile(probe), "ratio": math.nan, "verdict": "exploding", "diverged": message,
            "diverged_at_step": int(at.group(1)) if at else None, "initial": initial, "history": history}


def _logged_history(path: str, label: str) -> list[dict]:
    """The history of a resumed fit so far, from the eval records its first part wrote."""
    history = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                if rec.get("event") == "eval" and rec.get("combo") == label:
                    ratio = math.nan if rec.get("ratio") is None else rec["ratio"]
                    history.append({"step": rec["step"], "ratio": ratio, "verdict": verdict(ratio),
                                    "probe_loss": rec.get("probe_loss"), "test_accuracy": rec.get("test_accuracy")})
    except (OSError, ValueError):
        pass
    return history


def _before(logged: list[dict], new: list[dict]) -> list[dict]:
    """Logged entries older than the first new one (a run killed between an evaluation and
    its checkpoint logged evaluations that the resumed run repeats)."""
    first = new[0]["step"] if new else math.inf
    seen = {}
    for h in logged:
        if h["step"] < first:
            seen[h["step"]] = h  # the latest record of a step wins
    return [seen[k] for k in sorted(seen)]


# ---- RNN ------------------------------------------------------------------------------

def _run_rnn(cfg, run):
    combos = cfg.combinations()
    # The cells and inputs are built eagerly below: their sizes are checked from shapes
    # first (the largest weight is an LSTM's (H, 4H) recurrent one).
    refuse_impossible_sizes([jax.ShapeDtypeStruct((cfg.batch_size, cfg.seq_len, RNN_INPUTS), jnp.float32),
                             jax.ShapeDtypeStruct((cfg.width, 4 * cfg.width), jnp.float32)])
    key = jax.random.PRNGKey(cfg.seed)
    xs = jax.random.normal(key, (cfg.batch_size, cfg.seq_len, RNN_INPUTS))  # (B, T, X)
    readout = jax.random.normal(jax.random.fold_in(key, 1), (cfg.batch_size, cfg.width))  # (B, H)
    run.start(inputs=RNN_INPUTS, probe_batch=cfg.batch_size, combinations=len(combos))

    results: list[dict | None] = [None] * len(combos)
    for kind in cfg.cell:
        idx = [k for k, c in enumerate(combos) if c["cell"] == kind]
        splits = [nnx.split(probe_cell(kind, RNN_INPUTS, cfg.width, spectral_radius=combos[k]["spectral_radius"],
                                       rngs=nnx.Rngs(cfg.seed)), nnx.Param) for k in idx]
        res = jax.device_get(_rnn_sweep(splits[0][0], stack_states([p for _, p in splits]), xs, readout))
        for j, k in enumerate(idx):
            ratio = float(res["ratio"][j])
            results[k] = {**combos[k], "seq_len": cfg.seq_len, "width": cfg.width,
                          "grad_norms": res["grad_norms"][j].tolist(),
                          "decay_per_step": float(res["decay_per_step"][j]), "ratio": ratio, "verdict": verdict(ratio)}

    _plot_rnn(run.path("grad_norms.png"), results, cfg)
    _finish(cfg, run, results, settings=[("cell", "cell"), ("spectral_radius", "rho"), ("seq_len", "T"),
                                         ("width", "width")],
            extra=[("decay/step", lambda r: f"{r['decay_per_step']:.3f}")],
            norms=lambda r: r["grad_norms"], what="|dL/dh_t|, t = 1 → T")


# ---- output ---------------------------------------------------------------------------

def sparkline(values, lo: float, hi: float) -> str:
    """One block per value over log10(value) on the scale [lo, hi] (log10 units): ▁ at lo,
    █ at hi; '·' for zero (underflow), '!' for NaN or inf (overflow)."""
    chars = []
    for v in values:
        if v is None or not math.isfinite(v):
            chars.append("!")
        elif v <= 0:
            chars.append("·")
        else:
            level = (math.log10(v) - lo) / (hi - lo) * (len(SPARK) - 1)
            chars.append(SPARK[min(max(int(round(level)), 0), len(SPARK) - 1)])
    return "".join(chars)


def spark_scale(rows) -> tuple[float, float]:
    """A common log10 scale for several sparklines, at least one decade wide (so that a
    flat profile shows flat rather than its noise stretched over all eight blocks)."""
    logs = [math.log10(v) for r in rows for v in r if v is not None and math.isfinite(v) and v > 0]
    if not logs:
        return 0.0, 1.0
    lo, hi = min(logs), max(logs)
    if hi - lo < 1:
        mid = (lo + hi) / 2
        lo, hi = mid - 0.5, mid + 0.5
    return lo, hi


def _thin(values: list, n: int) -> list:
    """At most n evenly spaced values (first and last kept), so a long profile fits a line."""
    if len(values) <= n:
        return values
    return [values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)]


def _g(v) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.2g}"


def _sweep_table(results, lines, lo, hi, settings, extra, what, clip: float):
    """(title, columns, rows) of the sweep table, compact enough for 80 columns: only the
    settings that vary get a column (the others go into the title), numbers in 2 digits."""
    varying = [(k, h) for k, h in settings if len({r[k] for r in results}) > 1]
    fixed = [f"{h} {results[0][k]:g}" if isinstance(results[0][k], float) else f"{h} {results[0][k]}"
             for k, h in settings if (k, h) not in varying]
    trained = any("initial" in r for r in results)
    head = [h for _, h in varying] + [h for h, _ in extra] + (["ratio@0"] if trained else []) + ["ratio", "verdict"]
    head += (["acc"] if trained else []) + (["clip"] if trained and clip > 0 else []) + [what.split(",")[0]]
    rows = []
    for r, line in zip(results, lines):
        row = [f"{r[k]:g}" if isinstance(r[k], float) else str(r[k]) for k, _ in varying]
        row += [fn(r) for _, fn in extra] + ([_g(r["initial"]["ratio"])] if trained else []) + [_g(r["ratio"]), r["verdict"]]
        if trained:
            row.append(f"div@{r['diverged_at_step']}" if "diverged" in r else f"{r['test_accuracy']:.2f}")
            if clip > 0:
                row.append("" if "diverged" in r else f"{r['clip_fraction']:.0%}")
        rows.append(row + [sparkline(_thin(line, SPARK_CHARS["table"]), lo, hi)])
    title = f"dlx grad-probe: {len(results)} combinations" + (f" ({', '.join(fixed)})" if fixed else "")
    return title + f"\n{what}, blocks ▁..█ span 1e{lo:.1f}..1e{hi:.1f}", head, rows


def _finish(cfg, run, results, *, settings, extra, norms, what):
    lines = [norms(r) for r in results]
    lo, hi = spark_scale(lines)
    scale = f"blocks ▁..█ span 1e{lo:.1f}..1e{hi:.1f}"
    if len(results) == 1:
        r = results[0]
        if "layers" in r:
            at = f" at step {r['history'][-1]['step']}" if r.get("history") else ""
            run.out.table(f"per layer{at} (layer 1 nearest the input)",
                          ["layer", "|dL/dW|", "|dL/dz|", "act mean", "act std", "saturated"],
                          [[str(l["layer"])] + [l[k] for k in LAYER_FIELDS] for l in r["layers"]])
        run.out.info(f"{what}: {sparkline(_thin(lines[0], SPARK_CHARS['line']), lo, hi)}  ({scale})")
        summary = {"arch": cfg.arch, **r, "results": results, "plot": "grad_norms.png"}
        table = {k: v for k, v in summary.items() if not isinstance(v, (dict, list)) and k != "diverged"}
        if "initial" in r:
            table.update({"ratio at step 0": r["initial"]["ratio"], "verdict at step 0": r["initial"]["verdict"]})
    else:
        title, head, rows = _sweep_table(results, lines, lo, hi, settings, extra, what, cfg.clip)
        run.out.info(title)  # above the table, not as its title: a title wraps at the table's width
        run.out.table("", head, rows)
        counts = Counter(r["verdict"] for r in results)
        summary = {"arch": cfg.arch, "combinations": len(results), "verdicts": dict(counts), "results": results,
                   "plot": "grad_norms.png"}
        table = {"combinations": len(results), **{f"verdict {k}": v for k, v in counts.items()}}
    run.finish(summary, table=table)
    diverged = [r for r in results if "diverged" in r]
    if diverged:
        first = diverged[0]
        named = first["diverged"].startswith(f"{_label(first)}: ")   # fit names a net trained alone
        prefix = "" if len(results) == 1 or named else f"{_label(first)}: "
        raise RunFailure(prefix + first["diverged"] + (f" ({len(diverged)} of {len(results)} combinations diverged)"
                                                       if len(results) > 1 else ""))


def _plot_mlp(path, results, cfg):
    panels = [("|dL/dz| (back-propagated gradient)", "preact_grad_norm"), ("|dL/dW| (weight gradient)", "weight_grad_norm")]
    series = []
    for r in results:
        x = [l["layer"] for l in r["layers"]]
        start = {k: r["initial"][k] for _, k in panels} if "initial" in r else None
        series.append((_label(r), x, {k: [l[k] for l in r["layers"]] for _, k in panels}, start))
    title = "dlx grad-probe" + (f" after {cfg.steps} training steps" if cfg.steps else f" at init ({cfg.dataset})")
    _plot(path, series, panels, "layer (1 = nearest the input)", title)


def _plot_rnn(path, results, cfg):
    series = [(_label(r), list(range(1, cfg.seq_len + 1)), {"g": r["grad_norms"]}, None) for r in results]
    _plot(path, series, [("||dL/dh_t|| (loss at t = T)", "g")], "time step t",
          f"dlx grad-probe: recurrent cells, T = {cfg.seq_len}")


def _positive(values) -> np.ndarray:
    y = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    y[~(y > 0)] = np.nan  # log scale: zeros (underflow) and NaN are gaps
    return y


def _plot(path, series, panels, xlabel, title):
    from dlx.plots import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (name, key) in zip(axes[0], panels):
        for label, x, ys, start in series:
            line, = ax.plot(x, _positive(ys[key]), marker="." if len(x) <= 40 else None, label=label)
            if start is not None:  # trained: the profile at step 0, dashed, same colour
                ax.plot(x, _positive(start[key]), ls="--", color=line.get_color(), alpha=0.6,
                        label=f"{label} (step 0)")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        if ax is axes[0][0] and (len(series) > 1 or series[0][3] is not None):
            ax.legend(fontsize=6)  # one legend: each costs as much as the rest of the figure
    fig.suptitle(title, fontsize=10)
    # Fixed margins: tight_layout measures every text and costs ~0.5 s of CPU per figure.
    fig.subplots_adjust(left=0.75 / (5.2 * len(panels)), right=0.98, bottom=0.13, top=0.86, wspace=0.22)
    fig.savefig(path, dpi=110)
    plt.close(fig)
