"""`dlx bench` end to end, at tiny shapes (timings themselves are measured, never asserted)."""

import jax

from tests.helpers import dlx


def test_bench_reports_every_documented_field_and_times_vmapped_seeds(in_tmp):
    r = dlx("bench", "rnn", "ring8", "--batch", "4", "--seq", "4", "--hidden", "8", "--embed", "4",
            "--steps", "2", "--warmup", "1", "--scan", "2", "--seeds", "2", "--json")
    assert r.code == 0, r.stderr[-1500:]
    s = r.summary
    assert s["matmul_peak_gflop_per_s"] > 0 and s["platform"] == jax.default_backend()
    # The machine, so that figures from two machines can be told apart: on a CPU JAX's own
    # name for the device is "cpu", whatever the processor.
    import os

    assert s["host"]["cores"] == len(os.sched_getaffinity(0))
    if s["platform"] == "cpu":
        assert s["device"] == s["host"]["model"] != "cpu"
        if os.path.exists("/proc/cpuinfo"):
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
            if "model name" in cpuinfo:
                assert f": {s['device']}\n" in cpuinfo
    assert f"dlx bench on {s['device']} ({s['host']['cores']} host cores" in " ".join(r.stderr.split())  # wrapped
    assert s["wall_s"] > s["compile_s"] > 0   # as every summary has them
    assert set(s["workloads"]) == {"rnn", "ring8"}
    for name, w in s["workloads"].items():
        for field in ("compile_s", "ms_per_step", "ms_per_step_scanned", "examples_per_s", "gflops_per_step",
                      "gflop_per_s", "fraction_of_peak"):
            assert w[field] > 0, (name, field, w)
        assert w["seeds"] == 2
    # One model's parameters (not the 2 seeds'); ring8's are G's plus D's (it reported null).
    # rnn: embedding 65x4, V 4x8, W 8x8, b 8, read-out 8x65 + 65.
    assert s["workloads"]["rnn"]["params"] == 65 * 4 + 4 * 8 + 8 * 8 + 8 + 8 * 65 + 65
    assert s["workloads"]["ring8"]["params"] > 0
    # examples/s counts every seed's batch
    rnn = s["workloads"]["rnn"]
    assert rnn["shape"] == {"batch": 4, "seq": 4, "hidden": 8, "embed": 4, "vocab": 65}
    assert abs(rnn["examples_per_s"] - 2 * 4 * 1e3 / rnn["ms_per_step"]) / rnn["examples_per_s"] < 0.01
    assert [e["workload"] for e in r.event("eval")] == ["rnn", "ring8"]
    assert s["workloads"]["ring8"]["shape"]["g_fakes"] == "fresh"   # train-gan's default
    assert not (in_tmp / "runs").exists()  # bench writes no run directory


def test_small_fractions_keep_their_digits():
    """A tiny step on an H100 used 7e-7 of its peak; four decimals reported it as 0."""
    from dlx.stats import sig as _sig

    assert _sig(7.3456e-7) == 7.346e-7 and _sig(0.0) == 0.0
    assert _sig(1234.567) == 1235.0 and _sig(0.0123456) == 0.01235


def test_shape_options_that_no_chosen_workload_reads_are_refused(in_tmp):
    # `bench cnn --seq 5` timed cnn and ignored --seq; other commands refuse such options.
    for args, needle in ((["cnn", "--seq", "5"], "--seq applies to lstm, gru, rnn only, not to cnn"),
                         (["ring8", "--hidden", "8"], "--hidden applies to lstm, gru, rnn only"),
                         (["lstm", "--width", "8"], "--width applies to dcgan only"),
                         (["lstm", "cnn", "--g-fakes", "fresh"], "--g-fakes applies to dcgan, ring8 only"),
                         (["dcgan", "--g-fakes", "both"], "--g-fakes must be one of fresh, reuse")):
        r = dlx("bench", *args, "--json")
        assert r.code == 2 and needle in r.stderr, (args, r.stderr)


def test_dcgan_times_the_reference_step_unless_told_otherwise(in_tmp):
    # torch_ref.py scores the D update's fakes again for the G update (one G forward); the
    # bench's dcgan does the same by default, and times train-gan's default with --g-fakes fresh.
    fast = ("bench", "dcgan", "--batch", "2", "--width", "4", "--steps", "1", "--warmup", "0", "--scan", "0", "--json")
    ref, fresh = dlx(*fast), dlx(*fast, "--g-fakes", "fresh")
    assert ref.code == 0 and fresh.code == 0, ref.stderr[-1500:]
    assert ref.summary["workloads"]["dcgan"]["shape"] == {"batch": 2, "width": 4, "g_fakes": "reuse"}
    assert fresh.summary["workloads"]["dcgan"]["shape"]["g_fakes"] == "fresh"
    # One G forward fewer: XLA's cost analysis counts fewer FLOPs per step.
    assert ref.summary["workloads"]["dcgan"]["gflops_per_step"] < fresh.summary["workloads"]["dcgan"]["gflops_per_step"]


def test_loop_bodies_count_once_per_iteration():
    """XLA's cost analysis counts a while body once; bench counts the products inside loops
    once per iteration, nested loops multiplied."""
    import jax.numpy as jnp

    from dlx.tasks.bench import product_flops

    m = jnp.full((4, 4), 0.1)

    def f(x):   # 10 outer x 3 inner (8, 4) @ (4, 4) products on the carry, and one outside
        def inner(i, acc):
            return jnp.tanh(acc @ m)
        def outer(i, acc):
            return jax.lax.fori_loop(0, 3, inner, acc)
        return jax.lax.fori_loop(0, 10, outer, x) @ m

    compiled = jax.jit(f).lower(jnp.ones((8, 4))).compile()
    one = 2 * 8 * 4 * 4

    def g(x):   # a conditional in a loop: its costlier branch (two products) per iteration
        def body(i, acc):
            return jax.lax.cond(i % 2 == 0, lambda a: jnp.tanh(a @ m), lambda a: jnp.tanh((a @ m) @ m), acc)
        return jax.lax.fori_loop(0, 10, body, x)

    assert product_flops(jax.jit(g).lower(jnp.ones((8, 4))).compile().as_text()) == (2 * one, 10 * 2 * one)
    assert product_flops(compiled.as_text()) == (2 * one, (10 * 3 + 1) * one)


# g above as an H200 compiled it (trimmed): the conditional is predicated (true_ and
# false_computation, not branch_computations), and a product may be a cuBLAS call whose
# dimensions sit in backend_config; the parser read 0 FLOPs here.
GPU_HLO = """HloModule jit_g, is_scheduled=true

%wrapped_dot_computation (param_0.11: f32[8,4], param_1.13: f32[4,4]) -> f32[8,4] {
  %param_0.11 = f32[8,4]{1,0} parameter(0)
  %param_1.13 = f32[4,4]{1,0} parameter(1)
  ROOT %dot_general.5.1 = f32[8,4]{1,0} dot(%param_0.11, %param_1.13), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%region_2.4 (while.0: (f32[8,4], f32[4,4])) -> (f32[8,4]) {
  %while.0 = (f32[8,4]{1,0}, f32[4,4]{1,0}) parameter(0)
  %get-tuple-element.48 = f32[8,4]{1,0} get-tuple-element(%while.0), index=0
  %get-tuple-element.49 = f32[4,4]{1,0} get-tuple-element(%while.0), index=1
  %wrapped_dot = f32[8,4]{1,0} fusion(%get-tuple-element.48, %get-tuple-element.49), kind=kLoop, calls=%wrapped_dot_computation
  ROOT %tuple.1 = (f32[8,4]{1,0}) tuple(%wrapped_dot)
}

%region_1.3 (while.2: (f32[8,4], f32[4,4])) -> (f32[8,4]) {
  %while.2 = (f32[8,4]{1,0}, f32[4,4]{1,0}) parameter(0)
  %get-tuple-element.1.0 = f32[8,4]{1,0} get-tuple-element(%while.2), index=0
  %get-tuple-element.1.1 = f32[4,4]{1,0} get-tuple-element(%while.2), index=1
  %custom-call.3 = (f32[8,4]{1,0}, s8[1028]{0}) custom-call(%get-tuple-element.1.0, %get-tuple-element.1.1), custom_call_target="__cublas$gemm", backend_config={"operation_queue_id":"0","wait_on_operation_queues":[],"gemm_backend_config":{"alpha_real":1,"alpha_imag":0,"beta":0,"dot_dimension_numbers":{"lhs_contracting_dimensions":["1"],"rhs_contracting_dimensions":["0"],"lhs_batch_dimensions":[],"rhs_batch_dimensions":[]},"epilogue":"DEFAULT"}}
  %get-tuple-element.24 = f32[8,4]{1,0} get-tuple-element(%custom-call.3), index=0
  %wrapped_dot.2 = f32[8,4]{1,0} fusion(%get-tuple-element.24, %get-tuple-element.1.1), kind=kLoop, calls=%wrapped_dot_computation
  ROOT %tuple.2 = (f32[8,4]{1,0}) tuple(%wrapped_dot.2)
}

%body (arg_tuple.7: (s32[], f32[8,4], f32[4,4])) -> (s32[], f32[8,4], f32[4,4]) {
  %arg_tuple.7 = (s32[], f32[8,4]{1,0}, f32[4,4]{1,0}) parameter(0)
  %pred = pred[] constant(true)
  %tuple.19.0 = (f32[8,4]{1,0}, f32[4,4]{1,0}) tuple(%gte.a, %gte.m)
  %cond.1.clone.4 = (f32[8,4]{1,0}) conditional(%pred, %tuple.19.0, %tuple.19.0), true_computation=%region_2.4, false_computation=%region_1.3
  ROOT %t = (s32[], f32[8,4]{1,0}, f32[4,4]{1,0}) tuple(%i, %r, %gte.m)
}

ENTRY %main.7 (x.1: f32[8,4], m: f32[4,4]) -> f32[8,4] {
  %tuple.24 = (s32[], f32[8,4]{1,0}, f32[4,4]{1,0}) tuple(%c, %x.1, %m)
  %while.5 = (s32[], f32[8,4]{1,0}, f32[4,4]{1,0}) while(%tuple.24), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"10"}}
  ROOT %while.13.0 = f32[8,4]{1,0} get-tuple-element(%while.5), index=1
}
"""


def test_loop_count_reads_a_gpus_program_text():
    from dlx.tasks.bench import product_flops

    one = 2 * 8 * 4 * 4
    assert product_flops(GPU_HLO) == (2 * one, 10 * 2 * one)   # the costlier branch: two products


def test_a_step_counts_the_products_a_cost_analysis_left_out():
    """The rest beyond the products comes from XLA's cost analysis; where that analysis left
    products out (an H200's, of the read-out's weight gradient), the products counted from
    the program text still count in full."""
    from dlx.tasks.bench import step_flops

    one = 2 * 8 * 4 * 4
    assert step_flops(2 * one + 100.0, GPU_HLO) == 20 * one + 100.0   # + elementwise work
    assert step_flops(one, GPU_HLO) == 20 * one     # a product missing: the rest is not negative


def test_recurrent_flops_count_every_time_step(in_tmp):
    # rnn at batch 16, seq 64, hidden 128, vocab 65: the forward, backward and weight-gradient
    # products (3 x 2TBH^2) and the read-out's three (3 x 2TBHV) are 151.8 MFLOP; elementwise
    # work adds a little. Counting the time loops' bodies once read 0.59 of it.
    r = dlx("bench", "rnn", "--batch", "16", "--seq", "64", "--hidden", "128", "--steps", "1", "--warmup", "0",
            "--scan", "0", "--json")
    assert r.code == 0, r.stderr
    T, B, H, V = 64, 16, 128, 65
    products = 3 * 2 * T * B * H * H + 3 * 2 * T * B * H * V
    assert 1.0 <= r.summary["workloads"]["rnn"]["gflops_per_step"] * 1e9 / products < 1.15


def test_a_vocabulary_beyond_the_synthetic_corpus_is_refused(in_tmp):
    # It was an internal error (chr() out of range), exit 1, after the matmul peak.
    r = dlx("bench", "lstm", "--vocab", "2000000")
    assert r.code == 2 and "--vocab 2000000 is above 65,536" in r.stderr and "Traceback" not in r.stderr


def test_a_signal_during_a_compilation_ends_bench_at_once(in_tmp):
    # Uncached, the dcgan step compiles for ~3.5 s here, and its scanned form again; a
    # Ctrl-C during either waited for XLA to finish before bench saw it.
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "DLX_COMPILE_CACHE": "0"}
    p = subprocess.Popen([sys.executable, "-m", "dlx", "bench", "dcgan", "--steps", "2", "--warmup", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in p.stderr:   # said once the peak is measured, just before the workload is built
            if line.startswith("matmul peak"):
                break
        time.sleep(2.0)   # into the step's compilation (the parameters' takes the first second)
        p.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = p.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        p.kill()
    assert p.returncode == 130 and "interrupted (bench saves nothing)" in err, err[-800:]
    assert waited < 1.5, f"the signal waited {waited:.1f} s for the compilation"
