"""Checks that run before anything is written: parameter physics, sizes against
memory, the training data, strict integers on the command line.

Every failure is a :class:`~spinnconv.errors.UsageError` whose message says the fix.
"""

from __future__ import annotations

import argparse
import math
import os
import re

import numpy as np

from .errors import UsageError

#: NEST takes ``seed + 1`` as its RNG seed, which must lie in 1..2**32 - 1.
SEED_MAX = 2**32 - 2
#: Longest synaptic delay sPyNNaker 7.4.1 makes, in time steps: 16 delay slots on a
#: core of 256 neurons with up to 4 synapse types (``PopulationVertex``: 2 ** (14 -
#: atom bits - synapse-type bits)) plus 8 delay-extension stages of 16 slots each
#: (``DelayExtensionVertex.MAX_SLOTS``).
MAX_DELAY_STEPS = 144
#: Largest magnitude of any numeric parameter (beyond it sizes overflow int32 arrays).
MAX_MAGNITUDE = 1e9
MAX_INTEGER = 2**31 - 1
#: Longest presentation or rest period (ms) of one image.
MAX_PERIOD_MS = 10_000.0
#: NEST's time grid: the time step must be a multiple of this (ms).
TIC_MS = 0.001
_DIGITS = re.compile(r"-?[0-9]+")


def strict_int(text: str) -> int:
    """``argparse`` type: an integer written with ASCII digits only (no ``²``, ``1e3``,
    ``0x10``, ``+1`` or spaces)."""
    if not isinstance(text, str) or not _DIGITS.fullmatch(text) or len(text) > 40:
        raise argparse.ArgumentTypeError(f"must be a whole number written with the digits "
                                         f"0-9, got {text!r}")
    return int(text)


def check_seed(seed, where: str = "parameter 'seed'") -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise UsageError(f"{where} must be an integer in 0..{SEED_MAX}, got {seed!r}")


def _multiple(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) <= 1e-9 * max(1.0, abs(ratio))


def check_parameters(params: dict) -> None:
    """Relations between parameters that their types and signs do not cover."""
    check_seed(params["seed"])
    _check_neuron_and_stdp(params)
    _check_timing(params)
    dt = params["timestep_ms"]
    if params["code"] in ("rate", "poisson") and params["max_rate_hz"] * dt / 1000.0 > 1.0:
        raise UsageError(f"parameter 'max_rate_hz' must be at most {1000.0 / dt:g} Hz (one "
                         f"spike per {dt:g} ms time step), got {params['max_rate_hz']!r}")
    if params["dog"] and (params["dog_size"] % 2 == 0 or params["dog_size"] < 3):
        raise UsageError(f"parameter 'dog_size' must be odd and at least 3, got "
                         f"{params['dog_size']!r}")
    check_architecture_sizes(params["architecture"])


def _check_neuron_and_stdp(params: dict) -> None:
    """Time constants > 0, a threshold above rest and reset."""
    neuron = params["neuron"]
    for name, what in (("cm", "capacitance"), ("tau_m", "time constant"),
                       ("tau_syn_E", "time constant"), ("tau_syn_I", "time constant")):
        if not neuron[name] > 0:
            raise UsageError(f"parameter 'neuron.{name}' must be > 0 (a {what}), got "
                             f"{neuron[name]!r}")
    for name in ("tau_plus_ms", "tau_minus_ms"):
        if not params["stdp"][name] > 0:
            raise UsageError(f"parameter 'stdp.{name}' must be > 0 (a time constant), got "
                             f"{params['stdp'][name]!r}")
    if neuron["v_thresh"] <= neuron["v_reset"]:
        raise UsageError("parameter 'neuron.v_thresh' must be above 'neuron.v_reset' "
                         f"({neuron['v_thresh']} <= {neuron['v_reset']} mV)")
    if neuron["v_thresh"] <= neuron["v_rest"]:
        raise UsageError("parameter 'neuron.v_thresh' must be above 'neuron.v_rest' "
                         f"({neuron['v_thresh']} <= {neuron['v_rest']} mV): the neurons would "
                         "fire without input")


def _check_timing(params: dict) -> None:
    """The time step on NEST's grid, periods and the synaptic delay on the time step."""
    dt = params["timestep_ms"]
    if not 0.01 <= dt <= 10.0 or not _multiple(dt, TIC_MS):
        raise UsageError(f"parameter 'timestep_ms' must be in 0.01..10 ms and a multiple of "
                         f"{TIC_MS} ms, got {dt!r} (SpiNNaker runs 1.0)")
    for name in ("presentation_ms", "rest_ms"):
        if params[name] > MAX_PERIOD_MS:
            raise UsageError(f"parameter '{name}' must be at most {MAX_PERIOD_MS:g} ms, got "
                             f"{params[name]!r}")
    delay = params["synapse_delay_ms"]
    if not _multiple(delay, dt):
        steps = max(1, round(delay / dt))
        raise UsageError(f"parameter 'synapse_delay_ms' must be a multiple of timestep_ms "
                         f"({dt} ms), got {delay!r}; use e.g. {steps * dt:g}")
    steps = round(delay / dt)
    if not 1 <= steps <= MAX_DELAY_STEPS:
        raise UsageError(f"parameter 'synapse_delay_ms' must be 1..{MAX_DELAY_STEPS} time steps "
                         f"({dt:g}..{MAX_DELAY_STEPS * dt:g} ms, sPyNNaker's range), got "
                         f"{delay!r} ms")


def check_architecture_sizes(architecture: list) -> None:
    """Padding smaller than the kernel (a wider border is windows of padding only)."""
    for number, entry in enumerate(architecture, start=1):
        if not isinstance(entry, dict) or entry.get("kind") != "conv":
            continue
        kernel, padding = entry.get("kernel_shape", (5, 5)), entry.get("padding", 0)
        sizes = kernel if isinstance(kernel, (list, tuple)) else [kernel]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in [*sizes, padding]):
            continue  # the model reports malformed sizes
        if sizes and padding >= min(sizes):
            raise UsageError(f"architecture entry {number} (conv): padding {padding} must be "
                             f"smaller than the kernel ({min(sizes)}); use at most "
                             f"{min(sizes) - 1}")


def _max_spikes_per_input(params: dict) -> float:
    """Upper bound of the spikes one input neuron fires per image (for the Poisson code:
    its mean plus four standard deviations, at most one spike per time step)."""
    if params["code"] == "latency":
        return 1.0
    mean = params["max_rate_hz"] * params["presentation_ms"] / 1000.0
    if params["code"] == "poisson":
        slots = math.ceil(params["presentation_ms"] / params["timestep_ms"])
        return float(min(slots, math.floor(mean + 4.0 * math.sqrt(mean)) + 1.0))
    return math.floor(mean + 0.5) + 1.0


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (Linux), else ``None``."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_estimate_bytes(params: dict, model, n_images: int,
                          spikes_per_image: float | None = None) -> dict[str, float]:
    """Rough peak bytes of the largest arrays, keyed by the parameter that sizes them.

    ``spikes_per_image``: input spikes of one encoded image (measured on a sample);
    without it every input is assumed to fire at its highest rate.
    """
    n_input = int(np.prod(model.input_shape))
    if spikes_per_image is None:
        spikes_per_image = n_input * _max_spikes_per_input(params)
    spike_bytes = 16.0  # a time (float64) and a neuron index (int64) per spike
    patch_sizes = []
    for position in model.conv_layer_positions:
        layer = model.layers[position]
        channels = model.input_shape_of(position)[2]
        patch_sizes.append(layer.kernel_shape[0] * layer.kernel_shape[1] * channels)
    patch_size = max(patch_sizes)
    n_neurons = sum(row["neurons"] for row in model.layer_counts()) + n_input
    n_synapses = sum(row["synapses"] for row in model.layer_counts())
    train_patches = float(params["train_patches"])
    patch_spikes = spikes_per_image * patch_size / n_input
    return {
        "train_patches": train_patches * (64.0 + 16.0 * patch_size + spike_bytes * patch_spikes)
        + min(train_patches, n_images) * spikes_per_image * spike_bytes,
        "block_images": float(params["block_images"]) * (spikes_per_image * spike_bytes
                                                        + 2.0 * n_neurons),
        "chunk_images": float(params["chunk_images"]) * n_neurons * 8.0,
        "architecture": 100.0 * n_synapses,
    }


def check_memory(params: dict, model, n_images: int, available: int | None = None,
                 spikes_per_image: float | None = None) -> None:
    """Refuse sizes whose arrays would not fit in the available memory."""
    available = available_memory_bytes() if available is None else available
    if available is None:
        return
    estimates = memory_estimate_bytes(params, model, n_images, spikes_per_image)
    total = sum(estimates.values())
    if total > available:
        name = max(estimates, key=estimates.get)
        value = "the architecture" if name == "architecture" else \
            f"parameter '{name}' = {params[name]}"
        raise UsageError(f"{value} needs about {total / 2**30:.1f} GB of memory, "
                         f"{available / 2**30:.1f} GB are available; make it smaller")


def check_patch_min_spikes(params: dict, model) -> None:
    """``patch_min_spikes`` must be reachable by a window of some conv layer."""
    most = 0.0
    for position in model.conv_layer_positions:
        layer = model.layers[position]
        channels = model.input_shape_of(position)[2]
        window = layer.kernel_shape[0] * layer.kernel_shape[1] * channels
        if position == 0:
            per_input = _max_spikes_per_input(params)
        else:  # a spiking neuron fires at most once per time step
            per_input = (params["presentation_ms"] + params["rest_ms"]) / params["timestep_ms"]
        most = max(most, window * per_input)
    if params["patch_min_spikes"] > most:
        raise UsageError(f"parameter 'patch_min_spikes' = {params['patch_min_spikes']} is more "
                         f"spikes than a window can hold (at most {most:g}); lower it "
                         "(default 4)")


def check_training_labels(labels: np.ndarray, option: str = "--train-examples") -> None:
    """The SVM needs at least two classes among the training images."""
    classes = np.unique(np.asarray(labels))
    if classes.size < 2:
        found = f"only class {classes[0]}" if classes.size else "no images"
        raise UsageError(f"the training images hold {found}; the SVM needs at least two "
                         f"classes: raise {option}")


def measured_spikes_per_image(images: np.ndarray, params: dict, n_sample: int = 20) -> float:
    """Mean input spikes of one image (encoded, or event recordings binned), over the
    first ``n_sample`` images."""
    from .encoding import input_spikes

    sample = images[:n_sample]
    if len(sample) == 0:
        return 0.0
    return input_spikes(sample, params).n_spikes / len(sample)


def check_run(params: dict, model, n_train_images: int, labels: np.ndarray | None = None,
              images: np.ndarray | None = None) -> None:
    """Every check that needs the model and the data (run before any write)."""
    check_patch_min_spikes(params, model)
    check_memory(params, model, n_train_images, spikes_per_image=None if images is None
                 else measured_spikes_per_image(images, params))
    if labels is not None:
        check_training_labels(labels)
