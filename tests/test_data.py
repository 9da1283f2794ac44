"""28x28 image files as users hand them to `--data` (MNIST's own IDX files, gzipped or not,
with the labels file beside; or an npz): read into float images in [0, 1] with every image
still paired with its label. No JAX: these tests are about the files."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from dlx.data import image_file


def _images(n: int) -> tuple[np.ndarray, np.ndarray]:
    # Image i is filled with the value 20 * label + 1, so a pairing can be checked after shuffling.
    y = (np.arange(n) * 7) % 10
    x = np.repeat((20 * y + 1).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
    return x, y.astype(np.uint8)


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


def _paired(d) -> None:
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1)
        np.testing.assert_allclose(x[:, 0, 0, 0] * 255.0, 20 * y + 1, rtol=1e-6)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_images_with_labels_beside_split_five_to_one(tmp_path, gz):
    x, y = _images(60)
    suffix = ".gz" if gz else ""
    write = (lambda p, b: p.write_bytes(gzip.compress(b))) if gz else (lambda p, b: p.write_bytes(b))
    write(tmp_path / f"t10k-images-idx3-ubyte{suffix}", _idx(x))
    write(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", _idx(y))
    d = image_file("mnist", str(tmp_path / f"t10k-images-idx3-ubyte{suffix}"))
    assert (len(d.x_train), len(d.x_test)) == (50, 10)   # one set: 5:1, as the README says
    assert 0.0 < d.x_train.min() and d.x_train.max() <= 1.0
    assert sorted(np.concatenate([d.y_train, d.y_test]).tolist()) == sorted(y.tolist())
    _paired(d)
    assert image_file("mnist", str(tmp_path / f"t10k-images-idx3-ubyte{suffix}")).y_test.tolist() == d.y_test.tolist()


def test_npz_with_train_and_test_arrays_keeps_them(tmp_path):
    x, y = _images(30)
    np.savez(tmp_path / "f.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    d = image_file("fashion-mnist", str(tmp_path / "f.npz"))
    assert d.y_train.tolist() == y[:20].tolist() and d.y_test.tolist() == y[20:].tolist()
    _paired(d)


def _bad_npz_cases():
    x, y = _images(12)
    f = x.astype(np.float32)
    return {
        "count": (dict(x=x[:10], y=y[:9]), "10 images but 9 labels"),
        "fractional labels": (dict(x=x, y=y + 0.5), "whole numbers"),
        "one-hot labels": (dict(x=x, y=np.eye(10)[y]), "one class index per image"),
        "empty": (dict(x=x[:0], y=y[:0]), "no training images"),
        "too few to split": (dict(x=x[:3], y=y[:3]), "at least 4 images"),
        "empty test set": (dict(x_train=x, y_train=y, x_test=x[:0], y_test=y[:0]), "no test images"),
        "NaN pixels": (dict(x=np.full_like(f, np.nan), y=y), "NaN or infinite"),
        "negative pixels": (dict(x=f - 300.0, y=y), "[0, 1] or [0, 255]"),
        "object array": (dict(x=np.array([None] * 12, dtype=object), y=y), "without pickle"),
        "text labels": (dict(x=x, y=np.array(["a"] * 12)), "integers"),
        # x_train in [0, 1], x_test in [0, 255]: the scale came from x_train alone, and the
        # test images went in 255x too bright.
        "sets in two ranges": (dict(x_train=f / 255, y_train=y, x_test=x, y_test=y), "different ranges"),
    }


@pytest.mark.parametrize("case", list(_bad_npz_cases()))
def test_bad_npz_is_refused_before_training_with_a_message_naming_the_problem(tmp_path, case):
    from dlx.errors import UsageError
    arrays, message = _bad_npz_cases()[case]
    path = tmp_path / "bad.npz"
    if case == "object array":
        np.savez(path, allow_pickle=True, **arrays)
    else:
        np.savez(path, **arrays)
    with pytest.raises(UsageError, match=None) as e:
        image_file("mnist", str(path))
    assert message in str(e.value) and str(path) in str(e.value)


def test_damaged_files_are_refused_not_internal_errors(tmp_path):
    # Each of these was an internal error (exit 1): damaged deflate data, an IDX header
    # whose size overflows int64, a .npy array saved under a .npz name.
    import gzip
    import struct

    from dlx.errors import UsageError

    x, y = _images(12)
    packed = bytearray(gzip.compress(_idx(x)))
    for i in range(20, 60):
        packed[i] ^= 0xFF
    (tmp_path / "bad-images-idx3-ubyte.gz").write_bytes(bytes(packed))
    (tmp_path / "huge-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + struct.pack(">III", 2**31, 2**31, 4))
    np.save(tmp_path / "arr.npy", x)
    os.replace(tmp_path / "arr.npy", tmp_path / "arr.npz")
    for name, message in (("bad-images-idx3-ubyte.gz", "damaged gzip data"),
                          ("huge-images-idx3-ubyte", "truncated or padded IDX data"),
                          ("arr.npz", "not a readable .npz file")):
        with pytest.raises(UsageError) as e:
            image_file("mnist", str(tmp_path / name))
        assert message in str(e.value), str(e.value)


def test_a_damaged_dataset_cache_is_rebuilt_not_an_internal_error(tmp_path, monkeypatch):
    from dlx.data import digits

    monkeypatch.setenv("DLX_CACHE_DIR", str(tmp_path))
    good = digits()
    for name in os.listdir(tmp_path):
        if name.startswith("digits"):
            (tmp_path / name).write_bytes(b"PK\x03\x04garbage")   # a zip header, then nothing
    again = digits()
    assert (again.y_train == good.y_train).all() and again.x_train.shape == good.x_train.shape


def test_a_byte_order_mark_is_not_a_character_of_the_corpus(tmp_path):
    from dlx.data import load_text

    (tmp_path / "bom.txt").write_bytes(("\ufeff" + "the cat sat on the mat. " * 20).encode("utf-8"))
    (tmp_path / "plain.txt").write_text("the cat sat on the mat. " * 20, encoding="utf-8")
    a, b = load_text(str(tmp_path / "bom.txt")), load_text(str(tmp_path / "plain.txt"))
    assert a.text.startswith("the cat") and set(a.text) == set(b.text)


def test_a_labels_file_given_as_data_is_named_as_such(tmp_path):
    # It said "no labels file beside it" of the labels file itself.
    from dlx.errors import UsageError

    x, y = _images(20)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(x))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(y))
    with pytest.raises(UsageError, match="a labels file; --data names the images file"):
        image_file("mnist", str(tmp_path / "t10k-labels-idx1-ubyte"))
