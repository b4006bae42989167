"""Figures: every plot writes a valid, non-blank PNG and refuses inconsistent input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import neo
import numpy as np
import pytest
import quantities as pq

from spinnconv import plots
from spinnconv.spikes import LayerSpikes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]


def assert_meaningful_png(path: Path, min_side: int = 200, min_coloured: float = 0.002
                          ) -> np.ndarray:
    """``path`` is a PNG of at least ``min_side`` px a side with visible, varied content.

    Axes, ticks and text alone are black on white; the data are drawn in colour, so a
    fraction ``min_coloured`` of the pixels must be clearly coloured (chroma > 0.25).
    """
    path = Path(path)
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size < 600_000, "figure file unexpectedly large"
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4), pixels.shape
    height, width = pixels.shape[:2]
    assert height > min_side and width > min_side, pixels.shape
    rgb = pixels[..., :3].astype(np.float64)
    assert rgb.std() > 0.05, "almost uniform image"
    not_white = np.any(rgb < 0.95, axis=-1).mean()
    assert not_white > 0.02, f"only {not_white:.1%} of the pixels differ from white"
    coloured = ((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.25).mean()
    assert coloured > min_coloured, f"only {coloured:.2%} of the pixels are coloured"
    return pixels


def membrane_signal(n_neurons: int = 3, duration_ms: int = 200, seed: int = 0
                    ) -> neo.AnalogSignal:
    """A neo AnalogSignal ``v`` (mV, sampled every 1 ms) of leaky, resetting membranes."""
    rng = np.random.default_rng(seed)
    v = np.full((duration_ms, n_neurons), -65.0)
    for t in range(1, duration_ms):
        drive = rng.uniform(0.0, 3.0, n_neurons) * (rng.uniform(size=n_neurons) < 0.4)
        v[t] = v[t - 1] - (v[t - 1] + 65.0) / 10.0 + drive
        v[t] = np.where(v[t] > -55.0, -70.0, v[t])
    return neo.AnalogSignal(v * pq.mV, sampling_period=1.0 * pq.ms, name="v",
                            array_annotations={"channel_index": np.arange(n_neurons)})


def random_spikes(shape=(12, 12, 2), n_images: int = 3, seed: int = 1) -> LayerSpikes:
    rng = np.random.default_rng(seed)
    n_neurons = int(np.prod(shape))
    n_spikes = 400
    return LayerSpikes.from_arrays(shape, n_images, rng.integers(0, n_images, n_spikes),
                                   rng.integers(0, n_neurons, n_spikes),
                                   rng.integers(0, 20, n_spikes).astype(float))


# --------------------------------------------------------------------------
# kernels
@pytest.mark.parametrize("channels", [1, 2, 30])
def test_plot_kernels_for_every_channel_count(tmp_path, channels):
    rng = np.random.default_rng(channels)
    kernels = rng.uniform(0.0, 1.0, size=(12, 5, 5, channels))
    path = plots.plot_kernels(kernels, tmp_path / f"kernels_{channels}.png",
                              title=f"layer kernels, C = {channels}")
    assert path == tmp_path / f"kernels_{channels}.png"
    assert_meaningful_png(path, min_coloured=0.1)


def test_plot_kernels_creates_parent_dirs_and_accepts_names(tmp_path):
    kernels = np.random.default_rng(3).uniform(size=(4, 3, 3, 3))
    path = plots.plot_kernels(kernels, tmp_path / "a" / "b" / "k.png", "deep",
                              channel_names=["map a", "map b", "map c"])
    assert_meaningful_png(path)


def test_plot_kernels_refuses_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="n_kernels, kh, kw, C"):
        plots.plot_kernels(np.zeros((4, 5, 5)), tmp_path / "k.png", "bad")
    with pytest.raises(ValueError, match="channel_names"):
        plots.plot_kernels(np.zeros((4, 5, 5, 2)), tmp_path / "k.png", "bad",
                           channel_names=["ON"])
    assert not (tmp_path / "k.png").exists()


# --------------------------------------------------------------------------
# input raster
def test_plot_input_raster_with_and_without_image(tmp_path):
    spikes = random_spikes()
    image = np.random.default_rng(2).uniform(size=(12, 12))
    assert_meaningful_png(plots.plot_input_raster(spikes, 1, tmp_path / "r1.png", image=image))
    assert_meaningful_png(plots.plot_input_raster(spikes, 2, tmp_path / "r2.png"))


def test_plot_input_raster_one_channel_and_empty_image(tmp_path):
    rng = np.random.default_rng(7)
    spikes = LayerSpikes.from_arrays((8, 8, 1), 2, [0] * 200, rng.integers(0, 64, 200),
                                     rng.integers(0, 20, 200).astype(float))
    assert_meaningful_png(plots.plot_input_raster(spikes, 0, tmp_path / "one.png"))
    # image 1 has no spike: still a figure (axes, labels), no error
    assert plots.plot_input_raster(spikes, 1, tmp_path / "empty.png").is_file()


@pytest.mark.parametrize("index", [-1, 3, 1.5])
def test_plot_input_raster_refuses_out_of_range_image(tmp_path, index):
    with pytest.raises(ValueError, match="image_index"):
        plots.plot_input_raster(random_spikes(n_images=3), index, tmp_path / "r.png")


def test_plot_input_raster_refuses_bad_image(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        plots.plot_input_raster(random_spikes(), 0, tmp_path / "r.png",
                                image=np.zeros((12, 12, 3)))


# --------------------------------------------------------------------------
# membrane traces
def test_plot_membrane_traces_from_signal_and_block(tmp_path):
    signal = membrane_signal(n_neurons=3)
    assert_meaningful_png(plots.plot_membrane_traces(signal, tmp_path / "v1.png", -55.0))
    block = neo.Block()
    segment = neo.Segment()
    segment.analogsignals.append(signal)
    block.segments.append(segment)
    path = plots.plot_membrane_traces(block, tmp_path / "v2.png",
                                      threshold_mv=np.array([-55.0, -54.0, -56.0]),
                                      title="kernel neurons", max_neurons=2,
                                      time_range_ms=(50.0, 150.0))
    assert_meaningful_png(path)


def test_plot_membrane_traces_rescales_units(tmp_path):
    volts = membrane_signal(n_neurons=2).rescale(pq.V)
    assert_meaningful_png(plots.plot_membrane_traces(volts, tmp_path / "v.png", -55.0))


def test_plot_membrane_traces_refusals(tmp_path):
    signal = membrane_signal(n_neurons=3)
    with pytest.raises(ValueError, match="threshold_mv"):
        plots.plot_membrane_traces(signal, tmp_path / "v.png", np.array([-55.0, -54.0]))
    block = neo.Block()
    segment = neo.Segment()
    segment.analogsignals.append(neo.AnalogSignal(np.zeros((10, 1)) * pq.nA,
                                                  sampling_period=1 * pq.ms, name="gsyn"))
    block.segments.append(segment)
    with pytest.raises(ValueError, match="'v'"):
        plots.plot_membrane_traces(block, tmp_path / "v.png", -55.0)
    with pytest.raises(ValueError, match="not a voltage"):
        plots.plot_membrane_traces(segment.analogsignals[0], tmp_path / "v.png", -55.0)
    with pytest.raises(TypeError):
        plots.plot_membrane_traces(np.zeros((10, 2)), tmp_path / "v.png", -55.0)


# --------------------------------------------------------------------------
# activity maps
def test_plot_activity_maps(tmp_path):
    rng = np.random.default_rng(4)
    shape = (10, 10, 30)
    counts = rng.poisson(0.5, size=10 * 10 * 30)
    assert_meaningful_png(plots.plot_activity_maps(counts, shape, tmp_path / "a.png",
                                                   "layer 1, image 0"), min_coloured=0.05)
    spikes = random_spikes()
    assert_meaningful_png(plots.plot_activity_maps(spikes.counts()[0], spikes.shape,
                                                   tmp_path / "input.png", "input"))


def test_plot_activity_maps_refuses_mismatched_length(tmp_path):
    with pytest.raises(ValueError, match="H\\*W\\*C"):
        plots.plot_activity_maps(np.zeros(99), (10, 10, 1), tmp_path / "a.png", "bad")
    with pytest.raises(ValueError, match="H\\*W\\*C"):
        plots.plot_activity_maps(np.zeros((2, 100)), (10, 10, 2), tmp_path / "a.png", "bad")
    with pytest.raises(ValueError, match="shape"):
        plots.plot_activity_maps(np.zeros(100), (10, 10), tmp_path / "a.png", "bad")
    with pytest.raises(ValueError, match="non-negative"):
        plots.plot_activity_maps(-np.ones(100), (10, 10, 1), tmp_path / "a.png", "bad")


# --------------------------------------------------------------------------
# convergence and confusion matrix
def test_plot_convergence(tmp_path):
    rng = np.random.default_rng(5)
    curves = {"layer 1": 0.2 * np.exp(-np.arange(40) / 10) + rng.uniform(0, 0.005, 40),
              "layer 2": np.array([0.22, 0.15, 0.1, 0.07, 0.05])}
    assert_meaningful_png(plots.plot_convergence(curves, tmp_path / "c.png", chunk_patches=100))


def test_plot_convergence_refusals(tmp_path):
    with pytest.raises(ValueError, match="chunk_patches"):
        plots.plot_convergence({"layer 1": np.ones(3)}, tmp_path / "c.png", chunk_patches=0)
    with pytest.raises(ValueError, match="empty"):
        plots.plot_convergence({}, tmp_path / "c.png", chunk_patches=10)
    with pytest.raises(ValueError, match="1-D"):
        plots.plot_convergence({"layer 1": np.ones((2, 2))}, tmp_path / "c.png", 10)


def test_plot_confusion_matrix(tmp_path):
    rng = np.random.default_rng(6)
    errors = rng.poisson(2, (10, 10)) * (1 - np.eye(10, dtype=int))
    matrix = np.diag(rng.integers(80, 120, 10)) + errors
    accuracy = np.trace(matrix) / matrix.sum()
    assert_meaningful_png(plots.plot_confusion_matrix(matrix.tolist(), tmp_path / "m.png",
                                                      accuracy=accuracy))
    assert_meaningful_png(plots.plot_confusion_matrix(matrix, tmp_path / "m2.png"))


def test_plot_confusion_matrix_refusals(tmp_path):
    with pytest.raises(ValueError, match="square"):
        plots.plot_confusion_matrix(np.zeros((10, 9)), tmp_path / "m.png")
    with pytest.raises(ValueError, match="accuracy"):
        plots.plot_confusion_matrix(np.eye(10), tmp_path / "m.png", accuracy=97.0)


# --------------------------------------------------------------------------
def test_works_headless_without_pyplot(tmp_path):
    """No display, an interactive backend requested: figures are still written, via Agg."""
    code = ("import sys, numpy as np; from spinnconv import plots; "
            f"plots.plot_convergence({{'l1': np.ones(3)}}, {str(tmp_path / 'h.png')!r}, 5); "
            "assert 'matplotlib.pyplot' not in sys.modules")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert_meaningful_png(tmp_path / "h.png")
