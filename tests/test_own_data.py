"""The user's own data: IDX, npz, image folders, event recordings, all made here.

Fast tests read each kind and refuse bad data in one line; the slow ones run
each kind through ``main.py --mode all`` to an accuracy.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import accuracy_of, run_cli, snapshot

from spinnconv import encoding, own_data
from spinnconv.config import resolve_parameters, size_parameters
from spinnconv.datasets import load_dataset
from spinnconv.errors import DataError, UsageError
from spinnconv.events import EVENT_DTYPE, read_event_file

SIDE = 12
N_CLASSES = 3


# --------------------------------------------------------------------------
# data the tests make
# --------------------------------------------------------------------------

def bar_images(n: int, seed: int, side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images of three classes: a horizontal bar, a vertical bar, a
    diagonal, each at a random place, with some noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % N_CLASSES
    images = rng.integers(0, 30, size=(n, side, side)).astype(np.float64)
    for k, label in enumerate(labels):
        at = rng.integers(2, side - 2)
        if label == 0:
            images[k, at - 1:at + 1, 1:-1] = 230
        elif label == 1:
            images[k, 1:-1, at - 1:at + 1] = 230
        else:
            shift = rng.integers(-2, 3)
            for i in range(side):
                j = i + shift
                if 0 <= j < side:
                    images[k, i, j] = 230
                    if j + 1 < side:
                        images[k, i, j + 1] = 230
    return images.astype(np.uint8), labels.astype(np.int64)


def write_idx(path: Path, array: np.ndarray) -> None:
    """A tiny IDX writer (uint8 arrays), gzipped when ``path`` ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


def make_idx(directory: Path, n_train: int = 60, n_test: int = 30, gz: bool = True,
             prefix: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    train_x, train_y = bar_images(n_train, 1)
    test_x, test_y = bar_images(n_test, 2)
    names = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte") if not prefix else
             (f"{prefix}-train-images-idx3-ubyte", f"{prefix}-train-labels-idx1-ubyte",
              f"{prefix}-test-images-idx3-ubyte", f"{prefix}-test-labels-idx1-ubyte"))
    for name, array in zip(names, (train_x, train_y, test_x, test_y), strict=True):
        write_idx(directory / (name + suffix), array)
    return directory


def make_npz(path: Path, n_train: int = 60, n_test: int = 30, **replace) -> Path:
    train_x, train_y = bar_images(n_train, 1)
    test_x, test_y = bar_images(n_test, 2)
    arrays = {"x_train": train_x.astype(np.float32) / 255.0, "y_train": train_y,
              "x_test": test_x.astype(np.float32) / 255.0, "y_test": test_y}
    arrays.update(replace)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez(path, **arrays)
    return path


def make_folder(directory: Path, n: int = 90, split: bool = False, colour: bool = False
                ) -> Path:
    from PIL import Image

    images, labels = bar_images(n, 3)
    names = ("horizontal", "vertical", "diagonal")
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        part = ("test" if k % 5 == 0 else "train") if split else ""
        folder = directory / part / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        picture = (Image.fromarray(np.stack([image, image // 2, image], axis=-1), "RGB")
                   if colour else Image.fromarray(image, "L"))
        picture.save(folder / f"{k:04d}.{'png' if k % 2 else 'jpg'}")
    return directory


def encode_nmnist(events: np.ndarray) -> bytes:
    """N-MNIST's 40-bit events: x (8 bits), y (8 bits), polarity (1 bit),
    time stamp (23 bits, µs), big-endian in five bytes."""
    t = events["t"].astype(np.int64)
    assert t.max(initial=0) < 1 << 23
    raw = np.zeros((len(events), 5), dtype=np.uint8)
    raw[:, 0] = events["x"]
    raw[:, 1] = events["y"]
    raw[:, 2] = (events["p"].astype(np.uint8) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    return raw.tobytes()


def moving_bar(label: int, rng: np.random.Generator, side: int = SIDE,
               duration_us: int = 300_000) -> np.ndarray:
    """A bar sweeping down (0), right (1), or a dot blinking at a random place (2):
    ON events on the leading edge, OFF on the trailing edge, plus noise."""
    parts = []
    steps = side
    for step in range(steps):
        t0 = int(step * duration_us / steps)
        line = np.arange(1, side - 1)
        if label == 0:
            on = [(x, step) for x in line]
            off = [(x, step - 2) for x in line if step >= 2]
        elif label == 1:
            on = [(step, y) for y in line]
            off = [(step - 2, y) for y in line if step >= 2]
        else:
            cx, cy = 3 + (step % 2) * 5, 3 + (step // 2 % 2) * 5
            on = [(cx + dx, cy + dy) for dx in (0, 1) for dy in (0, 1)]
            off = [(cx - dx, cy - dy) for dx in (1, 2) for dy in (1, 2)]
        for polarity, points in ((True, on), (False, off)):
            for x, y in points:
                t = t0 + rng.integers(0, duration_us // steps // 2)
                parts.append((x, y, t, polarity))
    for _ in range(10):  # noise
        parts.append((rng.integers(0, side), rng.integers(0, side),
                      rng.integers(0, duration_us), bool(rng.integers(0, 2))))
    events = np.array(parts, dtype=EVENT_DTYPE)
    return events[np.argsort(events["t"], kind="stable")]


def make_events(directory: Path, n_train: int = 30, n_test: int = 15, npy: bool = False
                ) -> Path:
    rng = np.random.default_rng(5)
    for split, n in (("Train", n_train), ("Test", n_test)):
        for k in range(n):
            label = k % N_CLASSES
            folder = directory / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            events = moving_bar(label, rng)
            if npy and k % 2:
                np.save(folder / f"{k:05d}.npy", events)
            else:
                (folder / f"{k:05d}.bin").write_bytes(encode_nmnist(events))
    return directory


def load(kind: str, source: Path, seed: int = 0, **options):
    params = resolve_parameters(kind)
    return load_dataset(kind, None, source=source, options={**params["data"], **options},
                        seed=seed)


# --------------------------------------------------------------------------
# reading each kind
# --------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_reads_shape_and_classes_from_the_files(tmp_path, gz):
    data = load("idx", make_idx(tmp_path / "idx", gz=gz))
    assert data.image_shape == (SIDE, SIDE) and data.n_classes == N_CLASSES
    assert (data.n_train, data.n_test) == (60, 30) and data.train_images.dtype == np.uint8
    expected, labels = bar_images(60, 1)
    np.testing.assert_array_equal(data.train_images, expected)
    np.testing.assert_array_equal(data.train_labels, labels)


def test_idx_emnist_style_names_and_sha256sums(tmp_path):
    directory = make_idx(tmp_path / "emnist", prefix="emnist-letters")
    assert load("idx", directory).n_train == 60
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
             for p in sorted(directory.iterdir())]
    (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    assert own_data.verify_sha256sums(directory) == 4
    target = next(directory.glob("*train-images*"))
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        load("idx", directory)


def test_idx_two_candidates_and_a_missing_file_are_refused(tmp_path):
    directory = make_idx(tmp_path / "idx", gz=True)
    write_idx(directory / "train-images-idx3-ubyte", bar_images(5, 0)[0])
    with pytest.raises(DataError, match="several files could be the train images"):
        load("idx", directory)
    for path in directory.glob("train-images*"):
        path.unlink()
    with pytest.raises(DataError, match="no train images file"):
        load("idx", directory)


def test_idx_truncated_file_is_refused(tmp_path):
    directory = make_idx(tmp_path / "idx", gz=False)
    path = directory / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated"):
        load("idx", directory)


def test_npz_float_and_colour_images(tmp_path):
    data = load("npz", make_npz(tmp_path / "d.npz"))
    assert data.image_shape == (SIDE, SIDE) and data.train_images.dtype == np.float32
    colour = np.repeat(bar_images(20, 1)[0][..., None], 3, axis=3)
    path = make_npz(tmp_path / "c.npz", x_train=colour, y_train=np.arange(20) % 3,
                    x_test=colour[:6], y_test=np.arange(6) % 3)
    data = load("npz", path)
    assert data.channels == 3 and data.train_images.shape == (20, SIDE, SIDE, 3)
    assert load("npz", path, grey=True).train_images.shape == (20, SIDE, SIDE)


def test_folder_with_seeded_split_and_with_train_test(tmp_path):
    data = load("folder", make_folder(tmp_path / "f"), seed=0)
    assert data.class_names == ("diagonal", "horizontal", "vertical")
    assert (data.n_train, data.n_test) == (72, 18) and data.image_shape == (SIDE, SIDE)
    again = load("folder", tmp_path / "f", seed=0)
    other = load("folder", tmp_path / "f", seed=1)
    np.testing.assert_array_equal(data.test_images, again.test_images)
    assert not np.array_equal(data.test_images, other.test_images)
    split = load("folder", make_folder(tmp_path / "s", split=True))
    assert (split.n_train, split.n_test) == (72, 18)


def test_folder_colour_is_three_channels_or_grey(tmp_path):
    directory = make_folder(tmp_path / "rgb", n=30, split=True, colour=True)
    assert load("folder", directory).channels == 3
    assert load("folder", directory, grey=True).channels == 1


def test_event_files_read_like_tonic_and_bin_to_on_off_spikes(tmp_path):
    rng = np.random.default_rng(0)
    events = moving_bar(0, rng)
    path = tmp_path / "one.bin"
    path.write_bytes(encode_nmnist(events))
    back = read_event_file(path)
    for name in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(back[name], events[name])
    data = load("events", make_events(tmp_path / "ev", npy=True))
    assert data.is_events and data.image_shape == (SIDE, SIDE)
    assert (data.n_train, data.n_test, data.n_classes) == (30, 15, 3)
    params = resolve_parameters("events")
    spikes = encoding.input_spikes(data.test_images, params)
    assert spikes.shape == (SIDE, SIDE, 2) and spikes.n_images == 15
    assert spikes.time_ms.max() < params["presentation_ms"]
    np.testing.assert_array_equal(spikes.time_ms % params["timestep_ms"], 0.0)
    # sample 0 alone: ON events in channel 0, OFF in channel 1, one spike per bin
    one = data.test_images[:1]
    alone = encoding.input_spikes(one, params)
    recording = one.events
    scale = params["data"]["event_time_scale"]
    step = np.floor((recording["t"] - recording["t"][0]) / 1000.0 * scale).astype(int)
    keep = step < params["presentation_ms"]
    channel = np.where(recording["p"], 0, 1)
    index = channel * SIDE * SIDE + recording["y"].astype(int) * SIDE + recording["x"]
    expected = {(int(n), float(s)) for n, s in zip(index[keep], step[keep], strict=True)}
    assert set(zip(alone.neuron.tolist(), alone.time_ms.tolist(), strict=True)) == expected
    assert alone.n_spikes == len(expected)


def test_event_downsampling_and_denoising_use_tonic(tmp_path):
    directory = make_events(tmp_path / "ev", n_train=6, n_test=3)
    plain = load("events", directory)
    half = load("events", directory, event_downsample=2)
    assert half.image_shape == (SIDE // 2, SIDE // 2)
    assert half.train_images.events.size == plain.train_images.events.size
    denoised = load("events", directory, event_denoise_ms=5.0)
    assert 0 < denoised.train_images.events.size < plain.train_images.events.size


def test_events_lower_case_split_folders_and_given_sensor(tmp_path):
    directory = make_events(tmp_path / "ev", n_train=6, n_test=3)
    (directory / "Train").rename(directory / "train")
    (directory / "Test").rename(directory / "test")
    data = load("events", directory, sensor_height=34, sensor_width=34)
    assert data.image_shape == (34, 34)


# --------------------------------------------------------------------------
# validation split, default architecture, per-image encoding
# --------------------------------------------------------------------------

def test_validation_split_is_seeded_training_images_only(tmp_path):
    data = load("npz", make_npz(tmp_path / "d.npz"))
    split = data.split(12, seed=4)
    assert (split.n_train, split.n_validation, split.n_test) == (48, 12, 30)
    rows = {row.tobytes() for row in data.train_images}
    assert all(row.tobytes() in rows for row in split.val_images)
    train_rows = {row.tobytes() for row in split.train_images}
    assert not any(row.tobytes() in train_rows for row in split.val_images)
    np.testing.assert_array_equal(split.test_images, data.test_images)
    assert np.array_equal(data.split(12, seed=4).val_labels, split.val_labels)
    assert not np.array_equal(data.split(12, seed=5).val_images, split.val_images)
    with pytest.raises(UsageError, match="more than"):
        data.split(60, seed=0)
    events = load("events", make_events(tmp_path / "ev", n_train=9, n_test=3)).split(3, 0)
    assert (events.n_train, events.n_validation) == (6, 3)
    assert len(events.val_images) == 3 and events.val_images.shape == (3, SIDE, SIDE)


def test_validation_comes_from_the_first_train_plus_validation_images(tmp_path, monkeypatch):
    params = resolve_parameters("npz")
    data = load_dataset("npz", None, 30, 10, source=make_npz(tmp_path / "d.npz"),
                        options=params["data"], n_validation=12, seed=1)
    assert (data.n_train, data.n_validation, data.n_test) == (30, 12, 10)
    everything = load("npz", tmp_path / "d.npz")
    first = {row.tobytes() for row in everything.train_images[:42]}
    assert all(row.tobytes() in first for row in (*data.train_images, *data.val_images))
    with pytest.raises(UsageError, match="--validation-examples must be a positive integer"):
        load_dataset("npz", None, source=tmp_path / "d.npz", n_validation=0)
    # events: only the recordings asked for are read, and they hold every class
    directory = make_events(tmp_path / "ev", n_train=12, n_test=6)
    read = []
    monkeypatch.setattr(own_data, "read_event_file",
                        lambda path: read.append(path) or read_event_file(path))
    events = load_dataset("events", None, 4, 3, source=directory, n_validation=2)
    assert len(read) == 6 + 3 and (events.n_train, events.n_validation) == (4, 2)
    assert set(np.concatenate([events.train_labels, events.val_labels])) == {0, 1, 2}


def test_default_architecture_by_image_size():
    small = resolve_parameters("idx", image_shape=(12, 12))
    assert small["architecture"][0]["kernel_shape"] == [3, 3] and small["dog_size"] == 3
    assert resolve_parameters("idx", image_shape=(8, 8))["architecture"] == \
        resolve_parameters("digits")["architecture"]
    assert resolve_parameters("npz", image_shape=(28, 28))["architecture"] == \
        resolve_parameters("mnist")["architecture"]
    given = [{"kind": "conv", "n_kernels": 4, "kernel_shape": [3, 3]}, {"kind": "classifier"}]
    assert resolve_parameters("idx", {"architecture": given},
                              image_shape=(200, 200))["architecture"] == given
    with pytest.raises(UsageError, match="no default architecture for 200×200") as error:
        size_parameters((200, 200))
    assert "--params" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(UsageError, match="no default architecture"):
        size_parameters((3, 3))


@pytest.mark.parametrize("dog", [True, False])
@pytest.mark.parametrize("code", ["rate", "latency"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_encoding_a_batch_equals_encoding_each_image_alone(dog, code, dtype):
    params = {**resolve_parameters("digits"), "dog": dog, "code": code}
    rng = np.random.default_rng(0)
    faint = rng.random((8, 8)) * 0.3
    bright = rng.random((8, 8)) * (3.0 if dtype == np.float32 else 1.0)
    batch = np.stack([faint, bright, faint * 0.5])
    batch = (batch * 255).astype(np.uint8) if dtype == np.uint8 else batch.astype(dtype)
    together = encoding.encode(batch, params)
    for k in range(len(batch)):
        alone = encoding.encode(batch[k:k + 1], params)
        part = together.select([k])
        assert part.n_spikes == alone.n_spikes > 0
        np.testing.assert_array_equal(part.neuron, alone.neuron)
        np.testing.assert_array_equal(part.time_ms, alone.time_ms)


def test_colour_images_encode_to_two_channels_per_colour():
    params = resolve_parameters("digits")
    images = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 3)).astype(np.uint8)
    assert encoding.encode(images, params).shape == (8, 8, 6)
    assert encoding.encoded_shape((8, 8, 3), params) == (8, 8, 6)
    assert encoding.encode(images, {**params, "dog": False}).shape == (8, 8, 3)


# --------------------------------------------------------------------------
# bad data: one line, a DataError (exit 1), nothing written
# --------------------------------------------------------------------------

def _refused(tmp_path: Path, kind: str, source: Path, words: str) -> None:
    model_dir = tmp_path / "model"
    before = snapshot(tmp_path)
    result = run_cli("--mode", "all", "--dataset", kind, "--source", str(source),
                     "--model-dir", str(model_dir), "--no-plots", "--quiet")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert "allow_pickle" not in result.stderr
    assert not model_dir.exists() and snapshot(tmp_path) == before


def test_cli_refuses_bad_data_in_one_line_and_writes_nothing(tmp_path):
    from PIL import Image

    _refused(tmp_path, "npz", make_npz(tmp_path / "d.npz", y_test=None),
             "missing array y_test")
    path = tmp_path / "objects.npz"
    objects = np.empty(3, dtype=object)
    np.savez(path, x_train=objects, y_train=np.arange(3), x_test=objects, y_test=np.arange(3))
    _refused(tmp_path, "npz", path, "holds Python objects")
    folder = make_folder(tmp_path / "f", n=30, split=True)
    Image.fromarray(np.zeros((10, 14), np.uint8)).save(folder / "test" / "diagonal" / "x.png")
    _refused(tmp_path, "folder", folder, "images of mixed sizes")
    events = make_events(tmp_path / "ev", n_train=3, n_test=3)
    target = events / "Test" / "1" / "00001.bin"
    target.write_bytes(encode_nmnist(moving_bar(1, np.random.default_rng(0))[::-1]))
    _refused(tmp_path, "events", events, "event times out of order")


def test_mixed_sizes_labels_one_class_nonfinite_are_refused(tmp_path):
    from PIL import Image

    directory = make_folder(tmp_path / "f", n=30, split=True)
    Image.fromarray(np.zeros((10, 14), np.uint8)).save(directory / "train" / "vertical" / "x.png")
    with pytest.raises(DataError, match="mixed sizes.*14×10"):
        load("folder", directory)
    _, y = bar_images(60, 1)
    cases = [
        ({"y_train": y - 1}, "label -1 is out of range"),
        ({"y_test": np.full(30, 7)}, "test label 7 is out of range"),
        ({"y_train": np.zeros(60, np.int64)}, "only one class"),
        ({"y_train": y.astype(np.float64)}, "labels must be integers"),
        ({"x_train": np.where(np.arange(SIDE) == 3, np.nan, 0.5) * np.ones((60, SIDE, SIDE))},
         "NaN or infinite"),
        ({"x_test": np.full((30, SIDE, SIDE), np.inf)}, "NaN or infinite"),
        ({"x_test": np.zeros((30, SIDE + 1, SIDE), np.uint8)}, "differ in size"),
        ({"x_train": np.zeros((60, SIDE, SIDE), np.int32)}, "use uint8"),
    ]
    for number, (change, words) in enumerate(cases):
        path = make_npz(tmp_path / f"bad{number}.npz", **change)
        with pytest.raises(DataError, match=words):
            load("npz", path)


def test_pickled_object_array_is_refused_with_our_message(tmp_path):
    path = tmp_path / "objects.npz"
    x, y = bar_images(6, 0)
    objects = np.empty(6, dtype=object)
    objects[:] = [img for img in x]
    np.savez(path, x_train=objects, y_train=y, x_test=x, y_test=y)
    with pytest.raises(DataError, match="Python objects") as error:
        load("npz", path)
    assert "allow_pickle" not in str(error.value)


def test_empty_folders_are_refused(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load("folder", tmp_path / "none")
    directory = make_folder(tmp_path / "f", n=30)
    (directory / "empty").mkdir()
    with pytest.raises(DataError, match="empty class folder"):
        load("folder", directory)
    events = make_events(tmp_path / "ev", n_train=3, n_test=3)
    (events / "Test" / "9").mkdir()
    with pytest.raises(DataError, match="empty class folder"):
        load("events", events)


def test_bad_event_files_are_refused(tmp_path):
    directory = make_events(tmp_path / "ev", n_train=3, n_test=3)
    target = directory / "Train" / "0" / "00000.bin"
    events = moving_bar(0, np.random.default_rng(1))
    target.write_bytes(encode_nmnist(events[::-1]))
    with pytest.raises(DataError, match="times out of order"):
        load("events", directory)
    target.write_bytes(encode_nmnist(events))
    with pytest.raises(DataError, match=r"outside the 8×8 sensor"):
        load("events", directory, sensor_height=8, sensor_width=8)
    target.write_bytes(encode_nmnist(events)[:-2])
    with pytest.raises(DataError, match="whole number of 5-byte"):
        load("events", directory)
    target.unlink()
    bad = np.zeros(4, dtype=[("a", "i4")])
    np.save(target.with_suffix(".npy"), bad)
    with pytest.raises(DataError, match="not an event array"):
        load("events", directory)


def test_files_larger_than_memory_are_refused_before_reading(tmp_path, monkeypatch):
    npz = make_npz(tmp_path / "d.npz")
    idx = make_idx(tmp_path / "idx")
    folder = make_folder(tmp_path / "f", n=30)
    events = make_events(tmp_path / "ev", n_train=3, n_test=3)
    monkeypatch.setattr(own_data, "available_memory_bytes", lambda: 1000)
    for kind, source in (("npz", npz), ("idx", idx), ("folder", folder), ("events", events)):
        with pytest.raises(DataError, match="MB in memory but only 0 MB are available"):
            load(kind, source)
    reads = []
    monkeypatch.setattr(np, "load", lambda *a, **k: reads.append(a))
    with pytest.raises(DataError, match="in memory"):
        load("npz", npz)
    assert reads == []


def test_cli_usage_errors_for_own_data(tmp_path):
    result = run_cli("--mode", "info", "--dataset", "npz", "--model-dir", str(tmp_path / "m"))
    assert result.returncode == 2 and "needs --source" in result.stderr
    result = run_cli("--mode", "info", "--dataset", "npz", "--validation-examples", "0",
                     "--source", "x.npz")
    assert result.returncode == 2 and "--validation-examples must be > 0" in result.stderr


def test_cli_info_shows_what_will_be_built(tmp_path):
    result = run_cli("--mode", "info", "--dataset", "idx", "--source",
                     str(make_idx(tmp_path / "idx")), "--model-dir", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    assert "idx: images 12×12, 3 classes, 60 train / 30 test" in result.stdout
    assert "Conv 16×3×3" in result.stdout or "3×3" in result.stdout
    result = run_cli("--mode", "loaddata", "--dataset", "events", "--source",
                     str(make_events(tmp_path / "ev", n_train=6, n_test=3)))
    assert result.returncode == 0, result.stderr
    assert "event recordings on a 12×12 sensor" in result.stdout
    assert "nothing copied" in result.stdout


# --------------------------------------------------------------------------
# each kind through --mode all
# --------------------------------------------------------------------------

def _all(tmp_path: Path, kind: str, source: Path, *extra: str) -> tuple[float, dict]:
    model_dir = tmp_path / "model"
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"train_patches": 600}))
    result = run_cli("--mode", "all", "--dataset", kind, "--source", str(source),
                     "--model-dir", str(model_dir), "--backend", "nest", "--quiet",
                     "--params", str(params), *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return accuracy_of(result), json.loads((model_dir / "results.json").read_text())


@pytest.mark.slow
def test_all_on_an_idx_set_that_is_not_mnist(tmp_path):
    pytest.importorskip("pyNN.nest")
    accuracy, results = _all(tmp_path, "idx", make_idx(tmp_path / "idx", 150, 60),
                             "--validation-examples", "30")
    assert results["n_train"] == 120 and results["n_test"] == 60
    assert results["n_validation"] == 30 and results["validation_accuracy"] >= 0.6
    assert len(results["confusion_matrix"]) == N_CLASSES
    assert accuracy >= 0.7


@pytest.mark.slow
def test_all_on_an_npz(tmp_path):
    pytest.importorskip("pyNN.nest")
    accuracy, results = _all(tmp_path, "npz", make_npz(tmp_path / "d.npz", 150, 60))
    assert results["dataset"] == "npz" and results["validation_accuracy"] is None
    assert accuracy >= 0.7


@pytest.mark.slow
def test_all_on_a_folder_of_pngs(tmp_path):
    pytest.importorskip("pyNN.nest")
    accuracy, results = _all(tmp_path, "folder", make_folder(tmp_path / "f", 210, colour=True))
    assert results["n_test"] == 42
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["model"]["input_shape"] == [SIDE, SIDE, 6]  # ON/OFF per colour
    assert (tmp_path / "model" / "figures" / "input_raster.png").is_file()
    assert accuracy >= 0.7


@pytest.mark.slow
def test_all_on_event_recordings(tmp_path):
    pytest.importorskip("pyNN.nest")
    accuracy, results = _all(tmp_path, "events", make_events(tmp_path / "ev", 90, 45))
    assert results["n_test"] == 45
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["model"]["input_shape"] == [SIDE, SIDE, 2]  # ON, OFF events
    assert accuracy >= 0.7
    pytest.importorskip("spynnaker")
    deployed = run_cli("--mode", "deploy", "--dataset", "events", "--backend", "spinnaker",
                       "--virtual-board", "5", "--model-dir", str(tmp_path / "model"),
                       "--params", str(tmp_path / "params.json"), "--quiet")
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    report = json.loads((tmp_path / "model" / "deploy.json").read_text())
    assert report["rows"][0]["layer"] == "input" and report["rows"][0]["shape"] == [SIDE, SIDE, 2]
    assert report["total"]["cores"] > 0


def test_input_channel_names_of_colour_and_event_inputs():
    from spinnconv.figures import input_channel_names
    from spinnconv.model import SequentialModel

    dog = resolve_parameters("digits")
    plain = {**dog, "dog": False}
    assert input_channel_names(SequentialModel((8, 8, 2)), plain) == ["ON", "OFF"]
    assert input_channel_names(SequentialModel((8, 8, 6)), dog)[:3] == ["R ON", "R OFF", "G ON"]
    assert input_channel_names(SequentialModel((8, 8, 3)), plain) == ["R", "G", "B"]
    assert input_channel_names(SequentialModel((8, 8, 1)), plain) is None
