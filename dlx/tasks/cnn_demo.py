"""`dlx cnn-demo`, the work: shapes, training, noise, parameter sharing, feature maps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dlx import plots
from dlx.data import load_images
from dlx.errors import UsageError
from dlx.models.cnn import CNN, MLPFamily, layer_table
from dlx.tasks.classify import classifier, eval_fn
from dlx.train import fit, param_count

MLP_WIDTHS = (8, 16, 32, 64, 128, 256, 512)
MATCH_TOLERANCE = 0.01  # "similar accuracy": within one percentage point of the CNN


def _make_cnn(cfg, in_shape, classes):
    def make(rngs):
        return CNN(in_shape, classes, channels=cfg.channels, kernel=cfg.kernel, stride=cfg.stride,
                   padding=cfg.padding, pool=cfg.pool, pool_size=cfg.pool_size, hidden=cfg.hidden, rngs=rngs)
    return make


def _shape_rows(layers):
    rows = []
    for r in layers:
        check = ""
        if "formula" in r:
            check = ("ok " if r["formula_ok"] else "MISMATCH ") + "x".join(map(str, r["formula"]))
        rows.append([r["layer"], "x".join(map(str, r["shape"])), r["params"], r["flops"], check])
    return rows


def run(cfg, run):
    data = load_images(cfg.dataset, cfg.data)
    make = _make_cnn(cfg, data.shape, data.classes)
    try:
        # Abstract: shapes only. A concrete model would compile one truncated-normal init
        # per layer shape (4.3 s of a cold run, again for every new --channels or --kernel).
        shaped = nnx.eval_shape(lambda: make(nnx.Rngs(0)))
    except ValueError as e:
        tries = ["--padding same" if cfg.padding == "valid" else None, "a smaller --kernel or --stride",
                 "--pool none" if cfg.pool != "none" else None]
        raise UsageError(f"{e}; try " + ", or ".join(t for t in tries if t)) from None
    layers = layer_table(shaped, data.shape, kernel=cfg.kernel, stride=cfg.stride, padding=cfg.padding)
    n_params = param_count(nnx.state(shaped, nnx.Param))

    if cfg.shapes_only:
        run.start(persist=cfg.out is not None, **data.describe())  # a directory only if asked for
        run.out.table(f"cnn-demo layers for {'x'.join(map(str, data.shape))} input "
                      "(formula: out = floor((n + p - k) / s) + 1; pools in ceil mode)",
                      ["layer", "output", "params", "FLOPs", "formula"], _shape_rows(layers))
        run.finish({"layers": layers, "params": n_params, "flops": sum(r["flops"] for r in layers)},
                   table={"params": n_params, "FLOPs per example": sum(r["flops"] for r in layers)})
        return

    run.start(**data.describe(), params=n_params)
    run.out.table("layers", ["layer", "output", "params", "FLOPs", "formula"], _shape_rows(layers))

    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    test = None
    noisy_x = None
    if cfg.noise > 0:
        noise = jax.random.normal(jax.random.PRNGKey(cfg.seed + 1), x_test.shape) * cfg.noise
        noisy_x = x_test + noise

    def evaluate(state):
        loss, acc = test(state["params"])
        res = {"test_loss": loss, "test_accuracy": acc}
        if noisy_x is not None:
            res["noisy_accuracy"] = test(state["params"], noisy_x)[1]
        return res

    trainer, graphdef = classifier(make, data.x_train, data.y_train, lr=cfg.lr, batch_size=cfg.batch_size,
                                   evaluate=evaluate)
    trainer.name, trainer.tag = "cnn", {"model": "cnn"}
    test = eval_fn(graphdef, x_test, y_test)
    res = fit(run, trainer, steps=cfg.steps, seed=cfg.seed, log_every=cfg.log_every,
              eval_every=cfg.eval_every, description="cnn")
    params = res.state["params"]

    summary = {"test_accuracy": res.eval["test_accuracy"], "test_loss": res.eval["test_loss"],
               "params": n_params}
    if noisy_x is not None:
        summary["noise"] = cfg.noise
        summary["noisy_accuracy"] = res.eval["noisy_accuracy"]
    summary.update(compile_s=res.compile_s, ms_per_step=res.ms_per_step, examples_per_s=res.examples_per_s)

    if cfg.mlp_baseline and cfg.steps > 0:
        summary["mlp"] = _mlp_baseline(cfg, run, data, res.eval["test_accuracy"])

    summary.update(edge_response(graphdef, params, data.x_test[:256]))
    summary.update(invariance(graphdef, params, data.x_test))
    if cfg.feature_maps:
        _feature_maps(run, graphdef, params, data, cfg)
    plots.curves_from_metrics(run.path("metrics.jsonl"), run.path("curves.png"), f"dlx cnn-demo ({cfg.dataset})")
    summary["layers"] = layers
    table = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    if "mlp" in summary:
        m = summary["mlp"]
        table["mlp params (similar accuracy)" if m["matched"] else "mlp params (best, not matched)"] = m["params"]
        table["mlp test_accuracy"] = m["test_accuracy"]
    run.finish(summary, table=table)


def _mlp_baseline(cfg, run, data, target: float) -> dict:
    """Smallest one-hidden-layer MLP (same data, steps and optimizer) whose test accuracy
    comes within MATCH_TOLERANCE of the CNN's: what the CNN's parameter sharing saves.
    All widths train together in one compiled program (independent losses add)."""
    in_features = int(np.prod(data.shape))
    make = lambda rngs: MLPFamily(in_features, MLP_WIDTHS, data.classes, rngs=rngs)  # noqa: E731
    trainer, graphdef = classifier(make, data.x_train, data.y_train, lr=cfg.lr, batch_size=cfg.batch_size)
    test = eval_fn(graphdef, jnp.asarray(data.x_test), jnp.asarray(data.y_test))

    def evaluate(state):
        accs = test(state["params"])[1]
        return {f"test_accuracy_{w}": a for w, a in zip(MLP_WIDTHS, accs)}

    trainer.evaluate, trainer.name, trainer.tag = evaluate, "mlp", {"model": "mlp"}
    # Logged as often as the CNN: at every --steps instead, a run extended with --resume
    # logged a train record over the extension only (21-40), not over the run (2-40).
    res = fit(run, trainer, steps=cfg.steps, seed=cfg.seed, log_every=cfg.log_every, eval_every=cfg.steps,
              description="mlp widths " + ",".join(map(str, MLP_WIDTHS)))
    members = res.state["params"]["members"]
    entries = [{"width": w, "params": param_count(members[i]), "test_accuracy": res.eval[f"test_accuracy_{w}"]}
               for i, w in enumerate(MLP_WIDTHS)]
    for e in entries:
        if e["test_accuracy"] >= target - MATCH_TOLERANCE:
            return {**e, "matched": True, "target": target, "widths": entries}
    best = max(entries, key=lambda e: e["test_accuracy"])
    return {**best, "matched": False, "target": target, "widths": entries}


def _feature_maps(run, graphdef, params, data, cfg) -> None:
    model = nnx.merge(graphdef, params)
    n = min(cfg.feature_maps, len(data.y_test))
    x = jnp.asarray(data.x_test[:n])
    maps, _ = jax.jit(lambda x: model.features(x))(x)
    for li, m in enumerate(maps):
        m = np.asarray(m)  # (n, *spatial, C)
        c = min(m.shape[-1], 16)
        if m.ndim == 4:  # images: one row per test image, input first then channels
            tiles, labels = [], []
            for i in range(n):
                tiles.append(np.asarray(data.x_test[i, ..., 0]))
                tiles.extend(m[i, ..., ch] for ch in range(c))
                labels.append(f"label {int(data.y_test[i])}")
            hw = tiles[1].shape
            tiles = [t if t.shape == hw else _resize(t, hw) for t in tiles]
            plots.image_grid(np.stack(tiles), run.path(f"feature_maps_conv{li + 1}.png"),
                             f"conv{li + 1} feature maps (after ReLU): input, then {c} channels",
                             rows=n, cmap="viridis", row_labels=labels)
        else:  # 1-D signals: each row is an image of channels x positions
            tiles = [m[i, :, :c].T for i in range(n)]
            plots.image_grid(np.stack(tiles), run.path(f"feature_maps_conv{li + 1}.png"),
                             f"conv{li + 1} feature maps (channels x position)", rows=n, cmap="viridis",
                             row_labels=[f"label {int(data.y_test[i])}" for i in range(n)])


def _edge_map(x):
    """Edge strength of the inputs x (N, *spatial): Sobel gradient magnitude for images,
    |central difference| for 1-D signals (zero padding, same size as x)."""
    if x.ndim == 3:
        p = jnp.pad(x, ((0, 0), (1, 1), (1, 1)))
        gx = (p[:, :-2, 2:] + 2 * p[:, 1:-1, 2:] + p[:, 2:, 2:]) - (p[:, :-2, :-2] + 2 * p[:, 1:-1, :-2] + p[:, 2:, :-2])
        gy = (p[:, 2:, :-2] + 2 * p[:, 2:, 1:-1] + p[:, 2:, 2:]) - (p[:, :-2, :-2] + 2 * p[:, :-2, 1:-1] + p[:, :-2, 2:])
        return jnp.sqrt(gx ** 2 + gy ** 2)
    p = jnp.pad(x, ((0, 0), (1, 1)))
    return jnp.abs(p[:, 2:] - p[:, :-2])


def edge_response(graphdef, params, x) -> dict:
    """Do conv1's filters respond to edges? For each conv1 channel, |Pearson correlation|
    between its (post-ReLU) feature map and the edge map of the input, over all positions
    of the given images (the edge map resized to the feature map's grid when stride or
    valid padding shrink it; a channel that never fires counts 0). Reported: the mean over
    channels (`edge_correlation`) and the best channel (`edge_correlation_max`)."""
    x = jnp.asarray(x)
    maps, _ = nnx.merge(graphdef, params).features(x)
    f = maps[0]                                         # (N, *spatial', C)
    e = _edge_map(x[..., 0])                            # (N, *spatial)
    if e.shape[1:] != f.shape[1:-1]:
        e = jax.image.resize(e, f.shape[:-1], "linear")
    f = f.reshape(-1, f.shape[-1])
    e = e.reshape(-1, 1)
    fc, ec = f - f.mean(0), e - e.mean(0)
    denom = jnp.sqrt((fc ** 2).sum(0) * (ec ** 2).sum(0))
    corr = jnp.where(denom > 0, jnp.abs((fc * ec).sum(0)) / jnp.where(denom > 0, denom, 1.0), 0.0)
    return {"edge_correlation": float(corr.mean()), "edge_correlation_max": float(corr.max())}


SHIFTS = (1, 2)        # pixels (samples, for 1-D signals)
ROTATION = 15.0        # degrees


def _shifted(x, offsets):
    """x (N, *spatial, C) moved by offsets (one per spatial axis, + = down / right), the
    uncovered border filled with 0 (the images' background)."""
    pad = [(0, 0)] + [(abs(o), abs(o)) for o in offsets] + [(0, 0)]
    p = jnp.pad(x, pad)
    idx = (slice(None),) + tuple(slice(abs(o) - o, abs(o) - o + n) for o, n in zip(offsets, x.shape[1:-1]))
    return p[idx]


def invariance(graphdef, params, x) -> dict:
    """How often the trained model's prediction for a test input stays the same when the
    input moves by 1 or 2 pixels (the mean over the 4 directions; 2 for 1-D signals) or, for
    images, turns by 15 degrees (the mean of both ways): the notes' "pooling gives
    invariance to position and rotation", measured (`experiments/10_pool_invariance.sh`)."""
    model = nnx.merge(graphdef, params)
    predict = jax.jit(lambda v: jnp.argmax(model(v), -1))

    def preds(v):
        return np.concatenate([np.asarray(predict(v[i:i + 2048])) for i in range(0, len(v), 2048)])

    x = jnp.asarray(x)
    base = preds(x)
    dims = x.ndim - 2
    res = {}
    for s in SHIFTS:
        moves = [tuple(d * (i == a) for i in range(dims)) for a in range(dims) for d in (s, -s)]
        res[f"shift_agreement_{s}px"] = float(np.mean([(preds(_shifted(x, m)) == base).mean() for m in moves]))
    if dims == 2:
        from scipy import ndimage

        turned = [ndimage.rotate(np.asarray(x), a, axes=(2, 1), reshape=False, order=1, mode="constant")
                  for a in (ROTATION, -ROTATION)]
        res[f"rotation_agreement_{ROTATION:g}deg"] = float(np.mean([(preds(jnp.asarray(t)) == base).mean()
                                                                   for t in turned]))
    return res


def _resize(img, hw):
    """Nearest-neighbour resize so the input image sits in the same grid as its maps."""
    ys = (np.arange(hw[0]) * img.shape[0] / hw[0]).astype(int)
    xs = (np.arange(hw[1]) * img.shape[1] / hw[1]).astype(int)
    return img[ys][:, xs]


def bench_trainer(batch: int = 128):
    """The `cnn` benchmark workload: this command's step on 28x28x1 inputs, conv 3x3 32
    (same) -> max-pool -> conv 3x3 64 -> max-pool -> dense 128 -> dense 10, Adam 1e-3."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch * 4, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, batch * 4).astype(np.int32)

    def make(rngs):
        return CNN((28, 28, 1), 10, channels=(32, 64), kernel=3, stride=1, padding="same", pool="max",
                   pool_size=2, hidden=128, rngs=rngs)

    trainer, _ = classifier(make, x, y, lr=1e-3, batch_size=batch)
    return trainer
