"""PNG figures with matplotlib (Agg backend: no display needed, imported only when drawing)."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections import defaultdict


def _plt():
    _matplotlib_dirs()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@functools.cache   # once a process: the checks create directories
def _matplotlib_dirs() -> None:
    if "MPLCONFIGDIR" not in os.environ:
        # With an unwritable home, matplotlib warned twice on stderr (also under --quiet)
        # and built its font cache afresh in a temporary directory on every run: dlx's
        # cache directory holds it instead where that is writable (unless a matplotlibrc
        # of the user's sits in the config directory), else the warnings are quiet.
        from dlx import runtime

        home = os.path.expanduser("~")
        config = os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "matplotlib")
        cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "matplotlib")
        if not (_writable(config) and _writable(cache)):
            ours = os.path.join(runtime.cache_dir(), "matplotlib")
            if not os.path.isfile(os.path.join(config, "matplotlibrc")) and _writable(ours):
                os.environ["MPLCONFIGDIR"] = ours
            else:
                logging.getLogger("matplotlib").setLevel(logging.ERROR)


def _writable(path: str) -> bool:
    """Whether path is, or can be made, a writable directory."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def tight_layout(fig) -> None:
    """fig.tight_layout(), quiet where it cannot fit the decorations (a legend of 60 layers'
    gates): matplotlib warned on stderr, also under --quiet; the figure is drawn as it is."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tight layout not applied")
        fig.tight_layout()


def legend(ax, **kw) -> None:
    """ax.legend where the axes hold labelled artists: an empty one (a run of 0 steps) only
    made matplotlib warn on stderr, also under --quiet."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def curves_from_metrics(metrics_path: str, png_path: str, title: str) -> bool:
    """Loss curves (and every other numeric train/eval metric) from metrics.jsonl.
    One panel per metric, one line per tagged fit (cell, model, ...). False if nothing to plot."""
    series: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    skip = {"schema", "step", "ms_per_step", "examples_per_s", "seq_len", "width", "elapsed_s"}
    try:
        with open(metrics_path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                if rec.get("event") not in ("train", "eval"):
                    continue
                tags = [f"{k}={v}" for k, v in rec.items()
                        if isinstance(v, str) and k not in ("event", "run", "command")]
                label = " ".join(tags) or "run"
                for k, v in rec.items():
                    if k in skip or isinstance(v, bool) or not isinstance(v, (int, float)):
                        continue
                    if isinstance(v, float) and not math.isfinite(v):
                        continue
                    series[f"{rec['event']}/{k}"][label].append((rec["step"], v))
    except (OSError, ValueError):
        return False
    names = sorted(series, key=lambda n: (0 if "loss" in n else 1, n))[:12]
    if not names:
        return False
    plt = _plt()
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for label, pts in series[name].items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, marker="." if len(pts) < 30 else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if "loss" in name and all(p[1] > 0 for pts in series[name].values() for p in pts):
            ax.set_yscale("log")
        if len(series[name]) > 1:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    tight_layout(fig)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return True


def image_grid(images, png_path: str, title: str, rows: int | None = None, cmap: str = "gray",
               row_labels: list[str] | None = None) -> None:
    """Grid of 2-D images (N, H, W); N arranged in `rows` rows."""
    import numpy as np

    plt = _plt()
    images = np.asarray(images)
    n = len(images)
    rows = rows or int(math.ceil(math.sqrt(n)))
    cols = int(math.ceil(n / rows))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1 + 0.6, rows * 1.1 + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap=cmap, interpolation="nearest")
    if row_labels:
        for r, lab in enumerate(row_labels[:rows]):
            axes[r, 0].set_title(lab, fontsize=6, loc="left")
    fig.suptitle(title, fontsize=9)
    tight_layout(fig)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
