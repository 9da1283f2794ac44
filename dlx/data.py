"""Datasets as plain numpy: built-in ones from code or installed packages, the rest from
files the user names with --data. Nothing here touches the network.

Every loader validates what it reads and raises `UsageError` with one clear line (wrong
magic, truncated file, labels missing, not UTF-8, ...), before any run directory exists.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import struct
import sys
import zlib
from dataclasses import dataclass

import numpy as np

from dlx.errors import UsageError

IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist")


@dataclass
class ImageData:
    """Images (N, H, W, C) float32 in [0, 1]; labels int32 in [0, classes)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int = 10
    source: str = "built-in"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def describe(self) -> dict:
        return {"dataset": self.name, "source": self.source, "shape": list(self.shape),
                "train_examples": int(len(self.y_train)), "test_examples": int(len(self.y_test))}


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int = 0):
    """Fixed split: the same permutation on every machine (legacy RandomState is frozen)."""
    perm = np.random.RandomState(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def _cached(name: str, keys: tuple[str, ...], build) -> dict[str, np.ndarray]:
    """Arrays `build()` returns, kept as an npz in dlx's cache directory after the first
    call: a built-in dataset then loads in milliseconds, without importing its package."""
    from dlx.runtime import cache_dir

    path = os.path.join(cache_dir(), name)
    try:
        with np.load(path) as f:
            return {k: f[k] for k in keys}
    except Exception:  # missing, or damaged from outside (a bad zip, a wrong array): rebuild
        pass
    arrays = build()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + f".{os.getpid()}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # atomic: concurrent runs never read a half-written file
    except OSError:
        pass  # no cache: build again next time
    return arrays


def digits() -> ImageData:
    """scikit-learn's bundled 8x8 digits (1,797 images, pixel values 0..16): 1,438 train, 359 test."""
    def build():
        from sklearn.datasets import load_digits  # ~1.3 s of imports: only on a cold cache

        d = load_digits()
        return {"images": d.images, "target": d.target}

    arrays = _cached("digits-v1.npz", ("images", "target"), build)
    x = (arrays["images"].astype(np.float32) / 16.0)[..., None]
    y = arrays["target"].astype(np.int32)
    return ImageData("digits", *_split(x, y, 0.2))


def mnist1d() -> ImageData:
    """MNIST-1D (Greydanus 2020), generated locally by the mnist1d package with its default
    arguments (4,000 train / 1,000 test signals of length 40), cached after the first call.
    Returned as (N, 40, 1) "images" of one spatial axis; values are standardised, not [0, 1]."""
    def build():
        from mnist1d.data import get_dataset_args, make_dataset

        saved = np.random.get_state()  # make_dataset reseeds numpy's global generator
        try:
            d = make_dataset(get_dataset_args())
        finally:
            np.random.set_state(saved)
        return {k: d[k] for k in ("x", "y", "x_test", "y_test")}

    arrays = _cached("mnist1d-default-v1.npz", ("x", "y", "x_test", "y_test"), build)
    f32 = lambda a: np.asarray(a, np.float32)[..., None]  # noqa: E731
    return ImageData("mnist1d", f32(arrays["x"]), np.asarray(arrays["y"], np.int32),
                     f32(arrays["x_test"]), np.asarray(arrays["y_test"], np.int32))


# ---- IDX / npz files ---------------------------------------------------------------------

def _read_bytes(path: str, what: str) -> bytes:
    if not os.path.exists(path):
        raise UsageError(f"{what} {path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{what} {path}: is a directory, expected a file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot read ({e.strerror})") from None
    if not raw:
        raise UsageError(f"{what} {path}: file is empty")
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise UsageError(f"{what} {path}: damaged gzip data ({e})") from None
    return raw


def read_idx(path: str, what: str = "--data") -> np.ndarray:
    """IDX file (raw or gzipped) as a uint8 array; checks magic and length."""
    raw = _read_bytes(path, what)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UsageError(f"{what} {path}: not an IDX file of unsigned bytes (wrong magic number)")
    ndim = raw[3]
    if ndim not in (1, 3) or len(raw) < 4 + 4 * ndim:
        raise UsageError(f"{what} {path}: IDX header names {ndim} dimensions; expected 3 (images) or 1 (labels)")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    need = math.prod(dims)  # Python ints: a numpy product wraps past 2**63 and could pass this check
    if len(body) != need:
        raise UsageError(f"{what} {path}: truncated or padded IDX data ({len(body)} bytes where {need} expected)")
    return np.frombuffer(body, np.uint8).reshape(dims)


def _labels_beside(path: str) -> str | None:
    d, base = os.path.split(path)
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1"), ("images", "labels")):
        if a in base:
            cand = os.path.join(d, base.replace(a, b))
            for c in (cand, cand[:-3] if cand.endswith(".gz") else cand + ".gz"):
                if os.path.exists(c):
                    return c
    return None


def _check_images(x: np.ndarray, y: np.ndarray, path: str, classes: int = 10):
    """28x28 images with finite pixels in [0, 255] and one integer label in 0..classes-1 each."""
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise UsageError(f"--data {path}: images must be a numeric array, got dtype {x.dtype}")
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise UsageError(f"--data {path}: expected 28x28 images, got shape {tuple(x.shape[1:])}")
    if y.ndim != 1:
        raise UsageError(f"--data {path}: labels must be one class index per image, got shape {tuple(y.shape)}")
    if len(y) != len(x):
        raise UsageError(f"--data {path}: {len(x)} images but {len(y)} labels")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise UsageError(f"--data {path}: labels must be integers, got dtype {y.dtype}")
    if len(y) and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise UsageError(f"--data {path}: labels must be whole numbers (class indices)")
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise UsageError(f"--data {path}: labels must lie in 0..{classes - 1}")
    if len(x) and not np.all(np.isfinite(x)):
        raise UsageError(f"--data {path}: images hold NaN or infinite pixels")
    if len(x) and (x.min() < 0 or x.max() > 255):
        raise UsageError(f"--data {path}: pixels must lie in [0, 1] or [0, 255]")


def _check_split(sets, path: str, *, single: bool):
    for (x, _), which in zip(sets, ("training", "test")):
        if len(x) == 0:
            hint = " (a single set needs at least 4 images to split 5:1 into training and test)" if single else ""
            raise UsageError(f"--data {path}: no {which} images{hint}")


def image_file(name: str, path: str) -> ImageData:
    """`mnist` / `fashion-mnist` from a .npz (x_train/y_train/x_test/y_test, or x/y) or an
    IDX images file with its labels beside it (t10k-images-idx3-ubyte[.gz] ->
    t10k-labels-idx1-ubyte[.gz]). A single set is split 5:1 into train and test."""
    if path.lower().endswith(".npz"):
        raw = _read_bytes(path, "--data")
        try:
            f = np.load(io.BytesIO(raw), allow_pickle=False)
        except Exception:
            f = None
        if not isinstance(f, np.lib.npyio.NpzFile):  # unreadable, or a .npy array under that name
            raise UsageError(f"--data {path}: not a readable .npz file")
        keys = set(f.files)

        def array(k):
            try:
                return np.asarray(f[k])
            except Exception:  # object arrays need pickle, which dlx never loads from files
                raise UsageError(f"--data {path}: array {k} cannot be read without pickle (an object array?)") from None

        if {"x_train", "y_train", "x_test", "y_test"} <= keys:
            parts, single = [array(k) for k in ("x_train", "y_train", "x_test", "y_test")], False
            for xs, ys in ((parts[0], parts[1]), (parts[2], parts[3])):
                _check_images(xs, ys, path)
        elif {"x", "y"} <= keys:
            x, y = array("x"), array("y")
            _check_images(x, y, path)  # before the split, which would hide a count mismatch
            parts, single = list(_split(x, y, 1 / 6)), True
        else:
            raise UsageError(f"--data {path}: .npz needs arrays x_train, y_train, x_test, y_test (or x, y); has {sorted(keys)}")
        _check_split(((parts[0], parts[1]), (parts[2], parts[3])), path, single=single)
        # One range for the file: from all its images (x_train's alone let an x_test in
        # [0, 255] through, 255x too bright), and two sets in different ones are refused.
        top = [float(np.max(parts[0])), float(np.max(parts[2]))]
        if not single and max(top) > 1.0 and 0.0 < min(top) <= 1.0:
            raise UsageError(f"--data {path}: x_train and x_test are in different ranges (largest pixel "
                             f"{top[0]:g} vs {top[1]:g}): give both in [0, 1] or both in [0, 255]")
        scale = 255.0 if max(top) > 1.0 else 1.0
        x_tr, y_tr, x_te, y_te = parts
    else:
        x = read_idx(path)
        lab = _labels_beside(path)
        if lab is None:
            if x.ndim == 1:   # the labels file itself
                raise UsageError(f"--data {path}: a labels file; --data names the images file (its "
                                 "'images-idx3' name), and the labels are read from beside it")
            raise UsageError(f"--data {path}: no labels file beside it (expected the name with 'labels-idx1' for 'images-idx3')")
        y = read_idx(lab, "labels")
        if x.ndim != 3:
            raise UsageError(f"--data {path}: an IDX images file has 3 dimensions, this one has {x.ndim}")
        _check_images(x, y.astype(np.int64), path)
        x_tr, y_tr, x_te, y_te = _split(x, y, 1 / 6)
        _check_split(((x_tr, y_tr), (x_te, y_te)), path, single=True)
        scale = 255.0
    f32 = lambda a: (np.asarray(a, np.float32) / scale)[..., None]  # noqa: E731
    i32 = lambda a: np.asarray(a, np.int32)  # noqa: E731
    return ImageData(name, f32(x_tr), i32(y_tr), f32(x_te), i32(y_te), source=os.path.abspath(path))


def load_images(name: str, path: str | None) -> ImageData:
    """The image dataset a command asked for: built in, or from --data."""
    if name == "digits":
        if path:
            raise UsageError("--data is for mnist / fashion-mnist files; digits is built in")
        return digits()
    if name == "mnist1d":
        if path:
            raise UsageError("--data is for mnist / fashion-mnist files; mnist1d is generated locally")
        return mnist1d()
    if name in ("mnist", "fashion-mnist"):
        if not path:
            raise UsageError(f"--dataset {name} needs --data PATH (an IDX images file with its labels beside it, or a .npz)")
        return image_file(name, path)
    raise UsageError(f"--dataset must be one of digits, mnist1d, mnist, fashion-mnist; got {name!r}")


# ---- text ---------------------------------------------------------------------------------

@dataclass
class Corpus:
    text: str
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def describe(self) -> dict:
        return {"corpus": self.source, "corpus_sha256": self.sha256, "corpus_chars": len(self.text),
                "vocab_size": len(set(self.text))}


def builtin_corpus() -> Corpus:
    """English prose every Python installation carries: the pydoc topics (~465 KB)."""
    from pydoc_data.topics import topics

    return Corpus("".join(topics[k] for k in sorted(topics)), "built-in:pydoc-topics")


def load_text(path: str | None, *, min_chars: int = 2) -> Corpus:
    """The built-in corpus, a UTF-8 text file, or stdin ('-')."""
    if path is None:
        return builtin_corpus()
    if path == "-":
        raw = sys.stdin.buffer.read()
        if not raw:
            raise UsageError("--data -: nothing on stdin")
        source = "stdin"
    else:
        raw = _read_bytes(path, "--data")
        source = os.path.abspath(path)
    if b"\x00" in raw[:65536]:
        raise UsageError(f"--data {path}: looks binary (NUL bytes); expected UTF-8 text")
    try:
        text = raw.decode("utf-8-sig")   # a byte-order mark says how the file is encoded; it is not text
    except UnicodeDecodeError as e:
        raise UsageError(f"--data {path}: not valid UTF-8 (byte {e.start})") from None
    if len(text) < min_chars:
        raise UsageError(f"--data {path}: only {len(text)} characters; need at least {min_chars}")
    return Corpus(text, source)
