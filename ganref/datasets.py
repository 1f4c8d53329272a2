"""Real data sets from their published files: MNIST, Fashion-MNIST (IDX) and CIFAR-10 (binary).

- MNIST / Fashion-MNIST are read from their IDX files (gzip'd or not), CIFAR-10 from its *binary*
  version (3,073-byte records). Nothing here unpickles a downloaded file.
- Files live in ``<root>/<set>/``, root being the argument, else ``$GANREF_DATA``, else ``./data``.
  Every downloaded archive is checked against its published size and SHA-256 (values from
  TensorFlow Datasets' url_checksums, also in datasets/checksums.json).
- Offline, :func:`fetch` fails with a message that says where to put the files.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import struct
import tarfile
import tempfile
import urllib.request
import warnings
import zlib
from pathlib import Path
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ganref.utils import check_positive_int

DATA_ENV = "GANREF_DATA"
REAL_SETS = ("mnist", "fashion_mnist", "cifar10")
CIFAR10_RECORD = 1 + 3 * 32 * 32  # 1 label byte, then 1,024 red, 1,024 green, 1,024 blue bytes


@dataclass(frozen=True)
class RemoteFile:
    """One published file of a real data set.

    Attributes:
        name: the file's name on disk, e.g. ``"train-images-idx3-ubyte.gz"``.
        urls: mirrors, tried in order.
        sha256: the published SHA-256 of the file as downloaded; ``None`` where no authoritative
            value is known (the check is then skipped with a warning, for that file only).
        size: the file's size in bytes, or ``None`` if unknown.
    """

    name: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None


_MNIST_MIRRORS = ("https://storage.googleapis.com/cvdf-datasets/mnist/",
                  "https://ossci-datasets.s3.amazonaws.com/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")


def _remote(name: str, mirrors: tuple[str, ...], sha256: str | None, size: int | None) -> RemoteFile:
    return RemoteFile(name, tuple(m + name for m in mirrors), sha256, size)


# Sizes and SHA-256 as published in tensorflow/datasets, tensorflow_datasets/url_checksums/*.txt.
REMOTE_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": (
        _remote("train-images-idx3-ubyte.gz", _MNIST_MIRRORS,
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        _remote("train-labels-idx1-ubyte.gz", _MNIST_MIRRORS,
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        _remote("t10k-images-idx3-ubyte.gz", _MNIST_MIRRORS,
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        _remote("t10k-labels-idx1-ubyte.gz", _MNIST_MIRRORS,
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    ),
    "fashion_mnist": (
        _remote("train-images-idx3-ubyte.gz", _FASHION_MIRRORS,
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        _remote("train-labels-idx1-ubyte.gz", _FASHION_MIRRORS,
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        _remote("t10k-images-idx3-ubyte.gz", _FASHION_MIRRORS,
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        _remote("t10k-labels-idx1-ubyte.gz", _FASHION_MIRRORS,
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
    ),
    "cifar10": (
        _remote("cifar-10-binary.tar.gz", ("https://www.cs.toronto.edu/~kriz/",),
                "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171),
    ),
}
_VERIFIED: set[tuple] = set()  # (path, size, mtime_ns, published size, sha256) of files already checked


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds the real data sets: ``root``, else ``$GANREF_DATA``, else ``./data``.

    Each set lives in a sub-folder named after it: ``<root>/mnist``, ``<root>/fashion_mnist``,
    ``<root>/cifar10``. Returns an absolute path (it need not exist).
    """
    if root is None:
        root = os.environ.get(DATA_ENV) or "data"
    return Path(root).expanduser().absolute()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes as a hex string, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remote_file(dataset: str, name: str) -> RemoteFile:
    for remote in REMOTE_FILES[dataset]:
        if remote.name == name:
            return remote
    raise ValueError(f"{dataset} has no published file named {name!r}")


def _mismatch(remote: RemoteFile, size: int, digest: str | None) -> str | None:
    """Why a file of ``size`` bytes and SHA-256 ``digest`` is not ``remote`` (None if it is)."""
    if remote.size is not None and size != remote.size:
        return f"wrong size: {size:,} bytes, expected {remote.size:,}"
    if remote.sha256 is None:
        warnings.warn(f"no published SHA-256 is known for {remote.name}: its checksum check is skipped",
                      stacklevel=3)
        return None
    if digest != remote.sha256:
        return f"checksum mismatch: SHA-256 {digest}, expected {remote.sha256}"
    return None


def verify_file(path: str | os.PathLike[str], dataset: str, name: str | None = None) -> None:
    """Check a downloaded archive against its published size and SHA-256.

    Args:
        path: the file on disk.
        dataset: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        name: the published file name (default: ``path``'s name).
    Raises:
        ValueError: naming the file and what is wrong (wrong size, checksum mismatch).
    """
    if dataset not in REMOTE_FILES:
        raise ValueError(f"dataset must be one of {', '.join(REAL_SETS)}, got {dataset!r}")
    path = Path(path)
    remote = _remote_file(dataset, name or path.name)
    stat = path.stat()
    key = (str(path.absolute()), stat.st_size, stat.st_mtime_ns, remote.size, remote.sha256)
    if key in _VERIFIED:
        return
    size_ok = remote.size is None or stat.st_size == remote.size
    digest = sha256_file(path) if size_ok and remote.sha256 is not None else None
    reason = _mismatch(remote, stat.st_size, digest)
    if reason is not None:
        raise ValueError(f"{path}: {reason}. The file is truncated or corrupt: delete it and run "
                         f"`ganref data fetch {dataset}` (or download it again from {remote.urls[0]})")
    _VERIFIED.add(key)


def _missing(dataset: str, folder: Path, name: str) -> FileNotFoundError:
    remote = _remote_file(dataset, name)
    return FileNotFoundError(
        f"{dataset} file {name} is not in {folder}: run `ganref data fetch {dataset}` (or "
        f"ganref.datasets.fetch({dataset!r})), or download {remote.urls[0]} yourself and put it at "
        f"{folder / name}. The data folder is root=, else ${DATA_ENV}, else ./data.")


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped if it starts with the gzip magic bytes 1f 8b."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as err:
        raise ValueError(f"{path}: truncated gzip stream ({err}): the file is incomplete") from err
    except (OSError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt gzip data ({err})") from err


def read_idx(path: str | os.PathLike[str], ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the MNIST format), gzip'd or not.

    Layout (LeCun et al.): a big-endian magic number ``0x0000 08 ndim`` (0x08: unsigned byte),
    then ``ndim`` big-endian int32 sizes, then the values in row-major order.

    Args:
        path: the file.
        ndim: the number of dimensions expected: 1 for labels, 3 for images.
    Returns:
        a read-only uint8 array of the shape the header gives.
    Raises:
        ValueError: naming the file for a bad magic number, a header whose sizes overflow, a truncated
            file or trailing bytes.
    """
    path = Path(path)
    ndim = check_positive_int("ndim", ndim)
    raw = _read_bytes(path)
    header = 4 + 4 * ndim
    expected = (0x08 << 8) | ndim  # 0x00000801 for labels, 0x00000803 for images
    if len(raw) >= 4 and struct.unpack(">I", raw[:4])[0] != expected:
        raise ValueError(f"{path}: bad magic number 0x{struct.unpack('>I', raw[:4])[0]:08x}, expected "
                         f"0x{expected:08x} (an IDX file of unsigned bytes with {ndim} dimension(s))")
    if len(raw) < header:
        raise ValueError(f"{path}: truncated: {len(raw)} bytes, shorter than the {header}-byte IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = math.prod(shape)  # exact: an int64 product wraps for sizes such as (2**21,) * 3
    if count >= 2**63:
        raise ValueError(f"{path}: corrupt header: the sizes {shape} multiply to {count:,} values, more than "
                         "any file can hold")
    body = len(raw) - header
    if body < count:
        raise ValueError(f"{path}: truncated: the header promises {count:,} values of shape {shape}, "
                         f"the file holds {body:,}")
    if body > count:
        raise ValueError(f"{path}: wrong size: {body - count:,} bytes after the {count:,} values of shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, count=count, offset=header).reshape(shape)


def _to_unit_range(pixels: np.ndarray) -> Tensor:
    """uint8 pixels -> float32 in [-1, 1]: x / 255 * 2 - 1."""
    return torch.from_numpy(pixels.astype(np.float32)).div_(255.0).mul_(2.0).sub_(1.0)


def _check_labels(where: str, labels: np.ndarray) -> None:
    if labels.size and labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f"{where}: bad label {int(labels[bad])} at record {bad}: labels must lie in 0..9")


def load_mnist(split: str = "train", root: str | os.PathLike[str] | None = None, kind: str = "mnist",
               verify: bool = True) -> tuple[Tensor, Tensor]:
    """MNIST or Fashion-MNIST from its IDX files in ``<root>/mnist`` or ``<root>/fashion_mnist``.

    Files are ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, gzip'd (``.gz``, as published) or not.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        root: the data folder (default: ``$GANREF_DATA``, else ``./data``).
        kind: ``"mnist"`` or ``"fashion"``.
        verify: check the published ``.gz`` archives' size and SHA-256 (unzipped files are
            checked for their structure only).
    Returns:
        images (N, 1, 28, 28) float32 in [-1, 1]; labels (N,) int64 in 0..9.
    Raises:
        FileNotFoundError: a file is missing (the message says what to download and where to put it).
        ValueError: a file is corrupt, truncated or does not match its checksum.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if kind not in ("mnist", "fashion"):
        raise ValueError(f"kind must be 'mnist' or 'fashion', got {kind!r}")
    dataset = "mnist" if kind == "mnist" else "fashion_mnist"
    folder = data_root(root) / dataset
    prefix = "train" if split == "train" else "t10k"
    arrays = []
    for stem, ndim in ((f"{prefix}-images-idx3-ubyte", 3), (f"{prefix}-labels-idx1-ubyte", 1)):
        packed, unpacked = folder / f"{stem}.gz", folder / stem
        if packed.is_file():
            if verify:
                verify_file(packed, dataset)
            path = packed
        elif unpacked.is_file():
            path = unpacked
        else:
            raise _missing(dataset, folder, f"{stem}.gz")
        arrays.append((path, read_idx(path, ndim)))
    (image_path, images), (label_path, labels) = arrays
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{image_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise ValueError(f"{image_path} holds {len(images):,} images but {label_path} holds "
                         f"{len(labels):,} labels: they must match")
    _check_labels(str(label_path), labels)
    return _to_unit_range(images)[:, None], torch.from_numpy(labels.astype(np.int64))  # (N, 1, 28, 28), (N,)


def _parse_cifar(where: str, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Records ``<1 x label><3072 x pixel>`` -> pixels (N, 3, 32, 32) uint8, labels (N,) uint8."""
    if len(raw) == 0 or len(raw) % CIFAR10_RECORD:
        raise ValueError(f"{where}: wrong size: {len(raw):,} bytes is not a whole number of "
                         f"{CIFAR10_RECORD:,}-byte records (1 label byte + 3,072 pixel bytes); "
                         f"the file is truncated or corrupt")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR10_RECORD)
    labels = records[:, 0]
    _check_labels(where, labels)
    pixels = records[:, 1:].reshape(-1, 3, 32, 32)  # R, G, B planes, each 32 rows of 32, row-major
    return pixels, labels


def load_cifar10(split: str = "train", root: str | os.PathLike[str] | None = None,
                 verify: bool = True) -> tuple[Tensor, Tensor]:
    """CIFAR-10 from its binary version in ``<root>/cifar10`` (never the pickled python version).

    Reads ``cifar10/cifar-10-batches-bin/*.bin`` if that folder exists, else the members of
    ``cifar10/cifar-10-binary.tar.gz`` straight from the archive (nothing is extracted to disk).

    Args:
        split: ``"train"`` (data_batch_1..5, 50,000 images) or ``"test"`` (test_batch, 10,000).
        root: the data folder (default: ``$GANREF_DATA``, else ``./data``).
        verify: check the archive's size and SHA-256 (extracted files are checked for their
            structure only).
    Returns:
        images (N, 3, 32, 32) float32 in [-1, 1], channels RGB; labels (N,) int64 in 0..9.
    Raises:
        FileNotFoundError: the files are missing (the message says what to download and where).
        ValueError: a file is corrupt, truncated or does not match its checksum.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = data_root(root) / "cifar10"
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    extracted, archive = folder / "cifar-10-batches-bin", folder / "cifar-10-binary.tar.gz"
    blobs: dict[str, tuple[str, bytes]] = {}
    if extracted.is_dir():
        for name in names:
            path = extracted / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: {extracted} must hold {', '.join(names)}")
            blobs[name] = (str(path), path.read_bytes())
    elif archive.is_file():
        if verify:
            verify_file(archive, "cifar10")
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:  # read only the wanted regular files, into memory
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in names and base not in blobs:
                        blobs[base] = (f"{archive}:{member.name}", tar.extractfile(member).read())
                        if len(blobs) == len(names):
                            break
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise ValueError(f"{archive}: not a readable tar.gz archive ({err}); delete it and run "
                             f"`ganref data fetch cifar10`") from err
        absent = [name for name in names if name not in blobs]
        if absent:
            raise ValueError(f"{archive}: the archive has no member {', '.join(absent)}")
    else:
        raise _missing("cifar10", folder, archive.name)
    parsed = [_parse_cifar(*blobs[name]) for name in names]
    pixels = np.concatenate([p for p, _ in parsed]) if len(parsed) > 1 else parsed[0][0]
    labels = np.concatenate([lab for _, lab in parsed])
    return _to_unit_range(pixels), torch.from_numpy(labels.astype(np.int64))  # (N, 3, 32, 32), (N,)


def _download(dataset: str, remote: RemoteFile, dest: Path, progress: bool) -> None:
    """Fetch ``remote`` into ``dest`` through a temporary file, renamed only once it checks out."""
    from tqdm.auto import tqdm

    failures: list[str] = []
    corrupt = False
    for url in remote.urls:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "ganref"})
        except ValueError as err:  # not a URL urllib can open
            failures.append(f"{url}: {err}")
            continue
        fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=60) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else remote.size
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=remote.name,
                          disable=not progress) as bar:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        digest.update(block)
                        size += len(block)
                        bar.update(len(block))
            if length and length.isdigit() and size != int(length):
                raise OSError(f"connection closed after {size:,} of {int(length):,} bytes")
            reason = _mismatch(remote, size, digest.hexdigest())
            if reason is not None:
                corrupt = True
                failures.append(f"{url}: {reason}")
                continue
            os.replace(tmp, dest)  # atomic: dest is either absent or complete
            return
        except (OSError, http.client.HTTPException) as err:  # URLError and timeouts are OSErrors
            failures.append(f"{url}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    tried = "\n  ".join(failures)
    sha = f" (SHA-256 {remote.sha256})" if remote.sha256 else ""
    message = (f"could not download {dataset} file {remote.name}:\n  {tried}\n"
               f"If this machine is offline, download {remote.urls[0]} elsewhere and put it at "
               f"{dest}{sha}. The data folder is root=, else ${DATA_ENV}, else ./data.")
    raise (ValueError if corrupt else FileNotFoundError)(message)


def fetch(name: str, root: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """Download a real data set's published files into ``<root>/<name>/`` and check them.

    Files already there with the right size and SHA-256 are kept; missing or corrupt ones are
    downloaded (urllib, tqdm progress bar) into a temporary file, checked, then renamed in place.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        root: the data folder (default: ``$GANREF_DATA``, else ``./data``).
        progress: show a progress bar per file.
    Returns:
        the folder holding the set's files.
    Raises:
        ValueError: an unknown name, or a download that does not match its checksum.
        FileNotFoundError: no mirror could be reached (the message gives the URL to fetch by hand
            and the path to put the file at).
    """
    if name not in REMOTE_FILES:
        raise ValueError(f"name must be one of {', '.join(REAL_SETS)}, got {name!r}")
    folder = data_root(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    for remote in REMOTE_FILES[name]:
        dest = folder / remote.name
        if dest.is_file():
            try:
                verify_file(dest, name)
                continue
            except ValueError as err:
                warnings.warn(f"{err}; downloading it again", stacklevel=2)
        _download(name, remote, dest, progress)
    return folder
