"""Event recordings (a DVS camera's ON/OFF events) as spike input, no rate code.

A recording is a structured array ``(x, y, t, p)`` as tonic makes it: pixel
coordinates, time stamp in µs, polarity (true/1 = ON). Files are read with
tonic: N-MNIST's binary format (``.bin``, 40-bit events) by
``tonic.io.read_mnist_file``; tonic's arrays saved with NumPy as ``.npy`` (or
``.npz`` holding one array, or an ``events`` array) directly. Optional
denoising and spatial downsampling are tonic's transforms.

:meth:`EventRecordings.to_spikes` bins the events of each sample onto the
``timestep_ms`` grid of its presentation window: ON events drive channel 0,
OFF events channel 1 of an input layer ``(H, W, 2)``, the same layout as the
DoG ON/OFF channels of :func:`spinnconv.encoding.encode`.

No simulator is imported here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, UsageError
from .spikes import LayerSpikes, neuron_index

__all__ = ["EVENT_DTYPE", "EVENT_SUFFIXES", "EventRecordings", "check_recording",
           "join_recordings", "read_event_file", "transform_recording"]

#: tonic's event layout: x, y (pixels), t (µs), p (ON = true).
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
EVENT_SUFFIXES = (".bin", ".npy", ".npz")
_GRID_EPS = 1e-9


@dataclass(frozen=True, eq=False)
class EventRecordings:
    """``n`` event recordings on a sensor of ``sensor_shape = (H, W)`` pixels.

    ``events`` holds every recording one after the other (each sorted by
    time); recording ``i`` is ``events[bounds[i]:bounds[i + 1]]``. Indexing
    with a slice or an index array gives the chosen recordings, so a split of
    a :class:`~spinnconv.datasets.Dataset` can hold recordings in place of
    images (``shape`` is ``(n, H, W)``).
    """

    events: np.ndarray
    bounds: np.ndarray
    sensor_shape: tuple[int, int]

    def __len__(self) -> int:
        return len(self.bounds) - 1

    @property
    def ndim(self) -> int:
        return 3

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), *self.sensor_shape)

    @property
    def dtype(self) -> np.dtype:
        return self.events.dtype

    def __getitem__(self, key) -> EventRecordings:
        if isinstance(key, (int, np.integer)):
            key = [int(key)]
        indices = np.arange(len(self))[key]
        starts, ends = self.bounds[indices], self.bounds[indices + 1]
        lengths = ends - starts
        take = (np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
                + np.arange(int(lengths.sum())))
        bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return EventRecordings(self.events[take], bounds, self.sensor_shape)

    def sample_of_event(self) -> np.ndarray:
        """Index of the recording of every event."""
        return np.repeat(np.arange(len(self)), np.diff(self.bounds))

    def frames(self) -> np.ndarray:
        """Events per pixel of each recording, ``(n, H, W)`` float32, each scaled to
        a maximum of 1 (a picture of the recording, for figures)."""
        height, width = self.sensor_shape
        flat = (self.sample_of_event() * height + self.events["y"]) * width + self.events["x"]
        counts = np.bincount(flat.astype(np.int64), minlength=len(self) * height * width)
        counts = counts.reshape(len(self), height, width).astype(np.float32)
        peak = counts.max(axis=(1, 2), keepdims=True) if counts.size else counts
        return counts / np.maximum(peak, 1.0)

    def to_spikes(self, params: Mapping) -> LayerSpikes:
        """The events as input spikes ``(H, W, 2)``: channel 0 ON, channel 1 OFF.

        A recording's time 0 is its first event; times are multiplied by
        ``params["data"]["event_time_scale"]`` (1 when absent), floored onto the
        ``timestep_ms`` grid, and events at or after ``presentation_ms`` dropped.
        Events of one pixel and polarity in one time step make one spike.
        """
        presentation_ms = float(params["presentation_ms"])
        timestep_ms = float(params["timestep_ms"])
        scale = float(params.get("data", {}).get("event_time_scale", 1.0))
        if not (math.isfinite(scale) and scale > 0):
            raise UsageError(f"parameter 'data.event_time_scale' must be > 0, got {scale}")
        shape = (*self.sensor_shape, 2)
        sample = self.sample_of_event()
        if sample.size == 0:
            return LayerSpikes.from_arrays(shape, len(self), [], [], [])
        first_us = self.events["t"][self.bounds[:-1][np.diff(self.bounds) > 0]]
        first_of_event = np.repeat(first_us, np.diff(self.bounds)[np.diff(self.bounds) > 0])
        time_ms = (self.events["t"] - first_of_event) / 1000.0 * scale
        step = np.floor(time_ms / timestep_ms + _GRID_EPS).astype(np.int64)
        keep = step * timestep_ms < presentation_ms - _GRID_EPS
        channel = np.where(self.events["p"][keep] > 0, 0, 1)
        neuron = neuron_index(shape, self.events["y"][keep].astype(np.int64),
                              self.events["x"][keep].astype(np.int64), channel)
        n_steps = int(step.max()) + 1
        key = (sample[keep] * (2 * shape[0] * shape[1]) + neuron) * n_steps + step[keep]
        key = np.unique(key)
        step_kept = key % n_steps
        neuron_kept = (key // n_steps) % (2 * shape[0] * shape[1])
        sample_kept = key // n_steps // (2 * shape[0] * shape[1])
        return LayerSpikes.from_arrays(shape, len(self), sample_kept, neuron_kept,
                                       step_kept * timestep_ms)


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------

def _structured(path: Path, array: np.ndarray) -> np.ndarray:
    names = array.dtype.names or ()
    missing = [name for name in ("x", "y", "t", "p") if name not in names]
    if array.ndim != 1 or missing:
        raise DataError(f"{path}: not an event array (a 1-D structured array with fields x, "
                        f"y, t, p as tonic makes; got dtype {array.dtype}, shape "
                        f"{array.shape})")
    out = np.empty(array.shape, dtype=EVENT_DTYPE)
    for name in ("x", "y", "t"):
        out[name] = array[name]
    out["p"] = array["p"] > 0
    return out


def read_event_file(path: str | os.PathLike) -> np.ndarray:
    """The events of one recording file, as an :data:`EVENT_DTYPE` array.

    ``.bin``: N-MNIST's binary format (``tonic.io.read_mnist_file``); ``.npy``:
    a tonic structured array; ``.npz``: its ``events`` array or its only array.
    """
    path = Path(path)
    try:
        if path.suffix == ".bin":
            if path.stat().st_size % 5:
                raise DataError(f"{path}: {path.stat().st_size} bytes is not a whole number "
                                f"of 5-byte N-MNIST events (file truncated?)")
            from tonic.io import read_mnist_file

            return _structured(path, read_mnist_file(str(path), dtype=EVENT_DTYPE))
        if path.suffix in (".npy", ".npz"):
            loaded = np.load(path, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    keys = loaded.files
                    if "events" not in keys and len(keys) != 1:
                        raise DataError(f"{path}: holds {', '.join(keys) or 'no arrays'}; "
                                        f"save the events as the array 'events'")
                    loaded = loaded["events" if "events" in keys else keys[0]]
            return _structured(path, loaded)
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise DataError(f"{path}: holds Python objects (a pickled array), which "
                            f"spinnconv does not load; save a structured array with fields "
                            f"x, y, t, p") from None
        raise DataError(f"{path}: cannot be read as events ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    raise DataError(f"{path}: unknown event file type; use one of "
                    f"{', '.join(EVENT_SUFFIXES)}")


def check_recording(path: str, events: np.ndarray, sensor_shape: tuple[int, int] | None
                    ) -> None:
    """One-line ``DataError`` for times out of order or coordinates off the sensor."""
    if events.size == 0:
        return
    backwards = np.flatnonzero(np.diff(events["t"]) < 0)
    if backwards.size:
        k = int(backwards[0])
        raise DataError(f"{path}: event times out of order (event {k + 1} at "
                        f"{int(events['t'][k + 1])} µs follows {int(events['t'][k])} µs); "
                        f"sort each recording by time")
    if events["x"].min() < 0 or events["y"].min() < 0 or events["t"].min() < 0:
        raise DataError(f"{path}: negative coordinates or times; events need x, y, t >= 0")
    if sensor_shape is not None:
        height, width = sensor_shape
        outside = (events["x"] >= width) | (events["y"] >= height)
        if outside.any():
            k = int(np.flatnonzero(outside)[0])
            raise DataError(f"{path}: event {k} at x={int(events['x'][k])}, "
                            f"y={int(events['y'][k])} lies outside the {height}×{width} "
                            f"sensor; give the right data.sensor_height/sensor_width")


def transform_recording(events: np.ndarray, downsample: int, denoise_ms: float
                        ) -> np.ndarray:
    """tonic's Denoise (``denoise_ms`` > 0) then Downsample (``downsample`` > 1)."""
    from tonic import transforms

    if denoise_ms > 0 and events.size:
        events = transforms.Denoise(filter_time=denoise_ms * 1000.0)(events)
    if downsample > 1 and events.size:
        events = transforms.Downsample(spatial_factor=1.0 / downsample)(events)
    return np.ascontiguousarray(events, dtype=EVENT_DTYPE)


def join_recordings(recordings: Sequence[np.ndarray], sensor_shape: tuple[int, int]
                    ) -> EventRecordings:
    """One :class:`EventRecordings` of ``recordings`` (already checked)."""
    lengths = [len(events) for events in recordings]
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    events = (np.concatenate(recordings) if recordings else np.zeros(0, EVENT_DTYPE))
    return EventRecordings(events.astype(EVENT_DTYPE, copy=False), bounds,
                           (int(sensor_shape[0]), int(sensor_shape[1])))
