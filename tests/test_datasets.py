"""Tests for ganref/datasets.py (IDX / CIFAR-10 binary loaders, checksums, fetch) and ganref.data's
stacked digits.

The loaders are tested on small files in the real formats, written here byte by byte from the
published format descriptions (IDX: LeCun et al.; CIFAR-10 binary: Krizhevsky 2009), so nothing
is downloaded. fetch() is tested through file:// URLs and an unreachable http://127.0.0.1:9.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency

from ganref import data, datasets
from ganref.datasets import RemoteFile

REPO = Path(__file__).resolve().parents[1]
IDX_IMAGES_MAGIC = b"\x00\x00\x08\x03"  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = b"\x00\x00\x08\x01"  # 0x00000801: unsigned bytes, 1 dimension


# ----------------------------------------------------------------------------- file writers

def idx_bytes(magic: bytes, array: np.ndarray) -> bytes:
    """An IDX file: magic, big-endian int32 sizes, then the uint8 values row-major."""
    return magic + b"".join(struct.pack(">i", s) for s in array.shape) + array.astype(np.uint8).tobytes()


def write(path: Path, payload: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # the two ends of the range
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def write_mnist(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> None:
    ext = ".gz" if gz else ""
    write(folder / f"{prefix}-images-idx3-ubyte{ext}", idx_bytes(IDX_IMAGES_MAGIC, images), gz)
    write(folder / f"{prefix}-labels-idx1-ubyte{ext}", idx_bytes(IDX_LABELS_MAGIC, labels), gz)


def cifar_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary: per image 1 label byte, then the red, green and blue 32x32 planes row-major."""
    out = bytearray()
    for img, lab in zip(images, labels):
        out.append(int(lab))
        for channel in range(3):
            for row in range(32):
                out += bytes(int(v) for v in img[channel, row])
    return bytes(out)


def cifar_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8),
            rng.integers(0, 10, size=n, dtype=np.uint8))


CIFAR_COUNTS = {"data_batch_1.bin": 3, "data_batch_2.bin": 2, "data_batch_3.bin": 1,
                "data_batch_4.bin": 2, "data_batch_5.bin": 1, "test_batch.bin": 4}


def cifar_files(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: cifar_arrays(n, seed + i) for i, (name, n) in enumerate(CIFAR_COUNTS.items())}


def assert_pixels(x: torch.Tensor, pixels: np.ndarray) -> None:
    """x = pixels / 255 * 2 - 1, checked both ways: values to 1e-6 and the bytes recovered exactly."""
    expected = torch.from_numpy(pixels.astype(np.float64)) / 127.5 - 1.0
    torch.testing.assert_close(x.double(), expected, rtol=0.0, atol=1e-6)
    recovered = ((x.double() + 1.0) * 127.5).round().to(torch.uint8)
    assert torch.equal(recovered, torch.from_numpy(pixels.copy()))


# ----------------------------------------------------------------------------- MNIST / Fashion-MNIST

def test_load_mnist_gz_roundtrip(tmp_path):
    images, labels = mnist_arrays(7, seed=1)
    write_mnist(tmp_path / "mnist", "train", images, labels, gz=True)
    x, y = datasets.load_mnist("train", root=tmp_path, verify=False)
    assert x.shape == (7, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (7,) and y.dtype == torch.int64
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    assert_pixels(x[:, 0], images)
    assert x[0, 0, 0, 0].item() == -1.0 and x[0, 0, 0, 1].item() == 1.0


def test_load_fashion_uncompressed_test_split(tmp_path):
    images, labels = mnist_arrays(5, seed=2)
    write_mnist(tmp_path / "fashion_mnist", "t10k", images, labels, gz=False)
    x, y = datasets.load_mnist("test", root=tmp_path, kind="fashion")
    assert x.shape == (5, 1, 28, 28)
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    assert_pixels(x[:, 0], images)
    with pytest.raises(FileNotFoundError, match="mnist file t10k-images-idx3-ubyte.gz"):
        datasets.load_mnist("test", root=tmp_path, kind="mnist")  # the sets live in separate folders


def test_read_idx_header_and_layout(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write(tmp_path / "a.idx", idx_bytes(IDX_IMAGES_MAGIC, a), gz=False)
    out = datasets.read_idx(path, 3)
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, a)


def test_bad_magic_number(tmp_path):
    images, labels = mnist_arrays(3, seed=3)
    write_mnist(tmp_path / "mnist", "train", images, labels)
    bad = b"\x00\x00\x08\x02" + idx_bytes(IDX_IMAGES_MAGIC, images)[4:]  # says 2 dimensions
    write(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", bad, gz=True)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: bad magic number 0x00000802, "
                                         r"expected 0x00000803"):
        datasets.load_mnist("train", root=tmp_path, verify=False)
    # labels fed where images are expected: the magic number catches the swap
    with pytest.raises(ValueError, match="bad magic number 0x00000801"):
        datasets.read_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", 3)


def test_truncated_and_oversized_idx(tmp_path):
    images, labels = mnist_arrays(4, seed=4)
    payload = idx_bytes(IDX_IMAGES_MAGIC, images)
    short = write(tmp_path / "short", payload[:-100], gz=True)
    with pytest.raises(ValueError, match=r"short: truncated: the header promises 3,136 values .* holds 3,036"):
        datasets.read_idx(short, 3)
    header_only = write(tmp_path / "header", payload[:10], gz=False)
    with pytest.raises(ValueError, match="header: truncated: 10 bytes, shorter than the 16-byte IDX header"):
        datasets.read_idx(header_only, 3)
    long = write(tmp_path / "long", payload + b"\x00" * 5, gz=False)
    with pytest.raises(ValueError, match="long: wrong size: 5 bytes after the 3,136 values"):
        datasets.read_idx(long, 3)
    cut_gzip = tmp_path / "cut.gz"
    cut_gzip.write_bytes(gzip.compress(payload)[:-30])  # a download cut short
    with pytest.raises(ValueError, match=r"cut\.gz: truncated gzip stream"):
        datasets.read_idx(cut_gzip, 3)


@pytest.mark.parametrize("sizes", [(2**21, 2**21, 2**21),   # 2**63: the old int64 product wrapped to < 0
                                   (2**31, 2**31, 4),        # 2**64: wrapped to 0 ("100 bytes after 0 values")
                                   (2**32 - 1,) * 3])        # wrapped to 12,884,901,887, a wrong count
def test_idx_header_whose_sizes_overflow_names_the_file(tmp_path, sizes):
    """Issue 11, item 9: sizes whose product overflows int64 gave a wrong count or a wrong message."""
    path = write(tmp_path / "huge-idx3-ubyte", IDX_IMAGES_MAGIC + struct.pack(">3I", *sizes) + bytes(100), gz=False)
    with pytest.raises(ValueError, match=r"huge-idx3-ubyte: corrupt header: the sizes .* multiply to [\d,]+ values"):
        datasets.read_idx(path, 3)


def test_images_and_labels_must_match(tmp_path):
    images, labels = mnist_arrays(4, seed=5)
    write_mnist(tmp_path / "mnist", "train", images, labels[:3])
    with pytest.raises(ValueError, match="holds 4 images but .*train-labels-idx1-ubyte.gz holds 3 labels"):
        datasets.load_mnist("train", root=tmp_path, verify=False)
    labels[2] = 10
    write_mnist(tmp_path / "mnist", "train", images, labels)
    with pytest.raises(ValueError, match="bad label 10 at record 2"):
        datasets.load_mnist("train", root=tmp_path, verify=False)


def test_mnist_checksums(tmp_path, monkeypatch):
    images, labels = mnist_arrays(3, seed=6)
    folder = tmp_path / "mnist"
    write_mnist(folder, "train", images, labels)
    img = folder / "train-images-idx3-ubyte.gz"
    # against the real published values, a small file is caught by its size before any hashing
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: wrong size: .* expected 9,912,422"):
        datasets.load_mnist("train", root=tmp_path)

    def patch(name: str, sha256: str | None) -> None:
        path = folder / name
        table = tuple(RemoteFile(r.name, r.urls, sha256, path.stat().st_size) if r.name == name else r
                      for r in datasets.REMOTE_FILES["mnist"])
        monkeypatch.setitem(datasets.REMOTE_FILES, "mnist", table)

    right = hashlib.sha256(img.read_bytes()).hexdigest()
    patch("train-labels-idx1-ubyte.gz", hashlib.sha256((folder / "train-labels-idx1-ubyte.gz").read_bytes()).hexdigest())
    patch("train-images-idx3-ubyte.gz", "0" * 64)
    with pytest.raises(ValueError, match=f"checksum mismatch: SHA-256 {right}, expected 0{{64}}"):
        datasets.load_mnist("train", root=tmp_path)
    patch("train-images-idx3-ubyte.gz", right)
    x, y = datasets.load_mnist("train", root=tmp_path)
    assert_pixels(x[:, 0], images)
    assert datasets.sha256_file(img) == right
    # no published checksum: the check is skipped with a warning naming that file only
    patch("train-images-idx3-ubyte.gz", None)
    with pytest.warns(UserWarning, match=r"no published SHA-256 is known for train-images-idx3-ubyte\.gz") as rec:
        datasets.load_mnist("train", root=tmp_path)
    assert len(rec) == 1


def test_data_root_env_override(tmp_path, monkeypatch):
    images, labels = mnist_arrays(2, seed=7)
    write_mnist(tmp_path / "env" / "mnist", "t10k", images, labels)
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "env"))
    assert datasets.data_root() == tmp_path / "env"
    x, y = datasets.load_mnist("test", verify=False)
    assert_pixels(x[:, 0], images)
    assert datasets.data_root(tmp_path / "arg") == tmp_path / "arg"  # the argument wins over the env var
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "arg" / "mnist")):
        datasets.load_mnist("test", root=tmp_path / "arg")
    monkeypatch.delenv(datasets.DATA_ENV)
    monkeypatch.chdir(tmp_path)
    assert datasets.data_root() == tmp_path / "data"


def test_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_mnist("train", root=tmp_path)
    msg = str(info.value)
    assert "ganref data fetch mnist" in msg
    assert "https://storage.googleapis.com/cvdf-datasets/mnist/train-images-idx3-ubyte.gz" in msg
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in msg
    with pytest.raises(FileNotFoundError, match=r"cifar-10-binary\.tar\.gz"):
        datasets.load_cifar10("test", root=tmp_path)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        datasets.load_mnist("val", root=tmp_path)
    with pytest.raises(ValueError, match="kind must be 'mnist' or 'fashion', got 'kmnist'"):
        datasets.load_mnist(root=tmp_path, kind="kmnist")
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'all'"):
        datasets.load_cifar10("all", root=tmp_path)


# ----------------------------------------------------------------------------- CIFAR-10 binary

def expected_cifar(files, split):
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    return (np.concatenate([files[n][0] for n in names]),
            np.concatenate([files[n][1] for n in names]).astype(np.int64))


def test_cifar_record_layout(tmp_path):
    """One record by hand: label 7, red plane all 1, green 2, blue 3, except one marked pixel per plane."""
    img = np.stack([np.full((32, 32), v, np.uint8) for v in (1, 2, 3)])
    img[0, 0, 1] = 200  # red, row 0, column 1: byte 1 + 1 of the record
    img[1, 1, 0] = 201  # green, row 1, column 0: byte 1 + 1024 + 32
    img[2, 31, 31] = 202  # blue, last pixel: the record's last byte
    record = cifar_records(img[None], np.array([7]))
    assert len(record) == 3073 and record[0] == 7 and record[2] == 200
    assert record[1 + 1024 + 32] == 201 and record[-1] == 202
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    (folder / "test_batch.bin").write_bytes(record)
    x, y = datasets.load_cifar10("test", root=tmp_path)
    assert x.shape == (1, 3, 32, 32) and y.tolist() == [7]
    assert_pixels(x, img[None])


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_extracted_roundtrip(tmp_path, split):
    files = cifar_files(seed=10)
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name, (images, labels) in files.items():
        (folder / name).write_bytes(cifar_records(images, labels))
    x, y = datasets.load_cifar10(split, root=tmp_path)
    pixels, labels = expected_cifar(files, split)
    assert x.shape == (len(labels), 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(y, torch.from_numpy(labels))
    assert_pixels(x, pixels)


def write_cifar_tar(path: Path, files, extra: dict[str, bytes] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    members = {f"cifar-10-batches-bin/{n}": cifar_records(*a) for n, a in files.items()}
    members["cifar-10-batches-bin/batches.meta.txt"] = b"airplane\nautomobile\n"
    members.update(extra or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_cifar_from_archive(tmp_path, monkeypatch):
    files = cifar_files(seed=20)
    archive = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    write_cifar_tar(archive, files)
    with pytest.raises(ValueError, match=r"cifar-10-binary\.tar\.gz: wrong size: .* expected 170,052,171"):
        datasets.load_cifar10("train", root=tmp_path)
    for split in ("train", "test"):
        x, y = datasets.load_cifar10(split, root=tmp_path, verify=False)
        pixels, labels = expected_cifar(files, split)
        assert torch.equal(y, torch.from_numpy(labels))
        assert_pixels(x, pixels)
    # the archive's checksum checked against a table that knows this file
    right = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(datasets.REMOTE_FILES, "cifar10", (
        RemoteFile("cifar-10-binary.tar.gz", ("http://127.0.0.1:9/x",), right, archive.stat().st_size),))
    x, y = datasets.load_cifar10("test", root=tmp_path)
    assert torch.equal(y, torch.from_numpy(expected_cifar(files, "test")[1]))


def test_cifar_corrupt_files(tmp_path):
    files = cifar_files(seed=30)
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name, arrays in files.items():
        (folder / name).write_bytes(cifar_records(*arrays))
    good = (folder / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(good[:-1])
    with pytest.raises(ValueError, match=r"test_batch\.bin: wrong size: 12,291 bytes is not a whole number of 3,073"):
        datasets.load_cifar10("test", root=tmp_path)
    (folder / "test_batch.bin").write_bytes(good[:3073] + bytes([12]) + good[3074:])
    with pytest.raises(ValueError, match=r"test_batch\.bin: bad label 12 at record 1"):
        datasets.load_cifar10("test", root=tmp_path)
    (folder / "data_batch_4.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_4\.bin is missing"):
        datasets.load_cifar10("train", root=tmp_path)
    # an archive that is not one, and one without the wanted member
    archive = tmp_path / "other" / "cifar10" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"<html>503 Service Unavailable</html>")
    with pytest.raises(ValueError, match=r"cifar-10-binary\.tar\.gz: not a readable tar\.gz archive"):
        datasets.load_cifar10("test", root=tmp_path / "other", verify=False)
    write_cifar_tar(archive, {k: v for k, v in files.items() if k != "test_batch.bin"})
    with pytest.raises(ValueError, match=r"the archive has no member test_batch\.bin"):
        datasets.load_cifar10("test", root=tmp_path / "other", verify=False)


# ----------------------------------------------------------------------------- fetch

def served(tmp_path: Path, payloads: dict[str, bytes], sha: dict[str, str] | None = None):
    """A REMOTE_FILES entry whose files are served from file:// URLs under tmp_path/served."""
    src = tmp_path / "served"
    src.mkdir(exist_ok=True)
    table = []
    for name, payload in payloads.items():
        (src / name).write_bytes(payload)
        digest = (sha or {}).get(name, hashlib.sha256(payload).hexdigest())
        table.append(RemoteFile(name, ((src / name).as_uri(),), digest, len(payload)))
    return tuple(table)


def test_fetch_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="name must be one of mnist, fashion_mnist, cifar10, got 'svhn'"):
        datasets.fetch("svhn", root=tmp_path)


def test_fetch_offline_message(tmp_path, monkeypatch):
    table = tuple(RemoteFile(r.name, (f"http://127.0.0.1:9/{r.name}",), r.sha256, r.size)
                  for r in datasets.REMOTE_FILES["mnist"])
    monkeypatch.setitem(datasets.REMOTE_FILES, "mnist", table)
    with pytest.raises(FileNotFoundError) as info:
        datasets.fetch("mnist", root=tmp_path, progress=False)
    msg = str(info.value)
    assert "could not download mnist file train-images-idx3-ubyte.gz" in msg
    assert "http://127.0.0.1:9/train-images-idx3-ubyte.gz" in msg
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in msg
    assert "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609" in msg
    assert list((tmp_path / "mnist").iterdir()) == []  # no partial file left behind


def test_fetch_downloads_checks_and_keeps(tmp_path, monkeypatch):
    images, labels = mnist_arrays(4, seed=8)
    payloads = {"train-images-idx3-ubyte.gz": gzip.compress(idx_bytes(IDX_IMAGES_MAGIC, images)),
                "train-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(IDX_LABELS_MAGIC, labels))}
    monkeypatch.setitem(datasets.REMOTE_FILES, "mnist", served(tmp_path, payloads))
    folder = datasets.fetch("mnist", root=tmp_path / "root", progress=True)
    assert folder == tmp_path / "root" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(payloads)  # no .part files
    for name, payload in payloads.items():
        assert (folder / name).read_bytes() == payload
    x, y = datasets.load_mnist("train", root=tmp_path / "root")
    assert_pixels(x[:, 0], images)
    # files already there and correct are kept: a second fetch needs no network
    offline = tuple(RemoteFile(r.name, ("http://127.0.0.1:9/x",), r.sha256, r.size)
                    for r in datasets.REMOTE_FILES["mnist"])
    monkeypatch.setitem(datasets.REMOTE_FILES, "mnist", offline)
    assert datasets.fetch("mnist", root=tmp_path / "root", progress=False) == folder


def test_fetch_replaces_a_corrupt_file(tmp_path, monkeypatch):
    payload = gzip.compress(b"cifar stand-in")
    monkeypatch.setitem(datasets.REMOTE_FILES, "cifar10", served(tmp_path, {"cifar-10-binary.tar.gz": payload}))
    dest = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    dest.parent.mkdir()
    dest.write_bytes(payload[:-3])  # an earlier, interrupted copy
    with pytest.warns(UserWarning, match="wrong size.*downloading it again"):
        datasets.fetch("cifar10", root=tmp_path, progress=False)
    assert dest.read_bytes() == payload


def test_fetch_rejects_a_bad_download(tmp_path, monkeypatch):
    payloads = {"cifar-10-binary.tar.gz": b"not the archive you want"}
    monkeypatch.setitem(datasets.REMOTE_FILES, "cifar10",
                        served(tmp_path, payloads, sha={"cifar-10-binary.tar.gz": "f" * 64}))
    with pytest.raises(ValueError, match=r"checksum mismatch: SHA-256 [0-9a-f]{64}, expected f{64}") as info:
        datasets.fetch("cifar10", root=tmp_path / "root", progress=False)
    assert str(tmp_path / "root" / "cifar10" / "cifar-10-binary.tar.gz") in str(info.value)
    assert list((tmp_path / "root" / "cifar10").iterdir()) == []  # nothing renamed into place


def test_checksums_json_matches_the_code():
    table = json.loads((REPO / "datasets" / "checksums.json").read_text())["files"]
    assert set(table) == set(datasets.REMOTE_FILES) == set(datasets.REAL_SETS)
    for dataset, remotes in datasets.REMOTE_FILES.items():
        assert table[dataset] == {r.name: {"sha256": r.sha256, "size": r.size, "urls": list(r.urls)}
                                  for r in remotes}
    for remotes in datasets.REMOTE_FILES.values():
        for r in remotes:
            assert r.sha256 is None or (len(r.sha256) == 64 and int(r.sha256, 16) >= 0)


# ----------------------------------------------------------------------------- stacked digits

def pool_index(images: torch.Tensor, labels: torch.Tensor) -> dict[bytes, set[int]]:
    """Map each 8x8 digit's bytes to the labels it carries in the pool."""
    index: dict[bytes, set[int]] = {}
    for img, lab in zip(images[:, 0].numpy(), labels.tolist()):
        index.setdefault(img.tobytes(), set()).add(lab)
    return index


def test_stacked_digits_shapes_and_channels():
    x, y = data.stacked_digits(500, seed=3)
    assert x.shape == (500, 3, 8, 8) and x.dtype == torch.float32
    assert y.shape == (500, 3) and y.dtype == torch.int64
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    pool = pool_index(*data.digits("all"))
    for img, lab in zip(x.reshape(-1, 8, 8).numpy(), y.reshape(-1).tolist()):
        assert lab in pool[img.tobytes()]  # each channel is a pool digit, carrying its own label
    # channels are drawn independently: they differ within an image
    assert (x[:, 0] != x[:, 1]).flatten(1).any(1).float().mean().item() > 0.99


def test_stacked_digits_split_and_determinism():
    x1, y1 = data.stacked_digits(300, seed=5, split="test")
    x2, y2 = data.stacked_digits(300, seed=5, split="test")
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = data.stacked_digits(300, seed=6, split="test")
    assert not torch.equal(x1, x3)
    test_pool = pool_index(*data.digits("test"))
    assert all(img.tobytes() in test_pool for img in x1.reshape(-1, 8, 8).numpy())
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        data.stacked_digits(0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        data.stacked_digits(4, seed=-1)
    with pytest.raises(ValueError, match="split must be 'all', 'train' or 'test'"):
        data.stacked_digits(4, split="val")


def test_stacked_digits_reach_all_1000_modes():
    n = 20000
    _, y = data.stacked_digits(n, seed=0)
    modes = (y * torch.tensor([100, 10, 1])).sum(1)  # the channels read as one base-10 number
    counts = torch.bincount(modes, minlength=1000)
    assert len(counts) == 1000 and (counts > 0).sum().item() == 1000  # P(some mode missed) ~ 1000 e^-20
    # each channel's digit follows the pool's class frequencies, within 4 binomial standard errors
    _, pool_labels = data.digits("all")
    p = torch.bincount(pool_labels, minlength=10).double() / len(pool_labels)
    for c in range(3):
        freq = torch.bincount(y[:, c], minlength=10).double() / n
        assert ((freq - p).abs() <= 4 * (p * (1 - p) / n).sqrt()).all()
    # and the channels are independent: a chi-square test of channel 0 against channel 1
    table = np.zeros((10, 10))
    np.add.at(table, (y[:, 0].numpy(), y[:, 1].numpy()), 1)
    assert chi2_contingency(table).pvalue > 1e-3
