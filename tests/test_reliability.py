"""Reliability across every command: bad input, interruptions, crashes mid-checkpoint,
concurrent sweeps, closed pipes, reproducibility. Each test states a promise of the run
layer and fails if any command breaks it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import dlx, dlx_subprocess, strip_timing


@pytest.fixture
def files(in_tmp):
    """Bad data files of every kind, made fresh in the test's directory."""
    f = {}
    (in_tmp / "empty.txt").write_bytes(b"")
    f["empty"] = "empty.txt"
    (in_tmp / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00" * 100)
    f["binary"] = "binary.txt"
    (in_tmp / "latin1.txt").write_bytes("caf\xe9 na\xefve ".encode("latin-1") * 200)
    f["latin1"] = "latin1.txt"
    (in_tmp / "short.txt").write_text("too short")
    f["short"] = "short.txt"
    (in_tmp / "magic-images-idx3-ubyte").write_bytes(b"\x00\x00\x09\x03" + b"\x00" * 64)
    f["magic"] = "magic-images-idx3-ubyte"
    (in_tmp / "trunc-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03" + (100).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 500)
    f["truncated"] = "trunc-images-idx3-ubyte"
    (in_tmp / "nolabels-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03" + (1).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 784)
    f["nolabels"] = "nolabels-images-idx3-ubyte"
    (in_tmp / "notnpz.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    f["npz"] = "notnpz.npz"
    os.makedirs(in_tmp / "notarun")
    (in_tmp / "notarun" / "x").write_text("x")
    f["notarun"] = "notarun"
    (in_tmp / "afile").write_text("x")
    f["afile"] = "afile"
    return f


BAD = [
    # (args, what the one line must mention)
    # cnn-demo
    ("cnn-demo --steps -1", "--steps"),
    ("cnn-demo --batch-size 0", "--batch-size"),
    ("cnn-demo --batch-size -5", "--batch-size"),
    ("cnn-demo --lr nan", "--lr"),
    ("cnn-demo --lr inf", "--lr"),
    ("cnn-demo --lr 0", "--lr"),
    ("cnn-demo --pool median", "--pool"),
    ("cnn-demo --padding full", "--padding"),
    ("cnn-demo --dataset cifar10", "--dataset"),
    ("cnn-demo --kernel 0", "--kernel"),
    ("cnn-demo --log-every 0", "--log-every"),
    ("cnn-demo --dataset mnist --data {missing}", "no such file"),
    ("cnn-demo --dataset mnist --data {empty}", "empty"),
    ("cnn-demo --dataset mnist --data {magic}", "magic"),
    ("cnn-demo --dataset mnist --data {truncated}", "truncated"),
    ("cnn-demo --dataset mnist --data {nolabels}", "labels"),
    ("cnn-demo --dataset mnist --data {npz}", "npz"),
    ("cnn-demo --resume {notarun}", "not a dlx run"),
    ("cnn-demo --resume {missing}", "no such directory"),
    ("cnn-demo --steps 1 --out {afile}/run", "cannot create"),
    ("cnn-demo --seed -3", "--seed"),
    # train-lstm
    ("train-lstm --task sorting", "--task"),
    ("train-lstm --cell transformer", "--cell"),
    ("train-lstm --hidden 0", "--hidden"),
    ("train-lstm --steps -2", "--steps"),
    ("train-lstm --temperature -1", "--temperature"),
    ("train-lstm --data {missing}", "no such file"),
    ("train-lstm --data {empty}", "empty"),
    ("train-lstm --data {binary}", "binary"),
    ("train-lstm --data {latin1}", "UTF-8"),
    ("train-lstm --data {short} --seq-len 64", "short"),
    ("train-lstm --lr nan", "--lr"),
    ("train-lstm --layers 0", "--layers"),
    # compare-rnn
    ("compare-rnn --cells rnn,transformer", "--cells"),
    ("compare-rnn --task sorting", "--task"),
    ("compare-rnn --seeds 0", "--seeds"),
    ("compare-rnn --seq-len 0", "--seq-len"),
    ("compare-rnn --seq-len 50,-1", "--seq-len"),
    ("compare-rnn --hidden -4", "--hidden"),
    ("compare-rnn --rnn-activation softsign", "--rnn-activation"),
    # grad-probe
    ("grad-probe --depth 0", "--depth"),
    ("grad-probe --width 0", "--width"),
    ("grad-probe --activation swishy", "--activation"),
    ("grad-probe --init kaiming_custom", "--init"),
    ("grad-probe --arch transformer", "--arch"),
    ("grad-probe --arch rnn --cell mamba", "--cell"),
    ("grad-probe --arch rnn --seq-len 0", "--seq-len"),
    ("grad-probe --clip -1", "--clip"),
    # train-gan
    ("train-gan --dataset cifar10", "--dataset"),
    ("train-gan --seeds 0", "--seeds"),
    ("train-gan --latent-dim 0", "--latent-dim"),
    ("train-gan --loss wasserstein", "--loss"),
    ("train-gan --dataset mnist --data {missing}", "no such file"),
    ("train-gan --dataset mnist --data {magic}", "magic"),
    ("train-gan --lr-g nan", "--lr-g"),
    # bench
    ("bench resnet", "WORKLOAD"),
    ("bench lstm --batch 0", "--batch"),
    ("bench cnn --steps 0", "--steps"),
]


@pytest.mark.parametrize("line, needle", BAD, ids=[b[0] for b in BAD])
def test_bad_invocation_is_one_clear_line_exit_2_and_leaves_nothing(files, in_tmp, line, needle):
    before = sorted(os.listdir(in_tmp))
    args = [a.format(missing="does/not/exist", **files) for a in line.split()]
    r = dlx(*args, "--json") if args[0] != "bench" else dlx(*args)
    assert r.code == 2, (r.code, r.stderr[-2000:])
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert needle.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in r.stderr
    assert sorted(os.listdir(in_tmp)) == before
    assert not os.path.exists(in_tmp / "runs")
