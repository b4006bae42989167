"""Figures of a spinnconv run: kernels, input spikes, membranes, activity, training, readout.

Every function takes plain arrays (or neo objects / :class:`~spinnconv.spikes.LayerSpikes`),
writes exactly one PNG (about 100 dpi) and returns its :class:`~pathlib.Path`. Parent
directories are created.

Figures are built with :class:`matplotlib.figure.Figure` and rendered by the Agg canvas,
never through ``pyplot``: nothing needs a display, no figure is registered in a global
figure manager (so none can leak), and the backend of a program that imports this module
(a notebook, say) is left untouched. No simulator is imported.

Units: times in ms, membrane potentials in mV, kernel weights as a fraction of the STDP
weight bound ``w_max`` (dimensionless, in [0, 1]), activity in spikes per image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from .spikes import LayerSpikes

if TYPE_CHECKING:
    import neo

__all__ = [
    "plot_activity_maps",
    "plot_confusion_matrix",
    "plot_convergence",
    "plot_input_raster",
    "plot_kernels",
    "plot_layer_diagnostics",
    "plot_membrane_traces",
]

DPI = 100
#: Colour map of kernel weights; values outside a kernel (separators) are drawn white.
_WEIGHT_CMAP = "viridis"
_WEIGHT_LABEL = "weight / w_max"
_ON_OFF_COLOURS = ("tab:red", "tab:blue")


# --------------------------------------------------------------------------
# helpers
def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    fig.clear()
    return path


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid of ``n`` panels, at most ``max_cols`` wide."""
    cols = max(1, min(n, max_cols, math.ceil(math.sqrt(n))))
    return math.ceil(n / cols), cols


def _weight_cmap():
    return colormaps[_WEIGHT_CMAP].with_extremes(bad="white")


def _hide_unused(axes: np.ndarray, used: int) -> None:
    for ax in axes.ravel()[used:]:
        ax.set_visible(False)


def _channel_names(channels: int, names: Sequence[str] | None, what: str) -> list[str]:
    if names is None:
        if channels == 2:
            return ["ON", "OFF"]
        if channels == 1:
            return [what]
        return [str(c) for c in range(channels)]
    names = [str(name) for name in names]
    if len(names) != channels:
        raise ValueError(f"channel_names has {len(names)} names for {channels} channels")
    return names


# --------------------------------------------------------------------------
# 1. kernels
def plot_kernels(kernels: np.ndarray, path: str | Path, title: str,
                 channel_names: Sequence[str] | None = None) -> Path:
    """Learned kernels ``(n_kernels, kh, kw, C)`` (weight / w_max, in [0, 1]) as heatmaps.

    * ``C == 1``: one ``kh × kw`` heatmap per kernel.
    * ``C == 2`` (DoG ON/OFF input): per kernel the ON map and the OFF map side by side
      in one panel, separated by a white column, ON on the left.
    * ``C > 2`` (deeper layers): left, the ``n_kernels × C`` heatmap of each kernel's
      mean weight over its ``kh × kw`` window per input map (which maps a kernel reads);
      right, per kernel the ``kh × kw`` map of its mean weight over the C input maps
      (where it reads). Means rather than sums keep everything on the [0, 1] scale.

    All panels share one colour scale [0, 1] (weight as a fraction of w_max).
    ``channel_names`` labels the C input channels (default ON/OFF when C == 2).
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim != 4 or kernels.shape[0] == 0 or 0 in kernels.shape:
        raise ValueError(f"kernels must have shape (n_kernels, kh, kw, C), got {kernels.shape}")
    channels = kernels.shape[3]
    names = _channel_names(channels, channel_names, "input")
    if channels <= 2:
        return _plot_spatial_kernels(kernels, path, title, names)
    return _plot_deep_kernels(kernels, path, title, names)


def _plot_spatial_kernels(kernels, path, title, names) -> Path:
    n, kh, kw, channels = kernels.shape
    gap = 1 if channels > 1 else 0
    # one image per kernel: the channels side by side with a NaN (white) separator column
    width = channels * kw + (channels - 1) * gap
    tiles = np.full((n, kh, width), np.nan)
    for c in range(channels):
        tiles[:, :, c * (kw + gap):c * (kw + gap) + kw] = kernels[..., c]
    rows, cols = _grid(n, 10 if channels == 1 else 6)
    panel_w = 0.18 * width + 0.25
    panel_h = 0.18 * kh + 0.45
    fig = _figure(max(4.5, cols * panel_w + 1.3), max(3.2, rows * panel_h + 1.0))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False))
    cmap = _weight_cmap()
    image = None
    for k, ax in enumerate(axes.ravel()[:n]):
        image = ax.imshow(tiles[k], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"kernel {k}", fontsize=8, pad=2)
        ax.set_yticks([])
        if channels > 1:
            ax.set_xticks([c * (kw + gap) + (kw - 1) / 2 for c in range(channels)], names,
                          fontsize=7)
            ax.tick_params(axis="x", length=0, pad=1)
        else:
            ax.set_xticks([])
    _hide_unused(axes, n)
    layout = (f"each panel: {' | '.join(names)} maps of one kernel"
              if channels > 1 else "one panel per kernel")
    fig.suptitle(f"{title}\n{n} kernels of {kh}×{kw}×{channels}; {layout}", fontsize=10)
    fig.subplots_adjust(left=0.03, right=0.86, bottom=0.04, top=1 - 0.75 / fig.get_figheight(),
                        wspace=0.15, hspace=0.45)
    cax = fig.add_axes([0.89, 0.15, 0.025, 0.65])
    fig.colorbar(image, cax=cax).set_label(_WEIGHT_LABEL)
    return _save(fig, path)


def _plot_deep_kernels(kernels, path, title, names) -> Path:
    n, kh, kw, channels = kernels.shape
    per_map = kernels.mean(axis=(1, 2))          # (n, C)
    spatial = kernels.mean(axis=3)               # (n, kh, kw)
    rows, cols = _grid(n, 10)
    left_w = min(6.0, max(2.5, 0.13 * channels + 1.2))
    right_w = 0.75 * cols
    height = min(11.0, max(4.2, 1.4 + 0.8 * rows))
    fig = _figure(left_w + right_w + 1.6, height)
    top = 1 - 1.3 / height
    outer = fig.add_gridspec(1, 3, width_ratios=[left_w, right_w, 0.18], wspace=0.12,
                             left=0.07, right=0.93, bottom=0.9 / height, top=top)
    cmap = _weight_cmap()
    ax = fig.add_subplot(outer[0])
    image = ax.imshow(per_map, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto",
                      interpolation="nearest")
    ax.set_xlabel("input map")
    ax.set_ylabel("kernel")
    step = max(1, math.ceil(channels / 15))
    ax.set_xticks(np.arange(0, channels, step), names[::step], fontsize=7,
                  rotation=90 if max(len(s) for s in names) > 3 else 0)
    ax.set_yticks(np.arange(0, n, max(1, math.ceil(n / 20))))
    ax.set_title(f"which maps: mean over the {kh}×{kw}\nwindow, per input map", fontsize=9)
    inner = outer[1].subgridspec(rows, cols, wspace=0.15, hspace=0.35)
    for k in range(n):
        kax = fig.add_subplot(inner[k // cols, k % cols])
        kax.imshow(spatial[k], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        kax.set_title(f"{k}", fontsize=7, pad=1)
        kax.set_xticks([])
        kax.set_yticks([])
    box = outer[1].get_position(fig)
    fig.text((box.x0 + box.x1) / 2, box.y1 + 0.25 / height,
             f"where: mean over the {channels} input maps,\nper window position "
             "(one panel per kernel)", ha="center", va="bottom", fontsize=9)
    cax = fig.add_subplot(outer[2])
    fig.colorbar(image, cax=cax).set_label(_WEIGHT_LABEL)
    fig.suptitle(f"{title}\n{n} kernels of {kh}×{kw}×{channels}", fontsize=10)
    return _save(fig, path)


# --------------------------------------------------------------------------
# 2. input raster
def _checked_image(image: np.ndarray | None) -> np.ndarray | None:
    """``image`` as a 2-D float array (``(H, W, 1)`` squeezed); ``ValueError`` otherwise."""
    if image is None:
        return None
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {image.shape}")
    return image


def _channel_colours(channels: int) -> list:
    """ON red and OFF blue for two channels, else ``tab10`` colours."""
    if channels == 2:
        return list(_ON_OFF_COLOURS)
    palette = colormaps["tab10"]
    return [palette(c % 10) for c in range(channels)]


def plot_input_raster(spikes: LayerSpikes, image_index: int, path: str | Path,
                      image: np.ndarray | None = None,
                      channel_names: Sequence[str] | None = None) -> Path:
    """Raster of the input spikes of image ``image_index``: time (ms) vs neuron index.

    Neuron indices are channel-major (``c*H*W + y*W + x``), so each channel is a band;
    channels are coloured (ON red, OFF blue when C == 2). Times are relative to the
    start of the image's window. ``image`` (2-D, or ``(H, W, 1)``), when given, is
    drawn beside the raster in grey.
    """
    if not isinstance(spikes, LayerSpikes):
        raise TypeError(f"spikes must be a LayerSpikes, got {type(spikes).__name__}")
    index = int(image_index)
    if index != image_index or not 0 <= index < spikes.n_images:
        raise ValueError(f"image_index {image_index!r} out of range: the spikes hold "
                         f"{spikes.n_images} images")
    image = _checked_image(image)
    height, width, channels = spikes.shape
    names = _channel_names(channels, channel_names, "intensity")
    bounds = spikes.image_bounds()
    neuron = spikes.neuron[bounds[index]:bounds[index + 1]]
    time_ms = spikes.time_ms[bounds[index]:bounds[index + 1]]
    per_map = height * width
    channel = neuron // per_map

    fig = _figure(10.0 if image is not None else 7.5, 5.0)
    if image is not None:
        ax_img, ax = fig.subplots(1, 2, width_ratios=[1, 2.4])
    else:
        ax = fig.subplots()
    colours = _channel_colours(channels)
    band_centres, band_labels = [], []
    for c in range(channels):
        mine = channel == c
        ax.scatter(time_ms[mine], neuron[mine], s=14, marker="|", linewidths=1.0,
                   color=colours[c], rasterized=True)
        if c > 0:
            ax.axhline(c * per_map - 0.5, color="0.5", linewidth=0.6, linestyle=":")
        band_centres.append((c + 0.5) * per_map - 0.5)
        band_labels.append(f"{names[c]}\n{int(mine.sum())} spikes")
    ax.set_ylim(-0.5, spikes.n_neurons - 0.5)
    t_end = float(time_ms.max()) if time_ms.size else 1.0
    ax.set_xlim(-0.02 * t_end - 0.5, 1.02 * t_end + 0.5)
    ax.set_xlabel("time since image onset (ms)")
    ax.set_ylabel("input neuron (c·H·W + y·W + x)")
    ax.set_title(f"input spikes of image {index}: {neuron.size} spikes, "
                 f"{height}×{width}×{channels} neurons", fontsize=10)
    if channels <= 10:
        bands = ax.secondary_yaxis("right")
        bands.set_yticks(band_centres, band_labels, fontsize=8)
        bands.tick_params(length=0)
        for label, colour in zip(bands.get_yticklabels(), colours, strict=False):
            label.set_color(colour)
    if not neuron.size:
        ax.text(0.5, 0.5, "no spikes", transform=ax.transAxes, ha="center", va="center")
    if image is not None:
        shown = ax_img.imshow(image, cmap="gray", interpolation="nearest")
        ax_img.set_title(f"image {index}", fontsize=10)
        ax_img.set_xlabel("x (pixel)")
        ax_img.set_ylabel("y (pixel)")
        fig.colorbar(shown, ax=ax_img, shrink=0.6, label="pixel value")
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------
# 3. membrane traces
def _membrane_signal(block_or_signal):
    """The ``v`` signal of the first segment of a neo Block (or the signal itself)."""
    import neo

    if isinstance(block_or_signal, (neo.AnalogSignal, neo.IrregularlySampledSignal)):
        return block_or_signal
    if isinstance(block_or_signal, neo.Block):
        if not block_or_signal.segments:
            raise ValueError("the neo Block has no segment")
        segment = block_or_signal.segments[0]
    elif isinstance(block_or_signal, neo.Segment):
        segment = block_or_signal
    else:
        raise TypeError("expected a neo Block, Segment, AnalogSignal or "
                        f"IrregularlySampledSignal, got {type(block_or_signal).__name__}")
    signals = list(segment.analogsignals) + list(segment.irregularlysampledsignals)
    for signal in signals:
        if signal.name == "v":
            return signal
    names = [signal.name for signal in signals]
    raise ValueError(f"no signal named 'v' in the first segment (found {names}); record "
                     "'v' on the population")


def plot_membrane_traces(block_or_signal: neo.Block | neo.Segment | neo.AnalogSignal
                         | neo.IrregularlySampledSignal, path: str | Path,
                         threshold_mv: float | np.ndarray,
                         title: str = "Membrane potential of kernel neurons during STDP",
                         max_neurons: int = 4,
                         time_range_ms: tuple[float, float] | None = None) -> Path:
    """Membrane potential (mV) vs time (ms) of the first ``max_neurons`` recorded neurons.

    ``block_or_signal``: a neo ``Block`` (its first segment's signal named ``"v"``), a
    ``Segment``, or an ``AnalogSignal`` / ``IrregularlySampledSignal`` directly; any
    voltage and time units (rescaled to mV and ms). One panel per neuron, with its
    firing threshold as a dashed line: ``threshold_mv`` is one value for all, or one
    per recorded channel (e.g. the per-kernel thresholds after homeostasis).
    ``time_range_ms`` restricts the plot to ``[start, stop)`` ms.
    """
    signal = _membrane_signal(block_or_signal)
    try:
        volts = np.asarray(signal.rescale("mV").magnitude, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"the membrane signal is not a voltage ({signal.units}): {err}") from None
    times = np.asarray(signal.times.rescale("ms").magnitude, dtype=np.float64)
    if volts.ndim == 1:
        volts = volts[:, None]
    n_samples, n_channels = volts.shape
    if n_samples == 0 or n_channels == 0:
        raise ValueError("the membrane signal is empty")
    threshold = np.asarray(threshold_mv, dtype=np.float64)
    if threshold.ndim == 0:
        threshold = np.full(n_channels, float(threshold))
    elif threshold.shape != (n_channels,):
        raise ValueError(f"threshold_mv must be one value or one per recorded neuron "
                         f"({n_channels}), got shape {threshold.shape}")
    if max_neurons < 1:
        raise ValueError(f"max_neurons must be >= 1, got {max_neurons}")
    labels = np.arange(n_channels)
    annotations = getattr(signal, "array_annotations", {}) or {}
    if "channel_index" in annotations and len(annotations["channel_index"]) == n_channels:
        labels = np.asarray(annotations["channel_index"])
    if time_range_ms is not None:
        keep = (times >= time_range_ms[0]) & (times < time_range_ms[1])
        if not keep.any():
            raise ValueError(f"no sample in time_range_ms {time_range_ms}; the signal spans "
                             f"{times[0]:.1f}–{times[-1]:.1f} ms")
        times, volts = times[keep], volts[keep]
    shown = min(n_channels, int(max_neurons))
    fig = _figure(9.0, 1.2 + 1.5 * shown)
    axes = np.atleast_1d(fig.subplots(shown, 1, sharex=True, sharey=True, squeeze=False)[:, 0])
    palette = colormaps["tab10"]
    for i, ax in enumerate(axes):
        colour = palette(i % 10)
        ax.plot(times, volts[:, i], color=colour, linewidth=0.8)
        ax.axhline(threshold[i], color="0.2", linestyle="--", linewidth=1.0)
        ax.set_ylabel("v (mV)")
        ax.set_title(f"neuron {labels[i]}: threshold {threshold[i]:.1f} mV (dashed)",
                     fontsize=8, loc="left", pad=2)
        ax.grid(alpha=0.3)
    low = min(float(volts[:, :shown].min()), float(threshold[:shown].min()))
    high = max(float(volts[:, :shown].max()), float(threshold[:shown].max()))
    margin = 0.08 * max(high - low, 1.0)
    axes[0].set_ylim(low - margin, high + margin)
    axes[-1].set_xlabel("simulation time (ms)")
    more = f" (first {shown} of {n_channels} recorded)" if shown < n_channels else ""
    fig.suptitle(f"{title}{more}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------
# 4. activity maps
def plot_activity_maps(counts: np.ndarray, shape: tuple[int, int, int], path: str | Path,
                       title: str, channel_names: Sequence[str] | None = None) -> Path:
    """Spike counts of one image in a layer of shape ``(H, W, C)``, one small map per channel.

    ``counts`` is the flat channel-major vector (length ``H*W*C``, index
    ``c*H*W + y*W + x``), e.g. one row of :meth:`LayerSpikes.counts`. All maps share
    one colour scale, from 0 to the largest count (spikes per neuron for this image).
    """
    if len(shape) != 3 or any(int(s) != s or s < 1 for s in shape):
        raise ValueError(f"shape must be three positive integers (H, W, C), got {shape!r}")
    height, width, channels = (int(s) for s in shape)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size != height * width * channels:
        raise ValueError(f"counts must be a flat vector of H*W*C = {height * width * channels} "
                         f"values for shape {tuple(shape)}, got shape {counts.shape}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("counts must be finite and non-negative")
    names = _channel_names(channels, channel_names, "map 0")
    if channel_names is None and channels > 2:
        names = [f"map {c}" for c in range(channels)]
    maps = counts.reshape(channels, height, width)
    vmax = max(1.0, float(maps.max()))
    rows, cols = _grid(channels, 10)
    panel = 1.25 if max(height, width) >= 8 else 0.9
    aspect = width / height
    fig = _figure(max(5.5, cols * panel * min(2.0, max(aspect, 0.5)) + 1.4),
                  max(3.0, rows * (panel + 0.25) + 0.9))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False))
    image = None
    for c, ax in enumerate(axes.ravel()[:channels]):
        image = ax.imshow(maps[c], cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(f"{names[c]}: {int(maps[c].sum())}", fontsize=7, pad=2)
        ax.set_xticks([])
        ax.set_yticks([])
    _hide_unused(axes, channels)
    fig.suptitle(f"{title}\n{int(counts.sum())} spikes, {height}×{width}×{channels} neurons; "
                 "panel: map: its spikes", fontsize=10)
    fig.subplots_adjust(left=0.03, right=0.85, bottom=0.04, top=1 - 0.75 / fig.get_figheight(),
                        wspace=0.12, hspace=0.35)
    cax = fig.add_axes([0.88, 0.15, 0.025, 0.65])
    bar = fig.colorbar(image, cax=cax)
    bar.set_label("spikes")
    if vmax <= 10:
        bar.set_ticks(np.arange(0, int(vmax) + 1))
    return _save(fig, path)


# --------------------------------------------------------------------------
# 5. convergence
def plot_convergence(curves: Mapping[str, np.ndarray], path: str | Path,
                     chunk_patches: int) -> Path:
    """Kheradpisheh's convergence C = mean(w(1 − w)) per layer vs patches presented.

    ``curves`` maps a label (e.g. ``"layer 1"``) to the values recorded after each
    training chunk (``convergence`` of ``layer<N>.npz``); value ``i`` is drawn at
    ``(i + 1) * chunk_patches`` patches. C is dimensionless: 0 for binary weights,
    at most 0.25.
    """
    if not curves:
        raise ValueError("curves is empty: nothing to plot")
    if isinstance(chunk_patches, bool) or int(chunk_patches) != chunk_patches \
            or chunk_patches < 1:
        raise ValueError(f"chunk_patches must be a positive integer, got {chunk_patches!r}")
    chunk_patches = int(chunk_patches)
    fig = _figure(7.5, 4.5)
    ax = fig.subplots()
    top = 0.0
    for label, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"curve {label!r} must be a non-empty 1-D array, got shape "
                             f"{values.shape}")
        patches = (np.arange(values.size) + 1) * chunk_patches
        ax.plot(patches, values, marker="o" if values.size <= 40 else None, markersize=3,
                linewidth=1.4, label=f"{label} (final {values[-1]:.4f})")
        top = max(top, float(np.nanmax(values)))
    ax.set_xlabel("patches presented")
    ax.set_ylabel("convergence C = mean w(1 − w)  (w = weight / w_max)")
    ax.set_ylim(0.0, max(top * 1.1, 1e-3))
    ax.set_xlim(left=0)
    ax.set_title(f"STDP convergence (C → 0 as weights become binary); "
                 f"one point per {chunk_patches} patches", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_layer_diagnostics(layers: Mapping[str, Mapping[str, float | None]],
                           path: str | Path) -> Path:
    """Per conv layer: validation accuracy of the quick readout of its pooled counts
    (left) and the fraction of its neurons that fire per image, with the calibration
    target where there is one (right).

    ``layers`` maps a label (``"layer 1"``) to its diagnostics (keys
    ``readout_accuracy``, ``firing_fraction``, ``target_firing_fraction``; ``None``
    where not measured).
    """
    if not layers:
        raise ValueError("layers is empty: nothing to plot")
    labels = list(layers)

    def values(key: str) -> np.ndarray:
        return np.array([np.nan if layers[k].get(key) is None else float(layers[k][key])
                         for k in labels])

    accuracy, fraction = values("readout_accuracy"), values("firing_fraction")
    target = values("target_firing_fraction")
    fig = _figure(8.0, 3.6)
    left, right = fig.subplots(1, 2)
    x = np.arange(len(labels))
    left.bar(x, np.nan_to_num(accuracy), color="tab:green")
    for i, value in enumerate(accuracy):
        left.text(i, 0.02, "n/a" if np.isnan(value) else f"{value:.3f}", ha="center",
                  fontsize=8, color="white" if not np.isnan(value) else "black")
    left.set_ylim(0.0, 1.0)
    left.set_ylabel("validation accuracy (held-out training images)")
    left.set_title("information per layer: linear readout of its pooled counts", fontsize=9)
    right.bar(x, np.nan_to_num(fraction), color="tab:blue", label="simulated")
    if np.any(~np.isnan(target)):
        right.scatter(x, target, color="tab:red", marker="_", s=400, zorder=3,
                      label="calibration target")
    right.set_ylabel("fraction of neurons firing per image")
    right.set_title("firing fraction (0: silent, 1: saturated)", fontsize=9)
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_xticks(x, labels)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------
# 6. confusion matrix
def plot_confusion_matrix(matrix, path: str | Path, accuracy: float | None = None) -> Path:
    """Confusion matrix of the test run: counts (images), rows true, columns predicted.

    ``matrix`` is square (10 × 10 for digits), e.g. ``results.json``'s
    ``confusion_matrix``; each cell shows its count. ``accuracy`` is a fraction in
    [0, 1], shown in the title as a percentage.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"matrix must be square (n_classes × n_classes), got {matrix.shape}")
    if not np.all(np.isfinite(matrix.astype(np.float64))) or np.any(matrix < 0):
        raise ValueError("matrix must hold finite non-negative counts")
    if accuracy is not None and not 0.0 <= float(accuracy) <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy!r}")
    n = matrix.shape[0]
    total = round(float(matrix.sum()))
    fig = _figure(max(5.5, 0.55 * n + 1.8), max(4.8, 0.55 * n + 1.2))
    ax = fig.subplots()
    # square-root colour scale: the few errors off the diagonal still get a visible tint
    norm = PowerNorm(0.5, vmin=0.0, vmax=max(1.0, float(matrix.max())))
    image = ax.imshow(matrix, cmap="Blues", norm=norm, interpolation="nearest")
    size = 8 if n <= 12 else 6
    for (row, col), value in np.ndenumerate(matrix):
        text = f"{value:g}" if not float(value).is_integer() else f"{int(value)}"
        ax.text(col, row, text, ha="center", va="center", fontsize=size,
                color="white" if norm(value) > 0.6 else "black")
    ax.set_xticks(np.arange(n))
    ax.set_yticks(np.arange(n))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    heading = f"Confusion matrix, {total} test images"
    if accuracy is not None:
        heading += f"\naccuracy {100.0 * float(accuracy):.2f} %"
    ax.set_title(heading, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="images (square-root scale)")
    fig.tight_layout()
    return _save(fig, path)
