"""`dlx train-gan`: a GAN on images (DCGAN) or 2-D toy mixtures (MLPs), with the
mode-coverage measures of VEEGAN / PacGAN and a classifier judge (options and config only)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from dlx.config import (Common, choice, command, given, layer_count, nonneg_float, positive_float, positive_int,
                        unit_float)
from dlx.errors import UsageError

IMAGES = ("digits", "mnist", "fashion-mnist")
TOYS = ("ring8", "grid25")
DATASETS = IMAGES + TOYS

# Per-dataset defaults, chosen by measurement (5 seeds vmapped on the 2-core CPU):
#   ring8   width 128 depth 2, latent 2, pack 2, batch 128, 4000 steps, lr 1e-3 decayed
#           linearly to 0: 8.0/8 modes, 0.86 high-quality samples in all 5 seeds;
#           --steps 16000: 8.0/8, 0.971 (PacGAN's best: 7.8/8, 0.95).
#   grid25  depth 3, 8000 steps (data scaled by 1/4 for training): 23.2/25, 0.15 HQ;
#           --steps 16000 reaches 24.8/25, 0.65 HQ.
#   digits  DCGAN width 32, latent 32, batch 64, lr 1e-3, 1500 steps: 10/10 classes,
#           label entropy 2.27, 75 CPU-seconds including the one-off judge training.
#   mnist / fashion-mnist: the DCGAN paper's settings (width 64, latent 64, lr 2e-4);
#           measured once on the MNIST test set used as training data (3,000 steps): 10/10
#           classes, label entropy 2.19, fd 105.7 (real test 3.4): digit-like strokes.
# An option the user gives explicitly always wins.
DATASET_DEFAULTS = {
    "ring8": {"steps": 4000, "batch_size": 128, "lr": 1e-3, "log_every": 200, "eval_every": 1000,
              "latent_dim": 2, "width": 128, "depth": 2, "pack": 2},
    "grid25": {"steps": 8000, "batch_size": 128, "lr": 1e-3, "log_every": 400, "eval_every": 2000,
               "latent_dim": 2, "width": 128, "depth": 3, "pack": 2},
    "digits": {"steps": 1500, "batch_size": 64, "lr": 1e-3, "log_every": 100, "eval_every": 500,
               "latent_dim": 32, "width": 32, "depth": 2, "pack": 1},
    "mnist": {"steps": 3000, "batch_size": 64, "lr": 2e-4, "log_every": 100, "eval_every": 1000,
              "latent_dim": 64, "width": 64, "depth": 2, "pack": 1},
}
DATASET_DEFAULTS["fashion-mnist"] = DATASET_DEFAULTS["mnist"]
RING = DATASET_DEFAULTS["ring8"]
DIGITS = DATASET_DEFAULTS["digits"]


@dataclass(frozen=True, kw_only=True)
class TrainGanConfig(Common):
    dataset: str = "digits"
    data: Optional[str] = None
    loss: str = "nonsaturating"
    latent_dim: int = DIGITS["latent_dim"]
    width: int = DIGITS["width"]
    depth: int = 2
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    beta1: float = 0.5
    d_steps: int = 1
    g_fakes: str = "fresh"
    pack: int = 1
    r1: float = 0.0
    ema: float = 0.0
    lr_decay: str = "linear"
    plain: bool = False
    seeds: int = 1


_given = given


@command("train-gan", task="dlx.tasks.train_gan",
         defaults={k: DIGITS[k] for k in ("steps", "batch_size", "lr", "log_every", "eval_every")},
         help="Train a GAN and measure mode collapse: a DCGAN on images (digits built in; mnist / "
              "fashion-mnist from --data) judged by a classifier dlx trains itself (classes covered, "
              "label entropy, Frechet distance), or MLPs on the 2-D toys ring8 / grid25 (modes covered, "
              "high-quality fraction, as in PacGAN). Countermeasures: --pack, --r1, --ema, --lr-decay. "
              "Per-dataset defaults (the ones shown are digits') for --steps, --batch-size, --lr, --log-every, "
              "--eval-every, --latent-dim, --width, --depth, --pack.")
def train_gan(
    dataset: Annotated[str, typer.Option(help="digits (built in, 8x8) | mnist | fashion-mnist (28x28, --data) | ring8 | grid25 (2-D toys).")] = "digits",
    data: Annotated[Optional[str], typer.Option(help="IDX images file (labels beside it) or .npz, for mnist / fashion-mnist.")] = None,
    loss: Annotated[str, typer.Option(help="Generator loss: nonsaturating (-log D(G(z))) | minimax (log(1 - D(G(z)))).")] = "nonsaturating",
    latent_dim: Annotated[int, typer.Option(help="Size of the noise z (default per dataset: toys 2, digits 32, mnist 64; --plain 64).")] = DIGITS["latent_dim"],
    width: Annotated[int, typer.Option(help="Hidden units of the toy MLPs, or the DCGAN's base channel count (default: toys 128, digits 32, mnist 64).")] = DIGITS["width"],
    depth: Annotated[int, typer.Option(help="Hidden layers of each toy MLP (default: ring8 2, grid25 3).")] = 2,
    lr_g: Annotated[Optional[float], typer.Option(help="Generator learning rate (default: --lr).")] = None,
    lr_d: Annotated[Optional[float], typer.Option(help="Discriminator learning rate (default: --lr).")] = None,
    beta1: Annotated[float, typer.Option(help="Adam beta1 of both optimizers (DCGAN: 0.5).")] = 0.5,
    d_steps: Annotated[int, typer.Option(help="Discriminator updates per generator update.")] = 1,
    g_fakes: Annotated[str, typer.Option(help="The generator update's fakes: fresh (new noise, G run again: Goodfellow et al.'s "
                                              "algorithm) | reuse (the last D update's fakes, scored by the updated D: "
                                              "PyTorch's DCGAN example, one G forward fewer per step).")] = "fresh",
    pack: Annotated[int, typer.Option(help="PacGAN packing: D judges K samples at once (toys; default 2, --plain 1).")] = 1,
    r1: Annotated[float, typer.Option(help="R1 penalty gamma/2 E||grad_x D(x)||^2 on real data (0: off).")] = 0.0,
    ema: Annotated[float, typer.Option(help="Evaluate an exponential moving average of G's weights with this decay, e.g. 0.999 (0: off).")] = 0.0,
    lr_decay: Annotated[str, typer.Option(help="linear (to 0 at the last step) | none.")] = "linear",
    plain: Annotated[bool, typer.Option("--plain", help="The textbook GAN: latent 64, no packing, no decay (shows the collapse on the toys).")] = False,
    seeds: Annotated[int, typer.Option(help="Independent GANs (seeds) trained together in one compiled program.")] = 1,
    *,
    common: Common,
) -> TrainGanConfig:
    choice("--dataset", dataset, DATASETS)
    choice("--loss", loss, ("nonsaturating", "minimax"))
    choice("--lr-decay", lr_decay, ("linear", "none"))
    choice("--g-fakes", g_fakes, ("fresh", "reuse"))
    positive_int("--seeds", seeds)
    # Options left at their defaults take the dataset's (a resumed run's saved config wins anyway).
    d = DATASET_DEFAULTS[dataset]
    common = dataclasses.replace(common, **{k: d[k] for k in ("steps", "batch_size", "lr", "log_every", "eval_every")
                                            if not _given(k)})
    latent_dim = latent_dim if _given("latent_dim") else (64 if plain else d["latent_dim"])
    width = width if _given("width") else d["width"]
    depth = depth if _given("depth") else d["depth"]
    pack = pack if _given("pack") else (1 if plain else d["pack"])
    if plain and not _given("lr_decay"):
        lr_decay = "none"
    plain_sets = ("latent_dim", "lr_decay") + (() if dataset in IMAGES else ("pack",))
    if plain and all(_given(k, outside=False) for k in plain_sets):
        raise UsageError("--plain sets " + ", ".join("--" + k.replace("_", "-") for k in plain_sets)
                         + "; with all of them given it does nothing")
    if _given("lr_g", outside=False) and _given("lr_d", outside=False) and _given("lr", outside=False):
        raise UsageError("--lr sets the rate --lr-g or --lr-d leaves out; with both given it does nothing")
    lr_g = common.lr if lr_g is None else lr_g
    lr_d = common.lr if lr_d is None else lr_d
    positive_int("--latent-dim", latent_dim)
    positive_int("--width", width)
    layer_count("--depth", depth)
    positive_float("--lr-g", lr_g)
    positive_float("--lr-d", lr_d)
    unit_float("--beta1", beta1, open_high=True)
    positive_int("--d-steps", d_steps)
    positive_int("--pack", pack)
    nonneg_float("--r1", r1)
    unit_float("--ema", ema, open_high=True)
    if dataset in IMAGES:
        if _given("depth"):
            raise UsageError("--depth sets the 2-D toys' MLPs (ring8, grid25); the DCGAN's layers are fixed")
        if pack != 1:
            raise UsageError("--pack applies to the 2-D toys (ring8, grid25); the DCGAN discriminator judges one image at a time")
    else:
        if data is not None:
            raise UsageError(f"--data is for mnist / fashion-mnist files; {dataset} is generated")
        if common.batch_size % pack:
            raise UsageError(f"--batch-size {common.batch_size} must be a multiple of --pack {pack}")
    return TrainGanConfig(**common.to_dict(), dataset=dataset, data=data, loss=loss, latent_dim=latent_dim,
                          width=width, depth=depth, lr_g=lr_g, lr_d=lr_d, beta1=beta1, d_steps=d_steps,
                          g_fakes=g_fakes, pack=pack, r1=r1, ema=ema, lr_decay=lr_decay, plain=plain, seeds=seeds)
