"""Default parameters of spinnconv, as typed dataclasses; override per run with ``--params FILE``.

The rest of spinnconv reads parameters as one flat dict (``params["timestep_ms"]``,
``params["neuron"]["cm"]``): :data:`DEFAULTS` is :class:`Parameters` as that dict.
``PER_DATASET[name]`` overrides it for one dataset, ``BY_IMAGE_SIZE`` for own data
of a given size. A ``--params`` file is a JSON object whose keys are names of
``DEFAULTS`` (anything else is refused); dict-valued parameters (``neuron``,
``stdp``, ``data``) are merged key by key, everything else is replaced.
:meth:`Parameters.from_dict` checks every value against its field's type and range.

Units are in the names: ``_ms`` milliseconds, ``_hz`` hertz, ``_na`` nanoamperes
(weights of current-based synapses), ``_mv`` millivolts.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import UsageError
from .validation import MAX_MAGNITUDE

__all__ = ["BY_IMAGE_SIZE", "DEFAULTS", "MIN_IMAGE_SIDE", "PER_DATASET", "DataParameters",
           "EncodingParameters", "NetworkParameters", "NeuronParameters", "Parameters",
           "ReadoutParameters", "STDPParameters", "SimulationParameters",
           "TrainingParameters"]


def _value(default, *, positive: bool = False, signed: bool = False):
    """A field: ``positive`` values must be > 0, others >= 0 unless ``signed``."""
    return field(default=default, metadata={"positive": positive, "signed": signed})


@dataclass(frozen=True)
class SimulationParameters:
    seed: int = 0                        # patch sampling, initial weights, Poisson codes
    timestep_ms: float = _value(1.0, positive=True)       # 1 ms is what SpiNNaker runs
    presentation_ms: float = _value(20.0, positive=True)  # input spikes of an image lie in
                                                          # [0, presentation_ms)
    rest_ms: float = 30.0                # silent gap after each image: membranes decay
    chunk_images: int = _value(200, positive=True)  # images per run() call (progress, memory)
    block_images: int = _value(1000, positive=True)  # feature extraction: images per freshly
                                         # built network, the unit of work of a --jobs process


@dataclass(frozen=True)
class EncodingParameters:
    dog: bool = True                     # DoG ON/OFF filtering -> 2 input channels
    dog_size: int = _value(7, positive=True)  # DoG kernel side (odd), pixels
    dog_sigma_center: float = _value(1.0, positive=True)    # pixels
    dog_sigma_surround: float = _value(2.0, positive=True)  # pixels
    code: Literal["rate", "latency", "poisson"] = "rate"  # "rate": regular spike trains,
                                         # "poisson": random (seeded), "latency": one spike
    max_rate_hz: float = _value(500.0, positive=True)  # rate, poisson: rate of intensity 1
    latency_threshold: float = 0.1       # latency code: inputs below this do not spike


@dataclass(frozen=True)
class NeuronParameters:
    """PyNN ``IF_curr_exp`` parameters."""

    cm: float = 1.0                      # nF
    tau_m: float = 10.0                  # ms
    tau_syn_E: float = 2.0               # ms
    tau_syn_I: float = 2.0               # ms
    tau_refrac: float = 2.0              # ms
    v_rest: float = _value(-65.0, signed=True)    # mV
    v_reset: float = _value(-65.0, signed=True)   # mV
    v_thresh: float = _value(-55.0, signed=True)  # mV
    i_offset: float = _value(0.0, signed=True)    # nA


@dataclass(frozen=True)
class NetworkParameters:
    """Weights of the inference network."""

    # conv weights are calibrated after training so that this percentile of drive
    # crosses threshold this many times (see training.calibrate_weight_na)
    calibration_percentile: float = 90.0
    calibration_threshold_crossings: float = _value(2.0, positive=True)
    # per conv layer (the last entry for deeper ones): weight calibrated so this fraction
    # of the layer's neurons fires per image (NumPy IF_curr_exp model of the layer on its
    # recorded input), e.g. [null, 0.05]; None: the percentile rule (the default: a
    # calibrated layer 2 does not read out better, see docs/deep_layers.md)
    target_firing_fraction: list[float | None] = field(default_factory=lambda: [None])
    calibration_images: int = 300        # images of the layer's input the calibration uses
    lateral_inhibition_na: float = 4.0   # WTA between maps at one position (0 disables)
    pool_weight_na: float = _value(12.0, positive=True)  # one spike in a pooling window
                                                         # makes the pool neuron fire
    synapse_delay_ms: float = _value(1.0, positive=True)


@dataclass(frozen=True)
class STDPParameters:
    """STDP of the patch network that trains one conv layer."""

    tau_plus_ms: float = 20.0
    tau_minus_ms: float = 20.0
    a_plus: float = 0.02                 # fraction of w_max per pair (w_max is per layer)
    a_minus: float = 0.024
    weight_dependence: Literal["multiplicative", "additive"] = "additive"  # additive: hard
                                         # bounds, selective kernels (brian2 trains only this)


@dataclass(frozen=True)
class TrainingParameters:
    train_patches: int = _value(2000, positive=True)  # windows presented per conv layer
    # conv layer N learns on train_patches × entry N (the last entry for deeper layers;
    # []: × 1)
    train_patches_factor_by_layer: list[float] = field(default_factory=list)
    train_chunk_patches: int = _value(100, positive=True)  # patches between weight
                                         # normalisation / homeostasis steps
    patch_min_spikes: int = 4            # windows with fewer input spikes are not presented
    patch_inhibition_na: float = 10.0    # WTA among the kernels of the patch network
    kernel_l1: float = _value(0.35, positive=True)  # kernels rescaled to this mean (of w_max)
    homeostasis_mv: float = 0.5          # threshold change per chunk for rate deviations
    random_kernels: bool = False         # ablation: keep the random initial kernels (no STDP)
    # where a conv layer's kernels start: "uniform" random, or "patches": each one a
    # sampled training window of its input (plus 10 % noise)
    initial_kernels: Literal["uniform", "patches"] = "uniform"
    stdp_rate_scale: float = _value(1.0, positive=True)  # a_plus and a_minus × this
    # per conv layer (the last entry for deeper ones): an object overriding this group's
    # values, "stdp" and the calibration's for that layer's training, e.g.
    # [{}, {"kernel_l1": 0.1}]; "patch_neuron": neuron values of its patch network only.
    # The default: layers 2 and deeper start from sampled windows of their input and
    # learn 20× slower (at the full rate their kernels collapse onto one pattern; see
    # experiments/README.md, "Layer-2 STDP collapses its kernels")
    layer_training: list[dict] = field(default_factory=lambda: [
        {}, {"initial_kernels": "patches", "stdp_rate_scale": 0.05}])


@dataclass(frozen=True)
class DataParameters:
    """The user's own data (``--dataset idx | npz | folder | events``)."""

    grey: bool = False                   # colour averaged to one grey channel (else K channels)
    test_fraction: float = _value(0.2, positive=True)  # folder without train/ and test/:
                                                       # seeded stratified split
    sensor_height: int = 0               # events: sensor size in pixels (0: largest + 1)
    sensor_width: int = 0
    event_time_scale: float = _value(1.0, positive=True)  # events: recording ms ->
                                         # presentation ms (0.2: 300 -> 60)
    event_downsample: int = _value(1, positive=True)  # events: tonic Downsample factor
    event_denoise_ms: float = 0.0        # events: tonic Denoise filter time (0: off)


@dataclass(frozen=True)
class ReadoutParameters:
    svm_c: float = _value(0.01, positive=True)  # LinearSVC regularisation
    # spike counts -> sqrt (variance-stabilising), log1p, none
    svm_feature_transform: Literal["sqrt", "log1p", "none"] = "sqrt"
    # after training a layer: simulate it on this many training images, score a linear
    # readout of its pooled counts on a held-out third (0 disables)
    diagnostics_images: int = 1000


def _default_architecture() -> list[dict]:
    """Conv/Pool layers after the encoder, then the classifier."""
    return [
        {"kind": "conv", "n_kernels": 16, "kernel_shape": [3, 3]},
        {"kind": "pool", "pool_shape": [2, 2]},
        {"kind": "classifier"},
    ]


#: Groups whose values sit under the group's name (``params["neuron"]["cm"]``); the
#: values of the other groups sit at the top level (``params["timestep_ms"]``).
_NESTED = ("neuron", "stdp", "data")


@dataclass(frozen=True)
class Parameters:
    """Every parameter of a run, by group; :meth:`to_dict` is the flat dict form."""

    simulation: SimulationParameters = field(default_factory=SimulationParameters)
    encoding: EncodingParameters = field(default_factory=EncodingParameters)
    neuron: NeuronParameters = field(default_factory=NeuronParameters)
    network: NetworkParameters = field(default_factory=NetworkParameters)
    stdp: STDPParameters = field(default_factory=STDPParameters)
    training: TrainingParameters = field(default_factory=TrainingParameters)
    data: DataParameters = field(default_factory=DataParameters)
    readout: ReadoutParameters = field(default_factory=ReadoutParameters)
    architecture: list[dict] = field(default_factory=_default_architecture)

    def to_dict(self) -> dict[str, Any]:
        """The flat dict the pipeline reads (a deep copy)."""
        params: dict[str, Any] = {}
        for group in dataclasses.fields(self):
            value = getattr(self, group.name)
            if group.name in _NESTED:
                params[group.name] = dataclasses.asdict(value)
            elif dataclasses.is_dataclass(value):
                params.update(dataclasses.asdict(value))
            else:
                params[group.name] = copy.deepcopy(value)
        return params

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> Parameters:
        """The typed parameters of the flat dict ``params`` (every name present), each
        value checked against its field's type and range; else one ``UsageError``."""
        groups = {}
        for group in dataclasses.fields(cls):
            group_class = _GROUP_CLASSES.get(group.name)
            if group_class is None:  # the architecture: checked by the model
                groups[group.name] = copy.deepcopy(_required(params, group.name))
                continue
            if group.name in _NESTED:
                values, prefix = _required(params, group.name), f"{group.name}."
                if not isinstance(values, dict):
                    raise UsageError(f"parameter '{group.name}' must be an object")
            else:
                values, prefix = params, ""
            groups[group.name] = group_class(**{
                name: _checked(prefix + name, _required(values, name, prefix), kind, metadata)
                for name, (kind, metadata) in _field_types(group_class).items()})
        return cls(**groups)


_GROUP_CLASSES = {group.name: typing.get_type_hints(Parameters)[group.name]
                  for group in dataclasses.fields(Parameters) if group.name != "architecture"}


def _field_types(group_class: type) -> dict[str, tuple[Any, typing.Mapping]]:
    hints = typing.get_type_hints(group_class)
    return {f.name: (hints[f.name], f.metadata) for f in dataclasses.fields(group_class)}


def _required(values: dict, name: str, prefix: str = ""):
    if name not in values:
        raise UsageError(f"parameter '{prefix}{name}' is missing")
    return values[name]


def _checked(name: str, value, kind, metadata: typing.Mapping):
    """``value`` if it fits type ``kind`` and the range of ``metadata``, else UsageError."""
    if kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"parameter '{name}' must be true or false, got {value!r}")
    elif kind in (int, float):
        _check_number(name, value, kind, metadata)
    elif typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if not isinstance(value, str) or value not in choices:
            raise UsageError(f"parameter '{name}' must be one of: {', '.join(choices)}; got "
                             f"{value!r}")
    elif typing.get_origin(kind) is list and not isinstance(value, list):
        raise UsageError(f"parameter '{name}' must be a list, got {value!r}")
    return copy.deepcopy(value)


def _check_number(name: str, value, kind: type, metadata: typing.Mapping) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"parameter '{name}' must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"parameter '{name}' must be finite, got {value!r}")
    if kind is int and int(value) != value:
        raise UsageError(f"parameter '{name}' must be an integer, got {value!r}")
    if name != "seed" and abs(value) > MAX_MAGNITUDE:
        raise UsageError(f"parameter '{name}' must be at most {MAX_MAGNITUDE:g} in "
                         f"magnitude, got {value!r}")
    if metadata.get("positive") and value <= 0:
        raise UsageError(f"parameter '{name}' must be > 0, got {value!r}")
    if not metadata.get("signed") and value < 0:
        raise UsageError(f"parameter '{name}' must be >= 0, got {value!r}")


#: The defaults of every dataset, as the flat dict.
DEFAULTS: dict[str, Any] = Parameters().to_dict()

#: Images up to 16×16 (8×8 digits-like): small DoG, conv 3×3 with padding, pool 2×2.
_SMALL_IMAGES: dict[str, Any] = {
    "dog_size": 3,
    "dog_sigma_center": 0.5,
    "dog_sigma_surround": 1.0,
    "architecture": [
        {"kind": "conv", "n_kernels": 16, "kernel_shape": [3, 3], "padding": 1},
        {"kind": "pool", "pool_shape": [2, 2]},
        {"kind": "classifier"},
    ],
}

#: MNIST-like images: conv 30×5×5, pool 2×2 (12×12 per map), then an SVM on the counts
#: summed per map over two pyramids of overlapping windows, 6×6 and 4×4, both at
#: stride 2 (16 + 25 cells per map). Windows and C were chosen on 10,000 held-out MNIST
#: training images (``experiments/readout_selection.py``).
_MNIST_LIKE_ARCHITECTURE: list[dict[str, Any]] = [
    {"kind": "conv", "n_kernels": 30, "kernel_shape": [5, 5]},
    {"kind": "pool", "pool_shape": [2, 2]},
    {"kind": "classifier", "windows": [[6, 2], [4, 2]]},
]

PER_DATASET: dict[str, dict[str, Any]] = {
    # event recordings (N-MNIST: 34×34, ~300 ms): ON/OFF events are the two input
    # channels, a recording's 300 ms are pressed into a 60 ms presentation
    "events": {
        "presentation_ms": 60.0,
        "data": {"event_time_scale": 0.2},
    },
    # scikit-learn's bundled 8×8 digits: small DoG, one conv layer
    "digits": {**copy.deepcopy(_SMALL_IMAGES), "train_patches": 2000},
    # MNIST 28×28: DoG -> conv 30×5×5 -> pool 2×2 -> SVM on window sums (see
    # _MNIST_LIKE_ARCHITECTURE; a second conv layer is possible but does not read out
    # better: see experiments/README.md)
    "mnist": {
        "train_patches": 3000,
        "train_patches_factor_by_layer": [1, 3],  # layer 2 and deeper: 3× the patches
        "architecture": copy.deepcopy(_MNIST_LIKE_ARCHITECTURE),
    },
}

#: Values for images of other sizes (own data without an ``architecture`` in --params):
#: the first entry whose bound is >= the larger image side applies (sides of at least
#: ``MIN_IMAGE_SIDE`` pixels). Larger images need an architecture in --params.
MIN_IMAGE_SIDE = 5
BY_IMAGE_SIZE: list[tuple[int, dict[str, Any]]] = [
    # up to 16×16 (8×8 digits-like): small DoG, conv 3×3 with padding, pool 2×2
    (16, copy.deepcopy(_SMALL_IMAGES)),
    # up to 64×64 (28×28 MNIST-like): the MNIST network
    (64, {"train_patches": 3000, "architecture": copy.deepcopy(_MNIST_LIKE_ARCHITECTURE)}),
]
