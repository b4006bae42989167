"""Datasets: scikit-learn's bundled 8x8 digits, MNIST from IDX files, and the
user's own data (IDX files, a .npz, image folders, event recordings: see
:mod:`spinnconv.own_data`).

``digits`` needs no files: it ships with scikit-learn and is split into train
and test sets with a fixed seed, so every run sees the same split whatever the
user's seed. ``mnist`` is read from the four gzipped IDX files in a folder;
:func:`prepare_mnist` puts them there (copied from a local folder, or
downloaded when the machine is online) and every file is checked against its
SHA-256 before it is used or installed.

Every failure reaches the user as one line: :class:`~spinnconv.errors.DataError`
for missing or corrupt files, :class:`~spinnconv.errors.UsageError` for bad
names or sizes.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from numbers import Integral
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .errors import DataError, UsageError

__all__ = [
    "DATASETS",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "OWN_DATASETS",
    "Dataset",
    "load_dataset",
    "load_digits_dataset",
    "load_mnist_dataset",
    "prepare_mnist",
    "verify_mnist",
]

#: Datasets read from the user's files, and what ``--source`` names for each.
OWN_DATASETS = {
    "idx": "a folder with train-images*, train-labels*, t10k-images*, t10k-labels* IDX files",
    "npz": "a .npz file with arrays x_train, y_train, x_test, y_test",
    "folder": "a folder with one sub-folder of PNG/JPEG images per class",
    "events": "a folder Train/<class>/*.bin and Test/<class>/*.bin (N-MNIST layout)",
}
DATASETS = ("digits", "mnist", *OWN_DATASETS)

#: SHA-256 and size in bytes of the four MNIST files (the gzipped originals).
MNIST_FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
}

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: Seconds before a download attempt gives up.
DOWNLOAD_TIMEOUT_S = 10.0

DIGITS_SPLIT_SEED = 0

_LOADDATA_HINT = "run `python main.py --mode loaddata --dataset mnist --source DIR` again"
_CHUNK_BYTES = 1 << 20


# --------------------------------------------------------------------------
# the container
# --------------------------------------------------------------------------

def load_digits_dataset(test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 digits as float32 in [0, 1], stratified split.

    The split uses a fixed seed (``DIGITS_SPLIT_SEED``), independent of any
    user seed, so it is the same in every run.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if isinstance(test_fraction, bool) or not 0.0 < float(test_fraction) < 1.0:
        raise UsageError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=float(test_fraction), stratify=labels,
        random_state=DIGITS_SPLIT_SEED)
    return Dataset("digits", np.ascontiguousarray(train_x), train_y,
                   np.ascontiguousarray(test_x), test_y)


# --------------------------------------------------------------------------
# MNIST files
# --------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_problem(path: Path, hint: str = "") -> str | None:
    """One-line description of what is wrong with MNIST file ``path``, or None."""
    expected_sha, expected_size = MNIST_FILES[path.name]
    suffix = f"; {hint}" if hint else ""
    if not path.exists():
        return f"{path}: missing{suffix}"
    if not path.is_file():
        return f"{path}: not a regular file{suffix}"
    try:
        size = path.stat().st_size
        actual = _sha256(path)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        return f"{path}: cannot be read ({reason}); check its permissions{suffix}"
    if actual != expected_sha:
        state = "file truncated" if size < expected_size else "file corrupt"
        return (f"{path}: SHA-256 mismatch ({state}: {size} bytes, expected "
                f"{expected_size}){suffix}")
    return None


def _first_problem(directory: Path, hint: str = "") -> str | None:
    for name in MNIST_FILES:
        problem = _file_problem(directory / name, hint)
        if problem:
            return problem
    return None


def _check_directory(directory: Path, what: str, hint: str) -> None:
    if not directory.exists():
        raise DataError(f"{what} {directory} not found; {hint}")
    if not directory.is_dir():
        raise DataError(f"{what} {directory} is not a directory; {hint}")


def verify_mnist(directory: str | os.PathLike) -> None:
    """Check that the four MNIST files in ``directory`` exist and match their SHA-256.

    Raises ``DataError`` with one line naming the first bad file and the fix.
    """
    directory = Path(directory)
    _check_directory(directory, "MNIST directory", _LOADDATA_HINT)
    problem = _first_problem(directory, _LOADDATA_HINT)
    if problem:
        raise DataError(problem)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _temp_in(directory: Path, name: str) -> Path:
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    except OSError as error:
        raise DataError(f"cannot write to MNIST directory {directory} "
                        f"({_one_line(error.strerror or error)})") from error
    os.close(handle)
    return Path(temp)


def _install(temps: dict[str, Path], destination: Path) -> None:
    """Move verified temp files onto their final names (atomic per file)."""
    for name, temp in temps.items():
        try:
            os.chmod(temp, 0o644)
            os.replace(temp, destination / name)
        except OSError as error:
            raise DataError(f"{destination / name}: cannot be written "
                            f"({_one_line(error.strerror or error)})") from error


def _remove(paths) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _copy_from(source: Path, destination: Path) -> None:
    """Copy the four files from ``source``; nothing is replaced unless all verify."""
    source_hint = "replace it with a good copy of the original MNIST file"
    _check_directory(source, "MNIST source", "pass --source DIR with the four IDX .gz files")
    for name in MNIST_FILES:  # fail before copying anything
        if not (source / name).is_file():
            raise DataError(f"{source / name}: missing from the MNIST source; "
                            f"copy the four IDX .gz files there")
    temps: dict[str, Path] = {}
    try:
        for name, (expected_sha, expected_size) in MNIST_FILES.items():
            temps[name] = temp = _temp_in(destination, name)
            digest = hashlib.sha256()
            size = 0
            try:
                with open(source / name, "rb") as src, open(temp, "wb") as dst:
                    for chunk in iter(lambda src=src: src.read(_CHUNK_BYTES), b""):
                        digest.update(chunk)
                        size += len(chunk)
                        dst.write(chunk)
                    dst.flush()
                    os.fsync(dst.fileno())
            except OSError as error:
                reason = _one_line(error.strerror or error)
                raise DataError(f"{source / name}: copy to {destination} failed "
                                f"({reason})") from error
            if digest.hexdigest() != expected_sha:
                state = "file truncated" if size < expected_size else "file corrupt"
                raise DataError(f"{source / name}: SHA-256 mismatch ({state}: {size} "
                                f"bytes, expected {expected_size}); {source_hint}")
        _install(temps, destination)
    finally:
        _remove(temps.values())


def _download(destination: Path, mirrors, timeout_s: float) -> None:
    """Fetch every file that does not verify yet; raise DataError on failure."""
    dead: set[str] = set()  # mirrors that could not be reached: not retried
    for name in MNIST_FILES:
        if _file_problem(destination / name) is None:
            continue
        reasons = []
        for mirror in mirrors:
            if mirror in dead:
                continue
            url = mirror + name
            temp = _temp_in(destination, name)
            try:
                try:
                    request = urllib.request.Request(url, headers={"User-Agent": "spinnconv"})
                    with urllib.request.urlopen(request, timeout=timeout_s) as response, \
                            open(temp, "wb") as dst:
                        dst.writelines(iter(lambda r=response: r.read(_CHUNK_BYTES), b""))
                except urllib.error.HTTPError as error:
                    reasons.append(f"{url}: HTTP {error.code}")
                    continue
                except (OSError, ValueError, http.client.HTTPException) as error:
                    reason = getattr(error, "reason", None) or error
                    reasons.append(f"{url}: {_one_line(reason)}")
                    dead.add(mirror)
                    continue
                if _sha256(temp) != MNIST_FILES[name][0]:
                    reasons.append(f"{url}: SHA-256 mismatch")
                    continue
                _install({name: temp}, destination)
                break
            finally:
                _remove([temp])
        else:
            raise DataError(f"MNIST not found in {destination} and download failed "
                            f"({'; '.join(reasons) or 'no mirror reachable'}); copy the "
                            f"four IDX .gz files there or pass --source DIR")


def prepare_mnist(destination: str | os.PathLike, source: str | os.PathLike | None = None,
                  download: bool = True) -> Path:
    """Put the four verified MNIST files into ``destination`` and return it.

    With ``source``: copy the four files (and nothing else) from that folder,
    each through a temporary name in ``destination`` replaced atomically once
    every copy matches its SHA-256, so a bad source never overwrites good
    files. Without: keep ``destination`` if it already verifies, else download
    from :data:`MNIST_MIRRORS` (``DOWNLOAD_TIMEOUT_S`` per attempt) when
    ``download`` is true. Raises ``DataError`` (one line) on any failure.
    """
    destination = Path(destination)
    try:
        destination.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create MNIST directory {destination} "
                        f"({_one_line(error.strerror or error)})") from error
    if not destination.is_dir():
        raise DataError(f"MNIST directory {destination} is not a directory")
    if source is not None:
        source = Path(source)
        same = source.is_dir() and source.resolve() == destination.resolve()
        if not same:
            _copy_from(source, destination)
        verify_mnist(destination)
        return destination
    problem = _first_problem(destination)
    if problem is None:
        return destination
    if not download:
        raise DataError(f"MNIST not found in {destination} ({problem}); copy the four "
                        f"IDX .gz files there or pass --source DIR")
    try:
        _download(destination, MNIST_MIRRORS, DOWNLOAD_TIMEOUT_S)
    except OSError as error:
        raise DataError(f"MNIST not found in {destination} and download failed "
                        f"({_one_line(error)}); copy the four IDX .gz files there or "
                        f"pass --source DIR") from error
    verify_mnist(destination)
    return destination


def load_mnist_dataset(directory: str | os.PathLike) -> Dataset:
    """Verify and parse MNIST from ``directory``: uint8 ``(N, 28, 28)``, int64 labels."""
    directory = Path(directory)
    verify_mnist(directory)
    with warnings.catch_warnings():
        # python-mnist compares strings with ``is``: SyntaxWarning on first compile.
        warnings.simplefilter("ignore", SyntaxWarning)
        from mnist import MNIST
        from mnist.loader import MNISTException
    try:
        reader = MNIST(str(directory), gz=True)
        train_images, train_labels = reader.load_training()
        test_images, test_labels = reader.load_testing()
        splits = [_mnist_arrays(train_images, train_labels),
                  _mnist_arrays(test_images, test_labels)]
    except (OSError, EOFError, ValueError, TypeError, IndexError, struct.error, zlib.error,
            MNISTException) as error:
        raise DataError(f"{directory}: cannot parse the MNIST IDX files "
                        f"({type(error).__name__}: {_one_line(error)}); "
                        f"{_LOADDATA_HINT}") from error
    (train_x, train_y), (test_x, test_y) = splits
    return Dataset("mnist", train_x, train_y, test_x, test_y)


def _mnist_arrays(images, labels) -> tuple[np.ndarray, np.ndarray]:
    """python-mnist's lists of flat 784-pixel lists and ``array('B')`` to numpy."""
    labels = np.frombuffer(labels, dtype=np.uint8).astype(np.int64)
    pixels = np.array(images, dtype=np.uint8)
    if pixels.ndim != 2 or pixels.shape[1] != 28 * 28:
        raise ValueError(f"expected 784 pixels per image, got array of shape {pixels.shape}")
    if len(pixels) != len(labels):
        raise ValueError(f"{len(pixels)} images but {len(labels)} labels")
    return pixels.reshape(-1, 28, 28), labels


# --------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------

def load_dataset(name: str, data_dir: str | os.PathLike | None,
                 n_train: int | None = None, n_test: int | None = None, *,
                 source: str | os.PathLike | None = None, options: dict | None = None,
                 n_validation: int | None = None, seed: int = 0) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`), optionally its first images.

    For ``mnist``, ``data_dir`` is the folder holding the four IDX .gz files;
    ``digits`` ignores it. ``idx``, ``npz``, ``folder`` and ``events`` read
    ``source`` (see :mod:`spinnconv.own_data`) with ``options`` (the ``data``
    parameters). With ``n_validation``, the first ``n_train + n_validation``
    training images are taken (all when ``n_train`` is None) and ``n_validation``
    of them held out (:meth:`Dataset.split` with ``seed``), leaving ``n_train``.
    """
    if n_validation is not None and (isinstance(n_validation, bool)
                                     or not isinstance(n_validation, (Integral, np.integer))
                                     or n_validation <= 0):
        raise UsageError(f"--validation-examples must be a positive integer, got "
                         f"{n_validation!r}")
    n_needed = n_train + n_validation if n_train and n_validation else n_train
    if name == "digits":
        dataset = load_digits_dataset()
    elif name == "mnist":
        if data_dir is None:
            raise UsageError("dataset 'mnist' needs a data directory holding the four "
                             "IDX .gz files")
        dataset = load_mnist_dataset(data_dir)
    elif name in OWN_DATASETS:
        from .own_data import load_own_dataset

        if source is None:
            raise UsageError(f"--dataset {name} needs --source PATH ({OWN_DATASETS[name]})")
        dataset = load_own_dataset(name, Path(source), {**(options or {}), "seed": seed},
                                   n_train=n_needed, n_test=n_test)
    else:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if n_validation:
        return dataset.subset(n_needed, n_test).split(n_validation, seed)
    if n_train is None and n_test is None:
        return dataset
    return dataset.subset(n_train, n_test)
