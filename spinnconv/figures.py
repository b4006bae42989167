"""Which figures a model dir gets, and from what: the glue between the pipeline and
:mod:`spinnconv.plots`. Figures land in ``<model-dir>/figures/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import neo
import numpy as np
import quantities as pq

from . import plots


def input_channel_names(model, params: dict) -> list[str] | None:
    """Names of the input channels: ON/OFF (DoG or events), per colour for colour
    images (R ON, R OFF, ... with DoG; R, G, B without)."""
    channels = model.input_shape[2]
    if channels == 2:
        return ["ON", "OFF"]
    colours = ["R", "G", "B"] if channels in (3, 6) else None
    if params["dog"] and channels % 2 == 0:
        colours = colours or [str(k) for k in range(channels // 2)]
        return [f"{colour} {polarity}" for colour in colours for polarity in ("ON", "OFF")]
    return colours if channels == 3 else None


def training_figures(model_dir: Path, model, number: int, params: dict) -> list[Path]:
    """Kernels and membrane traces of conv layer ``number``, and all convergence curves."""
    from .checkpoint import ModelDir

    figures = model_dir / "figures"
    manifest = ModelDir(model_dir).manifest()
    arrays = ModelDir(model_dir).load_layer(number, manifest)
    names = input_channel_names(model, params) if number == 1 else None
    written = [plots.plot_kernels(arrays["kernels"], figures / f"kernels_layer{number}.png",
                                  f"Conv layer {number}: kernels learned by STDP",
                                  channel_names=names)]
    if arrays.get("v_trace_mv") is not None and np.size(arrays["v_trace_mv"]):
        times = arrays["v_trace_t_ms"]
        signal = neo.AnalogSignal(arrays["v_trace_mv"], units="mV",
                                  sampling_period=params["timestep_ms"] * pq.ms,
                                  t_start=times[0] * pq.ms, name="v")
        traced = arrays["v_trace_mv"].shape[1]
        written.append(plots.plot_membrane_traces(
            signal, figures / f"membrane_layer{number}.png",
            threshold_mv=arrays["thresholds_mv"][:traced],
            title=f"Conv layer {number}: kernel neurons during the last STDP patches"))
    curves = {}
    for layer in manifest["trained"]["layers"]:
        if layer <= model.n_conv_layers:
            curve = ModelDir(model_dir).load_layer(layer, manifest)["convergence"]
            if curve.size:  # empty for untrained (random-kernel) layers
                curves[f"layer {layer}"] = curve
    if curves:
        written.append(plots.plot_convergence(curves, figures / "convergence.png",
                                              int(params["train_chunk_patches"])))
    stored = manifest.get("diagnostics", {})
    diagnostics = {f"layer {layer}": {key: stored[str(layer)].get(key) for key in (
        "readout_accuracy", "firing_fraction", "target_firing_fraction")}
        for layer in manifest["trained"]["layers"]
        if "readout_accuracy" in stored.get(str(layer), {})}
    if diagnostics:
        written.append(plots.plot_layer_diagnostics(diagnostics, figures / "layers.png"))
    return written


def testing_figures(model_dir: Path, model, input_spikes, layer_spikes, image,
                    params: dict) -> list[Path]:
    """Confusion matrix, the input raster of one test image and its activity per layer."""
    figures = model_dir / "figures"
    results = json.loads((model_dir / "results.json").read_text())
    names = input_channel_names(model, params)
    written = [
        plots.plot_confusion_matrix(results["confusion_matrix"],
                                    figures / "confusion_matrix.png", results["accuracy"]),
        plots.plot_input_raster(input_spikes, 0, figures / "input_raster.png", image=image,
                                channel_names=names),
    ]
    for position, spikes in enumerate(layer_spikes):
        layer = model.layers[position]
        written.append(plots.plot_activity_maps(
            spikes.counts()[0], spikes.shape, figures / f"activity_layer{position + 1}.png",
            f"Layer {position + 1} ({layer.describe()}): spikes per map, one test image"))
    return written
