"""`dlx bench`, the work: time the commands' own training steps.

Each workload is built by the module of the command that trains it (`bench_trainer`),
so what is timed is exactly the Trainer.step that command hands to the training loop.
Two timings per workload: one step per compiled call (comparable to PyTorch's eager
step) and the loop's own form, `--scan` steps per compiled call (what the training loop runs for steps under 5 MFLOP and for ring8).
"""

from __future__ import annotations

import math
import re
import time

import jax
import jax.numpy as jnp

from dlx import runtime
from dlx.stats import sig
from dlx.train import chunked, init_program, off_thread, param_count, seeded

DEFAULT_BATCH = {"lstm": 32, "gru": 32, "rnn": 32, "dcgan": 64, "cnn": 128, "ring8": 128, "adding": 32}
# The GAN update's fakes (`train-gan --g-fakes`) unless --g-fakes is given: dcgan as the
# reference step (torch_ref.py: one G forward, its fakes scored again after the D update),
# ring8 as train-gan runs it by default.
DEFAULT_G_FAKES = {"dcgan": "reuse", "ring8": "fresh"}


def _recurrent(cell):
    def build(cfg, batch):
        from dlx.tasks.train_lstm import text_trainer

        # The reference workload: embedding vocab->embed, one layer, read-out, clip 1, Adam 2e-3.
        trainer, _ = text_trainer(vocab=cfg.vocab, embed=cfg.embed, hidden=cfg.hidden, batch_size=batch,
                                  seq_len=cfg.seq, cell=cell, lr=2e-3, clip=1.0)
        return trainer, {"batch": batch, "seq": cfg.seq, "hidden": cfg.hidden, "embed": cfg.embed,
                         "vocab": cfg.vocab}
    return build


def _dcgan(cfg, batch):
    from dlx.tasks.train_gan import bench_trainer

    g_fakes = cfg.g_fakes or DEFAULT_G_FAKES["dcgan"]
    return bench_trainer(batch=batch, width=cfg.width, g_fakes=g_fakes), {"batch": batch, "width": cfg.width,
                                                                           "g_fakes": g_fakes}


def _ring8(cfg, batch):
    from dlx.tasks.train_gan import toy_bench_trainer

    g_fakes = cfg.g_fakes or DEFAULT_G_FAKES["ring8"]
    return toy_bench_trainer(batch=batch, g_fakes=g_fakes), {"batch": batch, "width": 128, "g_fakes": g_fakes}


def _adding(cfg, batch):
    from dlx.tasks.sequence import make_task, recurrent_trainer

    # train-lstm --task adding with its defaults: LSTM of 64, T = 100.
    task = make_task("adding", seq_len=100)
    trainer, _ = recurrent_trainer(task, cell="lstm", hidden=64, lr=3e-3, batch_size=batch, evaluate=False)
    return trainer, {"batch": batch, "seq": 100, "hidden": 64}


def _cnn(cfg, batch):
    from dlx.tasks.cnn_demo import bench_trainer

    return bench_trainer(batch=batch), {"batch": batch}


# Each workload is built by the command that trains it.
BUILDERS = {"lstm": _recurrent("lstm"), "gru": _recurrent("gru"), "rnn": _recurrent("rnn"),
            "dcgan": _dcgan, "cnn": _cnn, "ring8": _ring8, "adding": _adding}


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    """This device's measured float32 matmul rate (GFLOP/s): best of `reps` n x n products."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


# ---- FLOPs with the time loops counted per iteration -----------------------------------
#
# XLA's cost analysis counts a `while` body once, not once per iteration: the recurrent
# steps' T time steps were counted as one (four with the loop unrolled by four), so their
# GFLOP/s and fraction of peak read 2-2.6x low (lstm 2.75 of 6.9 GFLOP per step). The
# compiled program's text gives each loop's trip count, so bench counts the matrix products
# (nearly all of a step's arithmetic) itself, each loop's as many times as it runs, and
# takes the rest (elementwise work) from the cost analysis: its total less the products it
# saw once. Checked on the CPU's programs (the LSTM's against a hand count: 6.91 vs 6.85
# GFLOP). A GPU's products may be cuBLAS calls (dimensions in backend_config) or fusions
# around a `dot`. An H200 read rnn 1.90 GFLOP per step against the CPU's 2.03, lstm 4.63
# against 6.91: the missing amounts match whole products outside the loops (the read-out's
# weight gradient), so its cost analysis appears to leave some out; the products counted
# here are then a floor (the rest is never taken below 0), though where the analysis'
# elementwise work exceeds what it left out, the figure is still short by the difference.

_HEADER = re.compile(r"^(ENTRY )?%?([^\s(]+) .*\{\s*$")
_INSTR = re.compile(r"^\s*(?:ROOT )?%?([^\s=]+) = (.*?) (\w[\w-]*)\(([^)]*)\)(.*)$")
_SHAPE = re.compile(r"^\s*(?:ROOT )?%?([^\s=]+) = \w+\[([\d,]*)\]")


def _dims(text: str) -> list[int]:
    return [int(d) for d in text.split(",") if d]


def product_flops(hlo: str) -> tuple[float, float]:
    """FLOPs of a compiled program's matrix products: (each counted once, each counted once
    per iteration of its loops, nested loops multiplied). (0, 0) without products."""
    comps, entry, cur = {}, None, None
    for line in hlo.splitlines():
        m = _HEADER.match(line)
        if m and not line.startswith(" "):
            cur = m.group(2)
            comps[cur] = []
            entry = cur if m.group(1) else entry
        elif line.startswith("}"):
            cur = None
        elif cur is not None:
            comps[cur].append(line)
    memo: dict[tuple[str, bool], float] = {}

    def flops(name: str, trips: bool) -> float:
        if (name, trips) in memo or name not in comps:
            return memo.get((name, trips), 0.0)
        shapes = {m.group(1): _dims(m.group(2)) for m in map(_SHAPE.match, comps[name]) if m}
        total = 0.0
        for line in comps[name]:
            m = _INSTR.match(line)
            if not m:
                continue
            op, operands, rest = m.group(3), m.group(4), m.group(5)
            gemm = op == "custom-call" and re.search(r'custom_call_target="__cublas\$(gemm|lt\$matmul)', rest)
            if op == "dot" or gemm:   # a GPU's cuBLAS call holds its dimensions in backend_config
                lhs = shapes.get(operands.split(",")[0].strip().lstrip("%"), [])
                contract = re.search(r"lhs_contracting_dims=\{([\d,]*)\}" if op == "dot"
                                     else r'"lhs_contracting_dimensions":\[([^\]]*)\]', rest)
                k = math.prod(lhs[int(i.strip(' "'))] for i in contract.group(1).split(",") if i.strip(' "')) \
                    if contract and lhs else 0
                out = re.match(r"\(?\w+\[([\d,]*)\]", m.group(2))   # cuBLAS: (result, workspace)
                total += 2.0 * math.prod(_dims(out.group(1))) * k if out else 0.0
            elif op == "while":
                body = re.search(r"body=%?([^\s,]+)", rest)
                n = re.search(r'"known_trip_count":\{"n":"(\d+)"\}', rest)
                total += (int(n.group(1)) if trips and n else 1) * flops(body.group(1), trips) if body else 0.0
            elif op == "conditional":   # the costliest branch; a GPU writes a predicated one's two
                branches = re.search(r"branch_computations=\{([^}]*)\}", rest)
                names = branches.group(1).split(",") if branches else \
                    re.findall(r"(?:true|false)_computation=%?([^\s,]+)", rest)
                total += max((flops(b.strip().lstrip("%"), trips) for b in names), default=0.0)
            else:   # fusions (calls=), calls (to_apply=); a reduction's to_apply holds no product
                called = re.search(r"(?:calls|to_apply)=%?([^\s,]+)", rest)
                total += flops(called.group(1), trips) if called else 0.0
        memo[(name, trips)] = total
        return total

    if entry is None:
        return 0.0, 0.0
    return flops(entry, False), flops(entry, True)


def step_flops(cost_flops: float, hlo: str) -> float:
    """A step's FLOPs: its products, each loop's once per iteration, plus what XLA's cost
    analysis (`cost_flops`, loops counted once) has beyond the products seen once."""
    once, every = product_flops(hlo)
    return every + max(0.0, cost_flops - once)


def _block(tree):
    # Waited for off the main thread too: the steps dispatched ahead (a scanned chunk is
    # hundreds) would otherwise hold a Ctrl-C until they all ran.
    off_thread(lambda: jax.block_until_ready(tree))


def _params(state) -> int | None:
    """Trainable parameters in a step's state: `params`, or a GAN's two networks `g` + `d`."""
    if not isinstance(state, dict):
        return None
    nets = [state[k] for k in (("params",) if "params" in state else ("g", "d")) if k in state]
    return param_count(nets) if nets else None


def time_trainer(trainer, *, steps: int, warmup: int, scan: int, seed: int = 0, seeds: int = 1) -> dict:
    """Times of trainer.step; with seeds > 1, of the step of `seeds` models vmapped in one
    program, as `fit(..., seeds=N)` trains them (ms_per_step is then per step of all N)."""
    key = jax.random.PRNGKey(seed)
    init, step_fn = seeded(trainer, seeds if seeds > 1 else None)
    # The compilations run off the main thread, as fit's do: a Ctrl-C during one (seconds for
    # a large step) ends bench at once instead of after it.
    state = off_thread(lambda: init_program(init)(key))
    data = jax.device_put(trainer.data)
    step = jax.jit(step_fn, donate_argnums=0)
    t = time.perf_counter()
    compiled = off_thread(lambda: step.lower(state, jnp.int32(0), data).compile(runtime.step_compiler_options()))  # as fit's
    compile_s = time.perf_counter() - t
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", 0.0)) if cost else 0.0
    try:
        flops = step_flops(flops, compiled.as_text()) if flops else 0.0
    except Exception:  # a program text this parser does not know: XLA's count alone
        pass
    i = 0
    for _ in range(warmup):
        state, _ = compiled(state, jnp.int32(i), data)
        i += 1
    _block(state)
    t = time.perf_counter()
    for _ in range(steps):
        state, m = compiled(state, jnp.int32(i), data)
        i += 1
    _block((state, m))
    ms = (time.perf_counter() - t) / steps * 1e3
    params = _params(state)
    res = {"compile_s": round(compile_s, 3), "ms_per_step": round(ms, 3),
           "examples_per_s": round(trainer.examples_per_step * seeds * 1e3 / ms, 1),
           "gflops_per_step": sig(flops / 1e9), "gflop_per_s": sig(flops / 1e9 / (ms / 1e3)),
           "params": None if params is None else params // seeds,  # one model's, not every seed's
           "seeds": seeds}
    if scan:
        chunk = chunked(step_fn)
        t = time.perf_counter()
        c = off_thread(lambda: chunk.lower(state, jnp.int32(i), data, scan).compile())
        res["compile_scan_s"] = round(time.perf_counter() - t, 3)
        state, _ = c(state, jnp.int32(i), data)
        i += scan
        _block(state)
        reps = max(1, steps // scan)
        t = time.perf_counter()
        for _ in range(reps):
            state, m = c(state, jnp.int32(i), data)
            i += scan
        _block((state, m))
        res["ms_per_step_scanned"] = round((time.perf_counter() - t) / (reps * scan) * 1e3, 3)
    return res


def run(cfg, run):
    run.start(persist=False)
    peak = matmul_peak()
    run.out.info(f"matmul peak: {peak:.1f} GFLOP/s (2048x2048 float32)")
    results = {}
    for name in cfg.workloads:
        trainer, shape = BUILDERS[name](cfg, cfg.batch or DEFAULT_BATCH[name])
        r = time_trainer(trainer, steps=cfg.steps, warmup=cfg.warmup, scan=cfg.scan, seed=cfg.seed,
                         seeds=cfg.seeds)
        r["fraction_of_peak"] = sig(r["gflop_per_s"] / peak)
        r["shape"] = shape
        results[name] = r
        run.emit("eval", {"workload": name, **r})
        run.out.info(f"{name}: {r['ms_per_step']:.2f} ms/step")
    cols = ["workload", "compile s", "ms/step", "ms/step (scan)", "examples/s", "GFLOP/s", "of peak"]
    rows = [[n, r["compile_s"], r["ms_per_step"], r.get("ms_per_step_scanned", "-"), r["examples_per_s"],
             r["gflop_per_s"], f"{100 * r['fraction_of_peak']:.2g}%"] for n, r in results.items()]
    dev, host = jax.devices()[0], runtime.host_cpu()
    device = host["model"] if dev.platform == "cpu" else str(dev.device_kind)
    run.out.table(f"dlx bench on {device} ({host['cores']} host cores; matmul peak {peak:.1f} GFLOP/s)",
                  cols, rows)
    compile_s = sum(r["compile_s"] + r.get("compile_scan_s", 0.0) for r in results.values())
    run.out.emit("summary", {"workloads": results, "matmul_peak_gflop_per_s": round(peak, 2),
                             "device": device, "platform": dev.platform, "host": host,
                             "compile_s": round(compile_s, 3), "wall_s": round(time.perf_counter() - run.t0, 3)})
