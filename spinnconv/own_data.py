"""The user's own data: IDX files, a ``.npz``, image folders, event recordings.

* ``idx``: a folder with four IDX files (MNIST's format, gzipped or not:
  Fashion-MNIST, KMNIST, EMNIST), found by name (``train-images*``,
  ``train-labels*``, ``t10k-images*``, ``t10k-labels*``, or
  ``*-train-images-idx3-ubyte*`` and the like); a ``SHA256SUMS`` file in the
  folder (``sha256sum`` output) is checked when present.
* ``npz``: one file with ``x_train, y_train, x_test, y_test``; images uint8 or
  float, ``(N, H, W)`` or ``(N, H, W, C)``.
* ``folder``: one sub-folder of PNG/JPEG images per class, read with Pillow;
  ``train/`` and ``test/`` sub-folders are used when present, otherwise a
  stratified split drawn with the run's seed (``data.test_fraction``).
* ``events``: ``Train/<class>/*`` and ``Test/<class>/*`` (N-MNIST layout, also
  lower case), each file one recording (see :mod:`spinnconv.events`).

Classes of folders are the sub-folder names in sorted order (numerically when
every name is a number); their files are taken in a fixed shuffled order, so
the first N (``--train-examples``) hold every class, and only those N
recordings of an event dataset are read. Every problem is one :class:`~spinnconv.errors.DataError`
line naming the file and the fix, raised before anything is written; files too
large for the available memory are refused before they are read.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .errors import DataError, UsageError
from .events import (
    EVENT_SUFFIXES,
    check_recording,
    join_recordings,
    read_event_file,
    transform_recording,
)

__all__ = [
    "IDX_PATTERNS",
    "IMAGE_SUFFIXES",
    "NPZ_KEYS",
    "available_memory_bytes",
    "find_idx_files",
    "load_own_dataset",
    "read_idx",
]

#: File name patterns of the four IDX files, tried in order.
IDX_PATTERNS = {
    "train images": ("train-images*", "*-train-images-idx3-ubyte*", "*train*images*"),
    "train labels": ("train-labels*", "*-train-labels-idx1-ubyte*", "*train*labels*"),
    "test images": ("t10k-images*", "*-test-images-idx3-ubyte*", "*test*images*"),
    "test labels": ("t10k-labels*", "*-test-labels-idx1-ubyte*", "*test*labels*"),
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CHUNK_BYTES = 1 << 20
#: Files of class folders are taken in one fixed shuffled order (the same in every
#: run, whatever the seed), so that the first N images hold every class.
FILE_ORDER_SEED = 0


# --------------------------------------------------------------------------
# shared checks
# --------------------------------------------------------------------------

def available_memory_bytes() -> int:
    """Memory this process could still use: ``MemAvailable`` of ``/proc/meminfo``,
    else the free physical pages."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def _check_fits_memory(path: Path, n_bytes: int) -> None:
    available = available_memory_bytes()
    if n_bytes > available:
        raise DataError(f"{path}: needs {n_bytes / 1e6:.0f} MB in memory but only "
                        f"{available / 1e6:.0f} MB are available; use fewer or smaller "
                        f"images (or a machine with more memory)")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _class_order(names: list[str]) -> list[str]:
    if names and all(name.isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def _check_labels(where: str, train_labels: np.ndarray, test_labels: np.ndarray,
                  class_names=None) -> tuple[np.ndarray, np.ndarray]:
    """Integer labels ``0 .. n_classes - 1``, at least two classes in training."""
    out = []
    for split, labels in (("train", train_labels), ("test", test_labels)):
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise DataError(f"{where}: {split} labels must be one integer per image, got "
                            f"shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{where}: {split} labels must be integers, got dtype "
                            f"{labels.dtype}")
        if labels.size and labels.min() < 0:
            raise DataError(f"{where}: {split} label {int(labels.min())} is out of range; "
                            f"labels must be 0, 1, ... (one per class)")
        out.append(labels.astype(np.int64))
    train, test = out
    classes = np.unique(train)
    if classes.size < 2:
        raise DataError(f"{where}: the training images hold only one class "
                        f"({int(classes[0]) if classes.size else 'none'}); a classifier "
                        f"needs at least two")
    n_classes = int(train.max()) + 1
    if test.size and test.max() >= n_classes:
        raise DataError(f"{where}: test label {int(test.max())} is out of range: the "
                        f"training labels go up to {n_classes - 1}")
    return train, test


def _check_pixels(where: str, split: str, images: np.ndarray) -> np.ndarray:
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4):
        raise DataError(f"{where}: {split} images must be (N, H, W) or (N, H, W, C), got "
                        f"shape {images.shape}")
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{where}: {split} images have dtype {images.dtype}; use uint8 "
                        f"(0..255) or float (0..1)")
    if not np.isfinite(images).all():
        bad = np.argwhere(~np.isfinite(images))[0]
        raise DataError(f"{where}: {split} image {int(bad[0])} has NaN or infinite pixels; "
                        f"replace them with finite values")
    if images.size and images.min() < 0:
        raise DataError(f"{where}: {split} images have negative pixels "
                        f"({float(images.min())}); scale them to 0..1")
    return images.astype(np.float32, copy=False)


def _to_grey(images: np.ndarray) -> np.ndarray:
    """Colour images ``(N, H, W, C)`` averaged to ``(N, H, W)`` (same dtype)."""
    if images.ndim != 4:
        return images
    grey = images[..., :3].astype(np.float32).mean(axis=-1)
    return np.rint(grey).astype(np.uint8) if images.dtype == np.uint8 else grey


def _dataset(name: str, where: str, train_x, train_y, test_x, test_y, options: dict,
             class_names=None) -> Dataset:
    train_x = _check_pixels(where, "train", np.asarray(train_x))
    test_x = _check_pixels(where, "test", np.asarray(test_x))
    if bool(options.get("grey", False)):
        train_x, test_x = _to_grey(train_x), _to_grey(test_x)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{where}: train images {train_x.shape[1:]} and test images "
                        f"{test_x.shape[1:]} differ in size; all images need one size")
    if len(train_x) == 0 or len(test_x) == 0:
        raise DataError(f"{where}: no {'training' if len(train_x) == 0 else 'test'} images")
    train_y, test_y = _check_labels(where, train_y, test_y)
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise DataError(f"{where}: {len(train_x)} train / {len(test_x)} test images but "
                        f"{len(train_y)} / {len(test_y)} labels")
    return Dataset(name, np.ascontiguousarray(train_x), train_y, np.ascontiguousarray(test_x),
                   test_y, class_names=class_names)


# --------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    """The array of one IDX file (gzipped when its name ends in ``.gz``)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(4)
            if len(header) < 4 or header[0] or header[1] or header[2] not in _IDX_DTYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number "
                                f"{header.hex() or 'empty'}); pass MNIST-format files")
            dtype, ndim = _IDX_DTYPES[header[2]], header[3]
            dims = struct.unpack(f">{ndim}I", handle.read(4 * ndim))
            n_bytes = math.prod(dims) * dtype.itemsize
            _check_fits_memory(path, n_bytes)
            data = handle.read(n_bytes)
    except (OSError, EOFError, struct.error, zlib.error) as error:
        reason = getattr(error, "strerror", None) or _one_line(error)
        raise DataError(f"{path}: cannot be read as IDX ({reason}); replace it with a good "
                        f"copy") from None
    if len(data) != n_bytes:
        raise DataError(f"{path}: truncated ({len(data)} of {n_bytes} data bytes); replace "
                        f"it with a good copy")
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def find_idx_files(directory: Path) -> dict[str, Path]:
    """The four IDX files of ``directory``, by role (see :data:`IDX_PATTERNS`)."""
    if not directory.is_dir():
        raise DataError(f"IDX source {directory} is not a folder; pass --source DIR holding "
                        f"the four IDX files")
    found = {}
    for role, patterns in IDX_PATTERNS.items():
        for pattern in patterns:
            matches = sorted(path for path in directory.glob(pattern)
                             if path.is_file() and not path.name.startswith("."))
            if len(matches) > 1:
                raise DataError(f"{directory}: several files could be the {role}: "
                                f"{', '.join(p.name for p in matches)}; keep one")
            if matches:
                found[role] = matches[0]
                break
        else:
            raise DataError(f"{directory}: no {role} file (looked for "
                            f"{', '.join(patterns)}); add it or rename it")
    return found


def verify_sha256sums(directory: Path) -> int:
    """Check the files listed in ``directory/SHA256SUMS``; the number checked (0 when
    there is no such file)."""
    listing = directory / "SHA256SUMS"
    if not listing.is_file():
        return 0
    checked = 0
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(f"{listing} line {number}: expected '<sha256>  <file name>'")
        expected, name = parts[0].lower(), parts[1].strip().lstrip("*")
        path = directory / name
        if not path.is_file():
            raise DataError(f"{path}: listed in {listing.name} but missing")
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda handle=handle: handle.read(_CHUNK_BYTES), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise DataError(f"{path}: SHA-256 mismatch with {listing.name} (file corrupt or "
                            f"truncated); replace it with a good copy")
        checked += 1
    return checked


def load_idx_dataset(directory: Path, options: dict) -> Dataset:
    files = find_idx_files(directory)
    verify_sha256sums(directory)
    arrays = {role: read_idx(path) for role, path in files.items()}
    for role in ("train images", "test images"):
        if arrays[role].ndim not in (3, 4):
            raise DataError(f"{files[role]}: holds an array of shape {arrays[role].shape}, "
                            f"not images (N, H, W)")
    return _dataset("idx", str(directory), arrays["train images"], arrays["train labels"],
                    arrays["test images"], arrays["test labels"], options)


# --------------------------------------------------------------------------
# npz
# --------------------------------------------------------------------------

def load_npz_dataset(path: Path, options: dict) -> Dataset:
    if not path.is_file():
        raise DataError(f"npz source {path} is not a file; pass --source FILE.npz with "
                        f"{', '.join(NPZ_KEYS)}")
    try:
        with zipfile.ZipFile(path) as archive:
            n_bytes = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"{path}: not a .npz archive ({_one_line(error)}); save it with "
                        f"numpy.savez") from None
    _check_fits_memory(path, n_bytes)
    arrays, key = {}, NPZ_KEYS[0]
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in NPZ_KEYS if key not in data.files]
            if missing:
                raise DataError(f"{path}: missing array {', '.join(missing)} (needs "
                                f"{', '.join(NPZ_KEYS)}; has {', '.join(data.files) or 'none'})")
            for key in NPZ_KEYS:
                arrays[key] = data[key]
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise DataError(f"{path}: array {key} holds Python objects (pickled), which "
                            f"spinnconv does not load; save plain numeric arrays") from None
        raise DataError(f"{path}: cannot be read ({_one_line(error)})") from None
    except (OSError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: cannot be read ({_one_line(error)}); save it again with "
                        f"numpy.savez") from None
    return _dataset("npz", str(path), arrays["x_train"], arrays["y_train"], arrays["x_test"],
                    arrays["y_test"], options)


# --------------------------------------------------------------------------
# class folders (images and events)
# --------------------------------------------------------------------------

def _split_folders(directory: Path, names: tuple[str, str]) -> Path | None:
    for candidate in (names[0], names[0].lower(), names[0].capitalize(), names[1]):
        path = directory / candidate
        if path.is_dir():
            return path
    return None


def _class_files(root: Path, suffixes: tuple[str, ...], what: str) -> dict[str, list[Path]]:
    """``{class name: sorted files}`` of the class sub-folders of ``root``."""
    folders = [path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")]
    if not folders:
        raise DataError(f"{root}: no class folders; put the {what} of each class in a "
                        f"sub-folder named after the class")
    classes = {}
    for name in _class_order([folder.name for folder in folders]):
        files = sorted(path for path in (root / name).iterdir()
                       if path.is_file() and path.suffix.lower() in suffixes
                       and not path.name.startswith("."))
        if not files:
            raise DataError(f"{root / name}: empty class folder (no {', '.join(suffixes)} "
                            f"files); add {what} or remove the folder")
        classes[name] = files
    return classes


def _labelled(train: dict[str, list[Path]], test: dict[str, list[Path]], where: Path
              ) -> tuple[list[str], list[Path], np.ndarray, list[Path], np.ndarray]:
    names = list(train)
    unknown = [name for name in test if name not in train]
    if unknown:
        raise DataError(f"{where}: test class {unknown[0]!r} has no training folder; every "
                        f"test class needs training images")
    index = {name: k for k, name in enumerate(names)}
    splits = []
    for classes in (train, test):
        files = [path for name in classes for path in classes[name]]
        labels = np.array([index[name] for name in classes for _ in classes[name]], np.int64)
        order = np.random.default_rng(FILE_ORDER_SEED).permutation(len(files))
        splits += [[files[k] for k in order], labels[order]]
    return (names, *splits)


def _read_picture(path: Path, grey: bool) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            picture.load()
            mode = "L" if grey or picture.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
            return np.asarray(picture.convert(mode), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"{path}: cannot be read as an image ({_one_line(error)}); replace "
                        f"or remove it") from None


def _read_pictures(files: list[Path], grey: bool) -> np.ndarray:
    if not files:
        return np.zeros((0, 1, 1), np.uint8)
    first = _read_picture(files[0], grey)
    _check_fits_memory(files[0].parent.parent, len(files) * first.size * 3)
    pictures = [first]
    for path in files[1:]:
        picture = _read_picture(path, grey)
        if picture.shape[:2] != first.shape[:2]:
            raise DataError(f"images of mixed sizes: {path} is {picture.shape[1]}×"
                            f"{picture.shape[0]}, {files[0]} is {first.shape[1]}×"
                            f"{first.shape[0]}; resize them to one size")
        pictures.append(picture)
    if any(picture.ndim == 3 for picture in pictures):  # some colour: all colour
        pictures = [np.repeat(p[..., None], 3, axis=2) if p.ndim == 2 else p
                    for p in pictures]
    return np.stack(pictures)


def load_folder_dataset(directory: Path, options: dict) -> Dataset:
    if not directory.is_dir():
        raise DataError(f"image folder {directory} not found; pass --source DIR with one "
                        f"sub-folder of images per class")
    grey = bool(options.get("grey", False))
    train_root = _split_folders(directory, ("train", "Train"))
    test_root = _split_folders(directory, ("test", "Test"))
    if train_root is not None and test_root is not None:
        train = _class_files(train_root, IMAGE_SUFFIXES, "images")
        test = _class_files(test_root, IMAGE_SUFFIXES, "images")
        names, train_files, train_y, test_files, test_y = _labelled(train, test, directory)
        train_x = _read_pictures(train_files, grey)
        test_x = _read_pictures(test_files, grey)
        if train_x.shape[1:3] != test_x.shape[1:3]:
            raise DataError(f"images of mixed sizes: {train_files[0]} is "
                            f"{train_x.shape[2]}×{train_x.shape[1]}, {test_files[0]} is "
                            f"{test_x.shape[2]}×{test_x.shape[1]}; resize them to one size")
        if train_x.ndim != test_x.ndim:  # one split in colour: both in colour
            train_x, test_x = (x if x.ndim == 4 else np.repeat(x[..., None], 3, axis=3)
                               for x in (train_x, test_x))
    else:
        from sklearn.model_selection import train_test_split

        classes = _class_files(directory, IMAGE_SUFFIXES, "images")
        names = list(classes)
        files = [path for name in names for path in classes[name]]
        labels = np.array([k for k, name in enumerate(names) for _ in classes[name]], np.int64)
        fraction = float(options.get("test_fraction", 0.2))
        if not 0.0 < fraction < 1.0:
            raise UsageError(f"parameter 'data.test_fraction' must lie in (0, 1), got "
                             f"{fraction}")
        if len(names) < 2:
            raise DataError(f"{directory}: only one class folder ({names[0]}); a classifier "
                            f"needs at least two")
        counts = np.bincount(labels)
        n_test = math.ceil(fraction * len(files))
        if counts.min() < 2 or n_test < len(names) or len(files) - n_test < len(names):
            raise DataError(f"{directory}: too few images for a stratified {fraction:g} test "
                            f"split ({len(files)} images, {len(names)} classes); add images "
                            f"or give train/ and test/ folders")
        images = _read_pictures(files, grey)
        train_x, test_x, train_y, test_y = train_test_split(
            images, labels, test_size=fraction, stratify=labels,
            random_state=int(options.get("seed", 0)))
    return _dataset("folder", str(directory), train_x, train_y, test_x, test_y, options,
                    class_names=tuple(names))


def _sensor_option(options: dict) -> tuple[int, int] | None:
    height = int(options.get("sensor_height", 0) or 0)
    width = int(options.get("sensor_width", 0) or 0)
    if (height > 0) != (width > 0):
        raise UsageError("give both data.sensor_height and data.sensor_width, or neither "
                         "(read from the events)")
    return (height, width) if height > 0 else None


def load_event_dataset(directory: Path, options: dict, n_train: int | None = None,
                       n_test: int | None = None) -> Dataset:
    if not directory.is_dir():
        raise DataError(f"event folder {directory} not found; pass --source DIR holding "
                        f"Train/<class>/*.bin and Test/<class>/*.bin")
    train_root = _split_folders(directory, ("Train", "train"))
    test_root = _split_folders(directory, ("Test", "test"))
    if train_root is None or test_root is None:
        raise DataError(f"{directory}: needs Train/ and Test/ folders (N-MNIST layout: "
                        f"Train/<class>/*.bin, Test/<class>/*.bin)")
    train = _class_files(train_root, EVENT_SUFFIXES, "recordings")
    test = _class_files(test_root, EVENT_SUFFIXES, "recordings")
    names, train_files, train_y, test_files, test_y = _labelled(train, test, directory)
    for count, split in ((n_train, "training"), (n_test, "test")):
        available = len(train_files if split == "training" else test_files)
        if count is not None and count > available:
            raise UsageError(f"{count} {split} recordings asked for, {available} available")
    train_files, train_y = train_files[:n_train], train_y[:n_train]
    test_files, test_y = test_files[:n_test], test_y[:n_test]
    files = train_files + test_files
    on_disk = sum(path.stat().st_size for path in files)
    _check_fits_memory(directory, on_disk * 3)  # 5-byte events become 13-byte records
    sensor = _sensor_option(options)
    downsample = int(options.get("event_downsample", 1) or 1)
    denoise_ms = float(options.get("event_denoise_ms", 0.0) or 0.0)
    if downsample < 1:
        raise UsageError(f"parameter 'data.event_downsample' must be >= 1, got {downsample}")
    recordings = []
    for path in files:
        events = read_event_file(path)
        check_recording(str(path), events, sensor)
        recordings.append(transform_recording(events, downsample, denoise_ms))
    if sensor is None:
        largest = [(int(e["y"].max()), int(e["x"].max())) for e in recordings if e.size]
        if not largest:
            raise DataError(f"{directory}: the recordings hold no events")
        sensor = (max(y for y, _ in largest) + 1, max(x for _, x in largest) + 1)
    else:
        sensor = (math.ceil(sensor[0] / downsample), math.ceil(sensor[1] / downsample))
    n_train = len(train_files)
    train_x = join_recordings(recordings[:n_train], sensor)
    test_x = join_recordings(recordings[n_train:], sensor)
    train_y, test_y = _check_labels(str(directory), train_y, test_y)
    return Dataset("events", train_x, train_y, test_x, test_y, class_names=tuple(names))


# --------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------

_LOADERS = {"idx": load_idx_dataset, "npz": load_npz_dataset,
            "folder": load_folder_dataset, "events": load_event_dataset}


def load_own_dataset(kind: str, source: Path, options: dict, n_train: int | None = None,
                     n_test: int | None = None) -> Dataset:
    """Dataset ``kind`` (idx, npz, folder, events) read from ``source``.

    ``options`` are the ``data`` parameters and ``seed``. For events only the
    first ``n_train`` training and ``n_test`` test recordings are read (None:
    all); the other kinds read everything (the caller takes the subset).
    """
    if kind not in _LOADERS:
        raise UsageError(f"unknown dataset kind {kind!r}; choose one of: "
                         f"{', '.join(_LOADERS)}")
    if not source.exists():
        raise DataError(f"--source {source} not found")
    if kind == "events":
        return load_event_dataset(source, options, n_train, n_test)
    return _LOADERS[kind](source, options)
