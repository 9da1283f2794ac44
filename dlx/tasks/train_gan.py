"""`dlx train-gan`, the work: the GAN step as a Trainer, mode coverage on the 2-D toys,
a classifier judge for images, sample grids and scatter plots.

One step = `d_steps` discriminator updates (real batch + fresh fakes, softplus form of
-log D(x) - log(1 - D(G(z)))) then one generator update (non-saturating -log D(G(z)), or
minimax log(1 - D(G(z)))) on new fakes, or with g_fakes="reuse" on the last D update's
fakes through the same G forward, each network with its own Adam. G and D are split once into graphdefs
and pure parameter pytrees, so `fit` can scan the toy steps and vmap every seed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dlx import plots, stats
from dlx.errors import UsageError
from dlx.metrics import gan as metrics
from dlx.models.gan import Discriminator, Generator, MLPDiscriminator, MLPGenerator
from dlx.train import Trainer, epoch_batch, fit, param_count, shard_batch

TOY_EVAL = 2500     # samples for mode coverage, as VEEGAN / PacGAN
IMAGE_EVAL = 1000   # generated images judged by the classifier
GRID = 64           # samples in each PNG grid (fixed noise)
# Toy data are divided by this for training (the nets see a unit-sized box) and the
# samples multiplied back for evaluation: grid25's means at +-4 are far for a ReLU MLP.
TOY_SCALE = {"ring8": 1.0, "grid25": 4.0}
# PacGAN Table 1 (Lin et al. 2018; means of 10 trials): the standard GAN and the PacGAN
# with the most modes (ring: PacGAN2; grid: PacGAN4), for the summary and the README.
PUBLISHED = {
    "ring8": {"gan": {"modes": 6.3, "hq": 0.982, "reverse_kl": 0.45},
              "pacgan_best": {"modes": 7.9, "hq": 0.956, "reverse_kl": 0.07}},
    "grid25": {"gan": {"modes": 17.3, "hq": 0.948, "reverse_kl": 0.70},
               "pacgan_best": {"modes": 24.8, "hq": 0.936, "reverse_kl": 0.04}},
}


# ---- the step ------------------------------------------------------------------------------

def gan_trainer(make_g, make_d, real_batch, data, *, latent_dim: int, batch_size: int, steps: int,
                lr_g: float, lr_d: float, beta1: float = 0.5, loss: str = "nonsaturating",
                d_steps: int = 1, r1: float = 0.0, ema: float = 0.0, lr_decay: str = "linear",
                g_fakes: str = "fresh", scan: bool | None = None):
    """(Trainer, sample) for a GAN. real_batch(key, index, data) -> (B, ...) real examples;
    sample(g_params, batch_stats, z) -> G(z) with batch norm in inference mode.

    State: g, gs (G's batch statistics; empty for the MLPs), d, og, od (Adam states),
    ema (only with ema > 0), key (noise), data_key (batch order)."""
    gdef, _, _ = nnx.split(nnx.eval_shape(lambda: make_g(nnx.Rngs(0))), nnx.Param, nnx.BatchStat)
    ddef, _ = nnx.split(nnx.eval_shape(lambda: make_d(nnx.Rngs(0))))

    def gen(gp, gs, z):  # training mode: batch statistics of this batch, running stats updated
        g = nnx.merge(gdef, gp, gs, copy=True)
        x = g(z)
        return x, nnx.state(g, nnx.BatchStat)

    def sample(gp, gs, z):
        g = nnx.merge(gdef, gp, gs, copy=True)
        g.eval()
        return g(z)

    def disc(dp, x):
        return nnx.merge(ddef, dp)(x)

    def schedule(lr, updates):
        # Over each network's own updates: D makes d_steps of them per step (a schedule
        # over `steps` had D's rate at 0 from step steps / d_steps on).
        return optax.linear_schedule(lr, 0.0, max(updates, 1)) if lr_decay == "linear" else lr

    opt_g = optax.adam(schedule(lr_g, steps), b1=beta1)
    opt_d = optax.adam(schedule(lr_d, steps * d_steps), b1=beta1)
    ema_tx = optax.ema(ema, debias=True) if ema > 0 else None
    B, L = batch_size, latent_dim

    def init(key):
        kg, kd, kn, kb = jax.random.split(key, 4)
        _, gp, gs = nnx.split(make_g(nnx.Rngs(kg)), nnx.Param, nnx.BatchStat)
        dp = nnx.state(make_d(nnx.Rngs(kd)))
        state = {"g": gp, "gs": gs, "d": dp, "og": opt_g.init(gp), "od": opt_d.init(dp), "key": kn, "data_key": kb}
        if ema > 0:
            # Optax's debiased EMA (from zeros, divided by 1 - decay^t when read): started
            # from the initial weights instead, 0.999^1500 = 22% of them were still in the
            # average after digits' 1,500 steps (fd 25 against 6 without EMA).
            state["ema"] = ema_tx.init(gp)
        return state

    def d_loss(dp, x, fake):
        lr, lf = disc(dp, x), disc(dp, fake)
        total = jax.nn.softplus(-lr).mean() + jax.nn.softplus(lf).mean()
        if r1 > 0:
            # R1 (Mescheder et al. 2018): gamma/2 E||grad_x D(x)||^2 on real data. With
            # packing one logit covers K samples; the sum over the batch keeps the scale per sample.
            gx = jax.grad(lambda x: disc(dp, x).sum())(x)
            total = total + 0.5 * r1 * (gx ** 2).reshape(B, -1).sum(-1).mean() * (B / lr.shape[0])
        return total, (lr, lf)

    def g_loss_of(dp, fake):
        lf = disc(dp, fake)
        return jax.nn.softplus(-lf).mean() if loss == "nonsaturating" else -jax.nn.softplus(lf).mean()

    def g_loss(gp, gs, dp, z):
        fake, gs = gen(gp, gs, z)
        return g_loss_of(dp, fake), gs

    def step(state, i, data):
        k = jax.random.fold_in(state["key"], i)
        dp, od, gs = state["d"], state["od"], state["gs"]
        for j in range(d_steps):
            kx, kz = jax.random.split(jax.random.fold_in(k, j))
            x = real_batch(kx, i * d_steps + j, data, state["data_key"])
            z = jax.random.normal(kz, (B, L))
            if g_fakes == "reuse" and j == d_steps - 1:
                # Keep G's forward for the generator update: fake = G(z) and its VJP.
                fake, g_vjp, gs = jax.vjp(lambda gp: gen(gp, gs, z), state["g"], has_aux=True)
            else:
                fake, gs = gen(state["g"], gs, z)
            (dl, (lr, lf)), gd = jax.value_and_grad(d_loss, has_aux=True)(dp, x, jax.lax.stop_gradient(fake))
            upd, od = opt_d.update(gd, od, dp)
            dp = optax.apply_updates(dp, upd)
        if g_fakes == "reuse":
            # The updated D scores the same fakes; the cotangent goes back through the kept
            # forward (PyTorch's DCGAN example, torch_ref.py): one G forward per step.
            gl, d_fake = jax.value_and_grad(g_loss_of, argnums=1)(dp, fake)
            (gg,) = g_vjp(d_fake)
        else:
            z = jax.random.normal(jax.random.fold_in(k, d_steps), (B, L))
            (gl, gs), gg = jax.value_and_grad(g_loss, has_aux=True)(state["g"], gs, dp, z)
        upd, og = opt_g.update(gg, state["og"], state["g"])
        gp = optax.apply_updates(state["g"], upd)
        new = {**state, "g": gp, "gs": gs, "d": dp, "og": og, "od": od}
        if ema > 0:
            _, new["ema"] = ema_tx.update(gp, state["ema"])
        logs = {"d_loss": dl, "g_loss": gl, "d_real": jax.nn.sigmoid(lr).mean(), "d_fake": jax.nn.sigmoid(lf).mean(),
                "grad_norm_d": optax.tree.norm(gd), "grad_norm_g": optax.tree.norm(gg)}
        return new, logs

    return Trainer(init=init, step=step, data=data, examples_per_step=batch_size, scan=scan), sample


def toy_batch(mixture, scale: float, batch: int):
    def real(key, index, data, data_key):
        return metrics.sample_mixture_jax(mixture, key, batch) / scale
    return real


def image_batch(n: int, batch: int):
    def real(key, index, data, data_key):
        return shard_batch(data[epoch_batch(data_key, index, n, batch)])
    return real


def _models(cfg, shape):
    if cfg.dataset in TOY_SCALE:
        return (lambda rngs: MLPGenerator(cfg.latent_dim, cfg.width, cfg.depth, rngs=rngs),
                lambda rngs: MLPDiscriminator(2, cfg.width, cfg.depth, cfg.pack, rngs=rngs))
    return (lambda rngs: Generator(shape, cfg.latent_dim, cfg.width, rngs=rngs),
            lambda rngs: Discriminator(shape, cfg.width, rngs=rngs))


def bench_trainer(batch: int = 64, width: int = 64, *, g_fakes: str):
    """The `dcgan` benchmark workload: this command's step on 28x28x1 random data. G z(64) ->
    dense 7x7x(2w) -> BN -> ReLU -> convT 4x4/2 w -> BN -> ReLU -> convT 4x4/2 1 -> tanh; D conv
    4x4/2 w -> LReLU 0.2 -> conv 4x4/2 2w -> LReLU -> dense 1; one D update (real + fake),
    then one G update on new fakes ("fresh") or the D update's ("reuse"); Adam 2e-4, beta1 0.5."""
    shape = (28, 28, 1)
    x = np.random.default_rng(0).uniform(-1, 1, (batch * 4, *shape)).astype(np.float32)
    trainer, _ = gan_trainer(lambda rngs: Generator(shape, 64, width, rngs=rngs),
                             lambda rngs: Discriminator(shape, width, rngs=rngs),
                             image_batch(len(x), batch), x, latent_dim=64, batch_size=batch, steps=1000,
                             lr_g=2e-4, lr_d=2e-4, beta1=0.5, lr_decay="none", g_fakes=g_fakes, scan=False)
    return trainer


def toy_bench_trainer(batch: int = 128, width: int = 128, *, g_fakes: str):
    """The `ring8` benchmark workload: this command's step for `--dataset ring8` with its
    defaults (MLPs of width 128, depth 2, latent 2, pack 2, batch 128): a step so small that
    per-call dispatch, not arithmetic, sets its speed."""
    mixture = metrics.ring8()
    trainer, _ = gan_trainer(lambda rngs: MLPGenerator(2, width, 2, rngs=rngs),
                             lambda rngs: MLPDiscriminator(2, width, 2, 2, rngs=rngs),
                             toy_batch(mixture, TOY_SCALE["ring8"], batch), None, latent_dim=2,
                             batch_size=batch, steps=4000, lr_g=1e-3, lr_d=1e-3, g_fakes=g_fakes, scan=True)
    return trainer


# ---- the command ---------------------------------------------------------------------------

def run(cfg, run):
    toy = cfg.dataset in TOY_SCALE
    if toy:
        mixture = metrics.ring8() if cfg.dataset == "ring8" else metrics.grid25()
        scale = TOY_SCALE[cfg.dataset]
        shape, images, extra = (2,), None, {"modes_total": len(mixture.means), "data_scale": scale}
        real_batch, train_data = toy_batch(mixture, scale, cfg.batch_size), None
    else:
        from dlx.data import load_images

        images = load_images(cfg.dataset, cfg.data)  # bad --data: UsageError, nothing written
        if len(images.x_test) < 2:  # found only after the judge and the GAN had trained: exit 1
            raise UsageError(f"--data {cfg.data}: train-gan needs at least 2 test images (the judge's Fréchet "
                             f"distance compares covariances), the file gives {len(images.x_test)}")
        shape = images.shape
        train_data = images.x_train * 2.0 - 1.0  # [-1, 1], the generator's tanh range
        real_batch, extra = image_batch(len(train_data), cfg.batch_size), images.describe()
    make_g, make_d = _models(cfg, shape)
    trainer, sample = gan_trainer(make_g, make_d, real_batch, train_data, latent_dim=cfg.latent_dim,
                                  batch_size=cfg.batch_size, steps=cfg.steps, lr_g=cfg.lr_g, lr_d=cfg.lr_d,
                                  beta1=cfg.beta1, loss=cfg.loss, d_steps=cfg.d_steps, r1=cfg.r1, ema=cfg.ema,
                                  lr_decay=cfg.lr_decay, g_fakes=cfg.g_fakes, scan=toy)
    params_g = param_count(nnx.state(nnx.eval_shape(lambda: make_g(nnx.Rngs(0))), nnx.Param))
    params_d = param_count(nnx.state(nnx.eval_shape(lambda: make_d(nnx.Rngs(0))), nnx.Param))
    run.start(**extra, params_g=params_g, params_d=params_d)

    n_eval = TOY_EVAL if toy else IMAGE_EVAL
    z_eval = jax.random.normal(jax.random.PRNGKey(cfg.seed + 7919), (n_eval, cfg.latent_dim))  # fixed noise
    gen_all = jax.jit(jax.vmap(lambda gp, gs: sample(gp, gs, z_eval)))  # (S, n, ...) for every seed
    # The judge (a classifier of the real digits) is first needed at the first evaluation.
    # Loaded from its cache there, not here: ~0.2 s sooner to the first logged step. Trained
    # here when not cached, so that its own fit does not run inside the GAN's.
    judge_path = None if toy else _judge_path(images)
    judge = functools.cache(lambda: _judge(run, images, judge_path))
    if not toy and not _readable(judge_path):  # missing or damaged (a damaged one failed every run)
        judge()
    averaged = jax.jit(functools.partial(ema_weights, decay=cfg.ema))
    # toys: seed 0's points at each eval, kept in the run directory beside the checkpoints so
    # that a resumed run's scatter.png shows the evaluations before the resume too
    history: dict[int, np.ndarray] = _load_points(run) if toy else {}
    # The best coverage so far, per seed: a resumed run's starts from the evaluations logged
    # before its checkpoint (it restarted, and a collapse across the resume went unwarned).
    best: dict[str, list] = _logged_best(run, "modes_covered" if toy else "class_coverage", cfg.seeds)

    def generate(state):
        return np.asarray(gen_all(averaged(state) if cfg.ema > 0 else state["g"], state["gs"]))

    def evaluate(state):
        x = generate(state)
        if toy:
            x = x * scale
            cov = [metrics.mode_coverage(s, mixture.means, mixture.std) for s in x]
            kl = [metrics.reverse_kl(s, mixture.means, mixture.std) for s in x]
            per = {"modes_covered": [float(c[0]) for c in cov], "hq_fraction": [c[1] for c in cov],
                   # no high-quality sample: every sample is off the modes, the worst case log M
                   "reverse_kl": [float(np.log(len(mixture.means))) if v is None else v for v in kl]}
            history[_step_of(state)] = x[0, :1000]
            _save_points(run, history)
            watch = "modes_covered"
        else:
            per = judge().score(x)
            watch = "class_coverage"
        _warn_collapse(run, best, watch, per[watch], _step_of(state))
        res = {k: stats.mean(v) for k, v in per.items()}
        if cfg.seeds > 1:
            res.update({f"{k}_per_seed": v for k, v in per.items()})
        if not toy:
            at = _step_of(state)
            _save_grid(run, x[0, :GRID], f"samples_step{at:06d}.png",
                       f"{cfg.dataset}: samples from fixed noise (seed {cfg.seed}), step {at}")
        return res

    trainer.evaluate = evaluate
    res = fit(run, trainer, steps=cfg.steps, seed=cfg.seed, log_every=cfg.log_every, eval_every=cfg.eval_every,
              seeds=cfg.seeds, description=f"gan {cfg.dataset}")

    final = {k: v for k, v in res.eval.items() if not k.endswith("_per_seed")}
    summary = {"dataset": cfg.dataset, "seeds": cfg.seeds, "steps": res.step}
    for k in ("d_real", "d_fake", "d_loss", "g_loss", "grad_norm_d", "grad_norm_g"):
        if k in res.train:
            summary[k] = res.train[k]
    if toy:
        summary.update(modes_covered=final["modes_covered"], modes_total=len(mixture.means),
                       hq_fraction=final["hq_fraction"], reverse_kl=final.get("reverse_kl"),
                       published=PUBLISHED[cfg.dataset])
        # (a run evaluated before reverse_kl existed, resumed with nothing to train, has none)
        names = tuple(k for k in ("modes_covered", "hq_fraction", "reverse_kl") if k in final)
        _scatter(run, mixture, sorted(history.items()), cfg)
    else:
        summary.update(class_coverage=final["class_coverage"], classes_total=images.classes,
                       label_entropy=final["label_entropy"], fd=final["fd"],
                       fd_real_test=judge().fd_real_test, judge_accuracy=judge().accuracy)
        names = ("class_coverage", "label_entropy", "fd")
        x = generate(res.state)
        _save_grid(run, x[0, :GRID], "samples.png", f"{cfg.dataset}: final samples (seed {cfg.seed})")
        run.out.info(_terminal_grid(x[0, :16]))
    per_seed = {k: res.eval.get(f"{k}_per_seed", [final[k]]) for k in names}
    summary["per_seed"] = per_seed
    if cfg.seeds > 1:
        summary["spread"] = {k: stats.spread(v) for k, v in per_seed.items()}
    summary.update(params_g=params_g, params_d=params_d, compile_s=res.compile_s, ms_per_step=res.ms_per_step,
                   examples_per_s=res.examples_per_s)
    plots.curves_from_metrics(run.path("metrics.jsonl"), run.path("curves.png"), f"dlx train-gan ({cfg.dataset})")
    table = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    if cfg.seeds > 1:
        for k, s in summary["spread"].items():
            table[k] = f"{s['mean']:.3g} ± {s['std']:.2g} (95% {s['ci95'][0]:.3g}..{s['ci95'][1]:.3g})"
    run.finish(summary, table=table)


def _warn_collapse(run, best: dict, name: str, values: list, step: int) -> None:
    """Warn, in one line per eval, when seeds cover fewer modes / classes than their best
    at an earlier eval of this process (on stderr, and as an `info` record for scripts)."""
    prev = best.get(name)
    if prev is not None:
        fell = [(s, was, now) for s, (was, now) in enumerate(zip(prev, values)) if now < was]
        if fell:
            what = ", ".join(f"{was:g} -> {now:g}" + (f" (seed {s})" if len(values) > 1 else "")
                             for s, was, now in fell)
            run.out.warn(f"mode collapse setting in: {name} below its best: {what}")
            run.out.emit("info", {"step": step, "collapse": f"{name} below its best: {what}"})
        best[name] = [max(a, b) for a, b in zip(prev, values)]
    else:
        best[name] = list(values)


def ema_weights(state, decay: float):
    """G's debiased EMA (Optax's: the average from zeros divided by 1 - decay^t); before
    the first step (t = 0) G itself. With --seeds the count and weights carry a seed axis."""
    e = state["ema"]

    def one(m, g):
        c = e.count.reshape(e.count.shape + (1,) * (m.ndim - e.count.ndim))   # () or (seeds, 1, ...)
        return jnp.where(c > 0, m / (1.0 - decay ** jnp.maximum(c, 1).astype(m.dtype)), g)
    return jax.tree.map(one, e.ema, state["g"])


def _logged_best(run, name: str, seeds: int) -> dict[str, list]:
    """{name: per-seed best} over the eval records of a resumed run's metrics.jsonl (the
    records after its checkpoint are out by now: the session took them out); {} if none."""
    if not run.resumed or run.dir is None:
        return {}
    key = f"{name}_per_seed" if seeds > 1 else name
    best = None
    try:
        with open(run.path("metrics.jsonl"), encoding="utf-8") as f:
            for line in f:
                if '"event":"eval"' in line and f'"{key}"' in line:
                    v = json.loads(line).get(key)
                    v = v if isinstance(v, list) else [v]
                    if len(v) == seeds and all(isinstance(x, (int, float)) for x in v):
                        best = v if best is None else [max(a, b) for a, b in zip(best, v)]
    except (OSError, ValueError):
        return {}
    return {name: best} if best is not None else {}


def _step_of(state) -> int:
    """Steps taken so far: the count of G's Adam state (first leaf), seed 0."""
    return int(np.asarray(jax.tree.leaves(state["og"])[0]).reshape(-1)[0])


# ---- the judge: a classifier dlx trains once per dataset -------------------------------------

JUDGE_VERSION = b"dlx-gan-judge-v1: cnn 16,32 k3 same max2 hidden64, adam 1e-3, batch 64"
JUDGE_STEPS = {"digits": 600, "mnist": 1500, "fashion-mnist": 1500}
JUDGE_REAL = 10000  # training images whose features stand for the real distribution


class _Judge:
    """The trained classifier and, computed at first use (after the first training steps are
    on screen: 0.35 s of start-up), its test accuracy and the real images' features."""

    def __init__(self, apply, params, images, evaluate):
        self.apply, self.params, self._images, self._evaluate = apply, params, images, evaluate

    @functools.cached_property
    def accuracy(self) -> float:
        return float(self._evaluate(self.params)[1])  # evaluate: params -> (loss, accuracy)

    @functools.cached_property
    def real(self) -> np.ndarray:
        return self.features(self._images.x_train[:JUDGE_REAL])[1]

    @functools.cached_property
    def fd_real_test(self) -> float:
        return metrics.frechet_distance(self.real, self.features(self._images.x_test[:IMAGE_EVAL])[1])

    def features(self, x01):
        probs, feats = [], []
        for i in range(0, len(x01), 2048):
            p, f = self.apply(self.params, x01[i:i + 2048])
            probs.append(np.asarray(p))
            feats.append(np.asarray(f))
        return np.concatenate(probs), np.concatenate(feats)

    def score(self, x) -> dict:
        """Generated images (S, n, H, W, C) in [-1, 1] -> per-seed lists of class coverage,
        label entropy (nats) and Frechet distance to the real images in feature space."""
        out = {"class_coverage": [], "label_entropy": [], "fd": []}
        for xs in x:
            probs, feats = self.features(np.clip((xs + 1.0) / 2.0, 0.0, 1.0))
            out["class_coverage"].append(float(metrics.class_coverage(probs.argmax(1), probs.shape[1])))
            out["label_entropy"].append(metrics.label_entropy(probs, probs.shape[1]))
            out["fd"].append(metrics.frechet_distance(self.real, feats))
        return out


def _judge_path(images) -> str:
    """The judge's cache file: keyed by dataset and a hash of the data (and JUDGE_VERSION)."""
    from dlx.runtime import cache_dir

    digest = hashlib.sha256(JUDGE_VERSION + images.x_train.tobytes() + images.y_train.tobytes()).hexdigest()
    return os.path.join(cache_dir(), "gan-judge", f"{images.name}-{digest[:16]}.npz")


def _readable(path: str) -> bool:
    """Whether the .npz at path reads whole (every array, so its CRCs are checked)."""
    try:
        with np.load(path) as f:
            for name in f.files:
                f[name]
        return True
    except Exception:   # missing, truncated, a bad CRC: BadZipFile, EOFError, OSError...
        return False


def _judge(run, images, path: str) -> _Judge:
    """The cnn-demo CNN trained on the same data, cached in the per-user cache directory
    keyed by dataset and a hash of the data: trained once, then loaded."""
    from dlx.models.cnn import CNN
    from dlx.tasks.classify import classifier, eval_fn

    def make(rngs):
        return CNN(images.shape, images.classes, channels=(16, 32), kernel=3, stride=1, padding="same",
                   pool="max", pool_size=2, hidden=64, rngs=rngs)

    trainer, graphdef = classifier(make, images.x_train, images.y_train, lr=1e-3, batch_size=64)
    abstract = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))["params"]
    leaves, treedef = jax.tree.flatten(abstract)
    params = None
    try:
        with np.load(path) as f:
            arrays = [f[f"p{i}"] for i in range(len(leaves))]
        if all(a.shape == leaf.shape for a, leaf in zip(arrays, leaves)):
            params = jax.tree.unflatten(treedef, [jnp.asarray(a) for a in arrays])
    except Exception:  # missing, truncated, a bad CRC (BadZipFile, EOFError...): trained again
        pass
    if params is None:
        trainer.name, trainer.tag = "judge", {"model": "judge"}
        steps = JUDGE_STEPS.get(images.name, 1500)
        run.out.info(f"training the judge (a digit classifier, {steps} steps); cached for later runs")
        res = fit(run, trainer, steps=steps, seed=0, log_every=steps, eval_every=steps, description="judge")
        params = res.state["params"]
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp.npz"
            np.savez(tmp, **{f"p{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(params))})
            os.replace(tmp, path)
        except OSError:
            pass  # no cache: train again next time

    @jax.jit
    def apply(params, x):  # x (N, H, W, C) in [0, 1] -> class probabilities, penultimate features
        m = nnx.merge(graphdef, params)
        _, h = m.features(x)
        f = jax.nn.relu(m.hidden(h.reshape(x.shape[0], -1)))  # (N, 64)
        return jax.nn.softmax(m.head(f)), f

    return _Judge(apply, params, images, eval_fn(graphdef, jnp.asarray(images.x_test), jnp.asarray(images.y_test)))


# ---- pictures --------------------------------------------------------------------------------

def _save_grid(run, x, name: str, title: str) -> None:
    plots.image_grid((x[..., 0] + 1.0) / 2.0, run.path(name), title, rows=int(math.ceil(math.sqrt(len(x)))))


SHADES = " ░▒▓█"


def _terminal_grid(x, width: int = 78) -> str:
    """Images (N, H, W, 1) in [-1, 1] as Unicode shades, two characters per pixel; 28x28
    images are averaged over 2x2 blocks first so that a few fit side by side."""
    v = np.clip((np.asarray(x)[..., 0] + 1.0) / 2.0, 0.0, 1.0)
    f = max(1, v.shape[1] // 14)
    n, h, w = v.shape
    v = v[:, :h // f * f, :w // f * f].reshape(n, h // f, f, w // f, f).mean((2, 4))
    per_row = max(1, width // (2 * v.shape[2] + 1))
    n = min(n, per_row * (4 if v.shape[1] <= 8 else 2))
    lines = []
    for r in range(0, n, per_row):
        block = v[r:r + per_row]
        for y in range(block.shape[1]):
            lines.append(" ".join("".join(SHADES[min(int(p * len(SHADES)), len(SHADES) - 1)] * 2 for p in img[y])
                                  for img in block))
        lines.append("")
    return "\n".join(lines).rstrip()


POINTS = "scatter_points.npz"


def _load_points(run) -> dict[int, np.ndarray]:
    """The points of earlier evaluations of this run (a resumed one), by step."""
    try:
        with np.load(run.path(POINTS)) as f:
            return {int(k): f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):   # none yet, or damaged: start afresh
        return {}


def _save_points(run, history: dict) -> None:
    tmp = run.path(".tmp-" + POINTS)
    with open(tmp, "wb") as f:
        np.savez(f, **{str(k): v for k, v in history.items()})
    os.replace(tmp, run.path(POINTS))


def _scatter(run, mixture, history, cfg) -> None:
    """Real vs generated points (seed 0) at up to six evaluations over training."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = sorted({round(i) for i in np.linspace(0, len(history) - 1, min(6, len(history)))})
    real = metrics.sample_mixture(mixture, 1000, np.random.default_rng(0))
    lim = float(np.abs(mixture.means).max()) * 1.4 + 0.2
    fig, axes = plt.subplots(1, len(picks), figsize=(3.0 * len(picks), 3.2), squeeze=False)
    for ax, i in zip(axes[0], picks):
        at, pts = history[i]
        ax.scatter(real[:, 0], real[:, 1], s=2, c="0.6", label="real")
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:red", alpha=0.5, label="generated")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(f"step {at}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper left", markerscale=4)
    fig.suptitle(f"dlx train-gan {cfg.dataset}: real (grey) vs generated (red), seed {cfg.seed}", fontsize=10)
    plots.tight_layout(fig)
    fig.savefig(run.path("scatter.png"), dpi=110)
    plt.close(fig)
