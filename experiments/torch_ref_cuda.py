"""torch_ref.py's workloads on a CUDA GPU: every tensor and module on the GPU, and the
timer synchronizes before it reads the clock (GPU work is asynchronous).

Usage: python3 experiments/torch_ref_cuda.py PATH/TO/torch_ref.py [torch_ref.py's arguments]
"""
import os
import sys
import time

import torch

ref = sys.argv.pop(1)
sys.path.insert(0, os.path.dirname(os.path.abspath(ref)))
torch.set_default_device("cuda")
import torch_ref  # noqa: E402


def mean_ms(step, steps, warmup):
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1e3


torch_ref.mean_ms = mean_ms
torch_ref.main()
