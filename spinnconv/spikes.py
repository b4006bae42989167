"""Spikes of one layer for a batch of images, and the presentation schedule.

Every stage of the pipeline speaks ``LayerSpikes``: the encoder produces it for
the input layer, a simulation run produces it for any recorded layer, patch
sampling for STDP training cuts windows out of it, and the readout counts it.

Neuron index layout (used everywhere in spinnconv): within a layer of shape
``(H, W, C)`` neuron ``(y, x, c)`` has index ``c*H*W + y*W + x`` (channel-major),
so the neurons of feature map ``c`` are the contiguous slice
``[c*H*W, (c+1)*H*W)``.

Schedule: images are presented back to back in one simulation run. Image ``i``
owns the interval ``[onset_ms + i*period_ms, onset_ms + (i+1)*period_ms)``; its
input spikes lie in the first ``presentation_ms`` of it, the rest is a gap in
which membranes and synaptic currents decay before the next image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def neuron_index(shape: tuple[int, int, int], y, x, c):
    """Channel-major index ``c*H*W + y*W + x`` of neuron ``(y, x, c)`` in ``shape``."""
    height, width, _ = shape
    return (np.asarray(c) * height + np.asarray(y)) * width + np.asarray(x)


def neuron_coordinates(shape: tuple[int, int, int], index):
    """Inverse of :func:`neuron_index`: ``(y, x, c)`` arrays for ``index``."""
    height, width, _ = shape
    index = np.asarray(index)
    c, rest = np.divmod(index, height * width)
    y, x = np.divmod(rest, width)
    return y, x, c


@dataclass(frozen=True)
class Schedule:
    """When each image is presented, in ms of simulation time.

    ``onset_ms`` keeps the first spike away from t = 0: pyNN.nest moves source
    spikes one ``min_delay`` earlier and refuses a spike at t = 0, so the network
    module uses two time steps.
    """

    presentation_ms: float
    rest_ms: float
    onset_ms: float = 1.0

    @property
    def period_ms(self) -> float:
        """Time between the starts of two consecutive images."""
        return self.presentation_ms + self.rest_ms

    def duration_ms(self, n_images: int) -> float:
        """Simulation time needed to present ``n_images`` images."""
        return self.onset_ms + n_images * self.period_ms

    def start_ms(self, image) -> np.ndarray:
        """Start of the window of ``image`` (scalar or array of indices)."""
        return self.onset_ms + np.asarray(image) * self.period_ms


@dataclass(frozen=True)
class LayerSpikes:
    """Spikes of a layer of shape ``(H, W, C)`` for ``n_images`` images.

    Arrays are parallel, one entry per spike, sorted by ``(image, time_ms)``.
    ``time_ms`` is relative to the start of the image's window.
    """

    shape: tuple[int, int, int]
    n_images: int
    image: np.ndarray
    neuron: np.ndarray
    time_ms: np.ndarray

    @property
    def n_neurons(self) -> int:
        height, width, channels = self.shape
        return height * width * channels

    @property
    def n_spikes(self) -> int:
        return int(self.image.size)

    @classmethod
    def from_arrays(cls, shape, n_images, image, neuron, time_ms) -> LayerSpikes:
        """Build from unsorted arrays; sorts by (image, time, neuron)."""
        image = np.asarray(image, dtype=np.int64)
        neuron = np.asarray(neuron, dtype=np.int64)
        time_ms = np.asarray(time_ms, dtype=np.float64)
        order = np.lexsort((neuron, time_ms, image))
        return cls(tuple(int(s) for s in shape), int(n_images), image[order],
                   neuron[order], time_ms[order])

    def image_bounds(self) -> np.ndarray:
        """``bounds[i]:bounds[i+1]`` is the slice of image ``i``'s spikes."""
        return np.searchsorted(self.image, np.arange(self.n_images + 1))

    def counts(self, dtype=np.float32) -> np.ndarray:
        """Spike counts, shape ``(n_images, n_neurons)``."""
        flat = self.image * self.n_neurons + self.neuron
        counts = np.bincount(flat, minlength=self.n_images * self.n_neurons)
        return counts.reshape(self.n_images, self.n_neurons).astype(dtype)

    def max_spikes_within(self, window_ms: float) -> int:
        """The most spikes of one image within any window ``[t, t + window_ms)``.

        With ``window_ms`` the time step, the most input spikes a population fed by
        these spikes can receive in one step (each image in its own presentation).
        """
        if window_ms <= 0:
            raise ValueError(f"window_ms must be > 0, got {window_ms!r}")
        if self.n_spikes == 0:
            return 0
        span = float(self.time_ms.max()) + 2.0 * window_ms  # images never overlap
        key = self.image * span + (self.time_ms - float(self.time_ms.min()))
        ends = np.searchsorted(key, key + window_ms, side="left")
        return int((ends - np.arange(key.size)).max())

    def select(self, images) -> LayerSpikes:
        """The spikes of a subset of images, renumbered 0..len(images)-1."""
        images = np.asarray(images, dtype=np.int64)
        bounds = self.image_bounds()
        parts = [np.arange(bounds[i], bounds[i + 1]) for i in images]
        take = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        new_image = np.repeat(np.arange(images.size), [p.size for p in parts])
        return LayerSpikes(self.shape, int(images.size), new_image,
                           self.neuron[take], self.time_ms[take])

    @classmethod
    def concatenate(cls, parts: list[LayerSpikes]) -> LayerSpikes:
        """The images of ``parts`` one after the other (same layer shape)."""
        offsets = np.cumsum([0] + [p.n_images for p in parts[:-1]])
        return cls(parts[0].shape, int(sum(p.n_images for p in parts)),
                   np.concatenate([p.image + o for p, o in zip(parts, offsets, strict=True)]),
                   np.concatenate([p.neuron for p in parts]),
                   np.concatenate([p.time_ms for p in parts]))

    def to_source_times(self, schedule: Schedule) -> list[np.ndarray]:
        """Absolute spike times per neuron, for a ``SpikeSourceArray``."""
        absolute = schedule.start_ms(self.image) + self.time_ms
        order = np.lexsort((absolute, self.neuron))
        neuron = self.neuron[order]
        absolute = absolute[order]
        bounds = np.searchsorted(neuron, np.arange(self.n_neurons + 1))
        return [absolute[bounds[k]:bounds[k + 1]] for k in range(self.n_neurons)]

    @classmethod
    def from_recording(cls, shape, n_images: int, neuron, times_ms,
                       schedule: Schedule, first_image: int = 0) -> LayerSpikes:
        """Bin recorded absolute spike times into per-image windows.

        Spikes before the first window or after the last are dropped.
        ``first_image`` is the index (in the schedule) of image 0 here.
        """
        neuron = np.asarray(neuron, dtype=np.int64)
        times_ms = np.asarray(times_ms, dtype=np.float64)
        relative = times_ms - schedule.start_ms(first_image)
        image = np.floor(relative / schedule.period_ms).astype(np.int64)
        keep = (image >= 0) & (image < n_images)
        image = image[keep]
        time_in_window = relative[keep] - image * schedule.period_ms
        return cls.from_arrays(shape, n_images, image, neuron[keep], time_in_window)
