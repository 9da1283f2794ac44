"""`dlx cnn-demo`: what a CNN does, shown and measured (options and config only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from dlx.config import Common, choice, command, int_list, nonneg_float, nonneg_int, positive_int
from dlx.config import typed as _given
from dlx.errors import UsageError

DATASETS = ("digits", "mnist1d", "mnist", "fashion-mnist")


@dataclass(frozen=True, kw_only=True)
class CnnDemoConfig(Common):
    dataset: str = "digits"
    data: Optional[str] = None
    channels: tuple[int, ...] = (16, 32)
    kernel: int = 3
    stride: int = 1
    padding: str = "same"
    pool: str = "max"
    pool_size: int = 2
    hidden: int = 64
    noise: float = 0.0
    shapes_only: bool = False
    mlp_baseline: bool = True
    feature_maps: int = 4


@command("cnn-demo", task="dlx.tasks.cnn_demo",
         defaults={"steps": 1000, "batch_size": 64, "lr": 1e-3, "log_every": 100, "eval_every": 500},
         help="Train a small CNN (conv-ReLU-pool x2, dense) and show what its layers do: output shapes "
              "against the formula, parameter sharing against an MLP, max vs average pooling under noise, "
              "feature maps as PNG.")
def cnn_demo(
    dataset: Annotated[str, typer.Option(help="digits (built in, 8x8) | mnist1d (generated, 1-D) | mnist | fashion-mnist (--data)")] = "digits",
    data: Annotated[Optional[str], typer.Option(help="IDX images file (labels beside it) or .npz, for mnist / fashion-mnist.")] = None,
    channels: Annotated[str, typer.Option(help="Output channels of the two conv layers, comma-separated.")] = "16,32",
    kernel: Annotated[int, typer.Option(help="Conv kernel size k.")] = 3,
    stride: Annotated[int, typer.Option(help="Conv stride s.")] = 1,
    padding: Annotated[str, typer.Option(help="same (p = k-1, output ceil(n/s)) | valid (p = 0).")] = "same",
    pool: Annotated[str, typer.Option(help="max | avg | none.")] = "max",
    pool_size: Annotated[int, typer.Option(help="Pooling window and stride.")] = 2,
    hidden: Annotated[int, typer.Option(help="Width of the dense layer before the logits (0: none).")] = 64,
    noise: Annotated[float, typer.Option(help="Also evaluate with additive Gaussian noise of this std (0: off).")] = 0.0,
    shapes_only: Annotated[bool, typer.Option("--shapes-only", help="Print the layer shape table and exit; no training.")] = False,
    mlp_baseline: Annotated[bool, typer.Option(help="Train MLPs of growing width to find one that matches the CNN.")] = True,
    feature_maps: Annotated[int, typer.Option(help="Test images whose feature maps are saved as PNG.")] = 4,
    *,
    common: Common,
) -> CnnDemoConfig:
    choice("--dataset", dataset, DATASETS)
    chans = int_list("--channels", channels, unique=False)  # per layer: 32,32 is two layers
    if len(chans) != 2:
        raise UsageError(f"--channels takes two values (one per conv layer), got {channels!r}")
    positive_int("--kernel", kernel)
    positive_int("--stride", stride)
    choice("--padding", padding, ("same", "valid"))
    choice("--pool", pool, ("max", "avg", "none"))
    positive_int("--pool-size", pool_size)
    nonneg_int("--hidden", hidden)
    nonneg_float("--noise", noise)
    nonneg_int("--feature-maps", feature_maps)
    if pool == "none" and _given("pool_size"):
        raise UsageError("--pool-size applies to --pool max or avg; --pool none has no pooling layers")
    if shapes_only:
        # The table needs the data's shape and the layers; these act only on training (with
        # --out the table's records are saved there, as a run's are).
        for name in ("steps", "lr", "batch_size", "log_every", "eval_every", "noise", "mlp_baseline",
                     "feature_maps", "resume", "devices", "seed"):
            if _given(name):
                flag = "--" + name.replace("_", "-")
                if name == "mlp_baseline":   # a switch: name the spelling typed
                    flag = "--mlp-baseline / --no-mlp-baseline"
                raise UsageError(f"{flag} does nothing with --shapes-only (the layer table alone: no training)")
    return CnnDemoConfig(**common.to_dict(), dataset=dataset, data=data, channels=chans, kernel=kernel,
                         stride=stride, padding=padding, pool=pool, pool_size=pool_size, hidden=hidden,
                         noise=noise, shapes_only=shapes_only, mlp_baseline=mlp_baseline,
                         feature_maps=feature_maps)
