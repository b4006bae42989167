"""Datasets: digits split, MNIST preparation, checksums and error messages."""

import gzip
import io
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from spinnconv import datasets as ds
from spinnconv.errors import DataError, UsageError

MNIST_SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

needs_mnist = pytest.mark.skipif(
    not all((MNIST_SOURCE / name).is_file() for name in ds.MNIST_FILES),
    reason=f"MNIST files not found in {MNIST_SOURCE}")


def _one_line(error):
    message = str(error.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- digits

def test_digits_split_is_deterministic_stratified_and_scaled():
    a = ds.load_digits_dataset()
    b = ds.load_digits_dataset()
    assert a.name == "digits" and a.image_shape == (8, 8)
    assert len(a.train_labels) + len(a.test_labels) == 1797
    assert len(a.test_labels) == 360
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    assert a.train_images.dtype == np.float32 and a.train_labels.dtype == np.int64
    assert a.train_images.min() >= 0.0 and a.train_images.max() == 1.0
    assert a.test_images.max() <= 1.0
    train_share = np.bincount(a.train_labels, minlength=10) / len(a.train_labels)
    test_share = np.bincount(a.test_labels, minlength=10) / len(a.test_labels)
    np.testing.assert_allclose(train_share, test_share, atol=0.01)
    assert set(np.unique(a.test_labels)) == set(range(10))


def test_digits_split_ignores_global_seed():
    np.random.seed(123)
    a = ds.load_digits_dataset()
    np.random.seed(456)
    b = ds.load_digits_dataset()
    np.testing.assert_array_equal(a.test_images, b.test_images)


def test_subset_and_its_errors():
    data = ds.load_dataset("digits", None, n_train=100, n_test=20)
    assert data.train_images.shape == (100, 8, 8) and data.test_labels.shape == (20,)
    full = ds.load_digits_dataset()
    np.testing.assert_array_equal(data.train_images, full.train_images[:100])
    only_train = full.subset(10, None)
    assert len(only_train.train_labels) == 10 and len(only_train.test_labels) == 360
    with pytest.raises(UsageError) as error:
        full.subset(5000, None)
    assert "1437" in _one_line(error)
    with pytest.raises(UsageError) as error:
        full.subset(None, 0)
    assert "360" in _one_line(error)
    with pytest.raises(UsageError):
        full.subset(-3, 5)


def test_unknown_dataset():
    with pytest.raises(UsageError) as error:
        ds.load_dataset("cifar", None)
    assert _one_line(error) == ("unknown dataset 'cifar'; choose one of: digits, mnist, idx, npz, "
                                 "folder, events")


# ---------------------------------------------------------------- MNIST

@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """The four files prepared (copied + verified) once for the module."""
    if not MNIST_SOURCE.is_dir():
        pytest.skip(f"MNIST files not found in {MNIST_SOURCE}")
    destination = tmp_path_factory.mktemp("mnist")
    assert ds.prepare_mnist(destination, source=MNIST_SOURCE) == destination
    return destination


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return ds.load_mnist_dataset(mnist_dir)


@pytest.fixture
def bad_source(tmp_path):
    """A writable copy of the source folder, to be damaged by a test."""
    if not MNIST_SOURCE.is_dir():
        pytest.skip(f"MNIST files not found in {MNIST_SOURCE}")
    source = tmp_path / "source"
    source.mkdir()
    for name in ds.MNIST_FILES:
        shutil.copyfile(MNIST_SOURCE / name, source / name)
    return source


@needs_mnist
def test_prepare_copies_exactly_the_four_files(mnist_dir):
    assert sorted(p.name for p in mnist_dir.iterdir()) == sorted(ds.MNIST_FILES)
    ds.verify_mnist(mnist_dir)


@needs_mnist
def test_load_mnist_shapes_and_labels(mnist):
    assert mnist.name == "mnist" and mnist.image_shape == (28, 28)
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_images.dtype == np.uint8 and mnist.train_labels.dtype == np.int64
    assert set(np.unique(mnist.train_labels)) == set(range(10))
    assert set(np.unique(mnist.test_labels)) == set(range(10))
    assert mnist.train_images.max() == 255
    # the well-known first labels of both splits
    np.testing.assert_array_equal(mnist.train_labels[:5], [5, 0, 4, 1, 9])
    np.testing.assert_array_equal(mnist.test_labels[:5], [7, 2, 1, 0, 4])
    small = mnist.subset(50, 10)
    assert small.train_images.shape == (50, 28, 28) and small.test_labels.shape == (10,)


@needs_mnist
def test_prepare_twice_and_from_itself(mnist_dir):
    assert ds.prepare_mnist(mnist_dir) == mnist_dir  # already verified: no download
    assert ds.prepare_mnist(mnist_dir, source=mnist_dir) == mnist_dir


@needs_mnist
def test_truncated_source_file(bad_source, tmp_path):
    path = bad_source / TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError) as error:
        ds.prepare_mnist(tmp_path / "dest", source=bad_source)
    message = _one_line(error)
    assert TRAIN_IMAGES in message and "truncated" in message
    # nothing was installed, and no temporary file was left behind
    assert list((tmp_path / "dest").iterdir()) == []
    with pytest.raises(DataError) as error:
        ds.verify_mnist(bad_source)
    assert str(path) in _one_line(error) and "SHA-256 mismatch" in str(error.value)


@needs_mnist
def test_byte_flipped_file(bad_source, tmp_path):
    path = bad_source / TEST_LABELS
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as error:
        ds.verify_mnist(bad_source)
    message = _one_line(error)
    assert str(path) in message and "SHA-256 mismatch" in message and "--source" in message
    with pytest.raises(DataError) as error:
        ds.prepare_mnist(tmp_path / "dest", source=bad_source)
    assert TEST_LABELS in _one_line(error)


@needs_mnist
def test_missing_file(bad_source, tmp_path):
    (bad_source / TEST_LABELS).unlink()
    with pytest.raises(DataError) as error:
        ds.verify_mnist(bad_source)
    assert str(bad_source / TEST_LABELS) in _one_line(error) and "missing" in str(error.value)
    with pytest.raises(DataError) as error:
        ds.prepare_mnist(tmp_path / "dest", source=bad_source)
    assert TEST_LABELS in _one_line(error)
    with pytest.raises(DataError) as error:
        ds.load_dataset("mnist", bad_source)
    assert TEST_LABELS in _one_line(error)


def test_missing_source_and_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as error:
        ds.prepare_mnist(tmp_path / "dest", source=missing)
    assert str(missing) in _one_line(error)
    with pytest.raises(DataError) as error:
        ds.verify_mnist(missing)
    assert str(missing) in _one_line(error) and "not found" in str(error.value)


@needs_mnist
def test_unreadable_file(bad_source):
    path = bad_source / TRAIN_IMAGES
    path.unlink()
    path.mkdir()  # exists but cannot be read as a file
    with pytest.raises(DataError) as error:
        ds.verify_mnist(bad_source)
    assert str(path) in _one_line(error)


@needs_mnist
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can read files without read permission")
def test_file_without_read_permission(bad_source):
    path = bad_source / TRAIN_IMAGES
    path.chmod(0)
    try:
        with pytest.raises(DataError) as error:
            ds.verify_mnist(bad_source)
        assert str(path) in _one_line(error) and "permission" in str(error.value).lower()
    finally:
        path.chmod(0o644)


@needs_mnist
def test_bad_source_does_not_overwrite_good_destination(mnist_dir, bad_source):
    before = {name: (mnist_dir / name).stat().st_mtime_ns for name in ds.MNIST_FILES}
    path = bad_source / TEST_LABELS  # the last file copied: the others copy fine
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DataError):
        ds.prepare_mnist(mnist_dir, source=bad_source)
    ds.verify_mnist(mnist_dir)
    after = {name: (mnist_dir / name).stat().st_mtime_ns for name in ds.MNIST_FILES}
    assert before == after
    assert sorted(p.name for p in mnist_dir.iterdir()) == sorted(ds.MNIST_FILES)


def _offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_offline_download_fails_fast_and_clearly(tmp_path, monkeypatch):
    calls = []

    def offline(request, timeout=None):
        calls.append(timeout)
        return _offline()

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    start = time.monotonic()
    with pytest.raises(DataError) as error:
        ds.prepare_mnist(tmp_path / "dest")
    assert time.monotonic() - start < 30
    message = _one_line(error)
    assert message.startswith(f"MNIST not found in {tmp_path / 'dest'} and download failed (")
    assert message.endswith("copy the four IDX .gz files there or pass --source DIR")
    assert "name resolution" in message
    # each unreachable mirror is tried once, not once per file
    assert len(calls) == len(ds.MNIST_MIRRORS)
    assert all(t is not None and t <= 10 for t in calls)
    assert list((tmp_path / "dest").iterdir()) == []


def test_no_download_when_disabled(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(DataError) as error:
        ds.prepare_mnist(tmp_path / "dest", download=False)
    message = _one_line(error)
    assert "MNIST not found in" in message and "--source DIR" in message


@needs_mnist
def test_download_path_with_fake_mirror(tmp_path, monkeypatch):
    """A mirror serving the real bytes (and one serving garbage) without network."""
    urls = []

    def fake(request, timeout=None):
        url = request.full_url
        urls.append(url)
        name = url.rsplit("/", 1)[1]
        if url.startswith(ds.MNIST_MIRRORS[0]):
            return io.BytesIO(b"not a gzip file")  # wrong checksum: try next mirror
        return io.BytesIO((MNIST_SOURCE / name).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake)
    destination = tmp_path / "dest"
    assert ds.prepare_mnist(destination) == destination
    ds.verify_mnist(destination)
    assert sorted(p.name for p in destination.iterdir()) == sorted(ds.MNIST_FILES)
    assert len(urls) == 2 * len(ds.MNIST_FILES)


def test_mnist_needs_a_directory():
    with pytest.raises(UsageError):
        ds.load_dataset("mnist", None)


def test_checksums_match_shared_sums_file():
    sums = MNIST_SOURCE / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip(f"{sums} not found")
    listed = dict(reversed(line.split()) for line in sums.read_text().splitlines() if line)
    assert listed == {name: sha for name, (sha, _) in ds.MNIST_FILES.items()}


def test_parse_error_is_one_line_data_error(tmp_path, monkeypatch):
    for name in ds.MNIST_FILES:
        (tmp_path / name).write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    monkeypatch.setattr(ds, "verify_mnist", lambda directory: None)
    with pytest.raises(DataError) as error:
        ds.load_mnist_dataset(tmp_path)
    assert "cannot parse" in _one_line(error) and str(tmp_path) in str(error.value)
