"""Parameters: defaults from ``parameters.py``, per-dataset values, ``--params`` overrides.

Validation happens here, at the edge: unknown names, wrong types, negative,
non-finite or huge numbers, and physically impossible combinations
(:func:`spinnconv.validation.check_parameters`) are refused with a
:class:`~spinnconv.errors.UsageError` before anything runs.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
from pathlib import Path

from .errors import UsageError
from .model import _LAYER_CLASSES, ConvLayer, SequentialModel
from .validation import MAX_MAGNITUDE, check_parameters

#: Parameters that must be strictly positive (others must be >= 0 where numeric).
_STRICTLY_POSITIVE = {"timestep_ms", "presentation_ms", "chunk_images", "block_images",
                      "max_rate_hz",
                      "train_patches", "train_chunk_patches", "svm_c", "synapse_delay_ms",
                      "pool_weight_na", "calibration_threshold_crossings", "kernel_l1", "dog_size",
                      "dog_sigma_center", "dog_sigma_surround", "event_time_scale",
                      "event_downsample", "test_fraction"}
#: Parameters (or sub-parameters) that may be negative.
_SIGNED = {"v_rest", "v_reset", "v_thresh", "i_offset"}
_CHOICES = {"code": ("rate", "latency"), "svm_feature_transform": ("sqrt", "log1p", "none"),
            "weight_dependence": ("multiplicative", "additive")}


def default_parameters() -> tuple[dict, dict]:
    """``(DEFAULTS, PER_DATASET)`` from the user-editable ``parameters.py``."""
    try:
        module = importlib.import_module("parameters")
    except SyntaxError as err:
        raise UsageError(f"parameters.py line {err.lineno}: {err.msg}; fix the edit") from None
    return copy.deepcopy(module.DEFAULTS), copy.deepcopy(module.PER_DATASET)


def _check_value(name: str, value, default) -> None:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UsageError(f"parameter '{name}' must be true or false, got {value!r}")
        return
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"parameter '{name}' must be a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"parameter '{name}' must be finite, got {value!r}")
        if isinstance(default, int) and not isinstance(default, bool) and int(value) != value:
            raise UsageError(f"parameter '{name}' must be an integer, got {value!r}")
        if name != "seed" and abs(value) > MAX_MAGNITUDE:
            raise UsageError(f"parameter '{name}' must be at most {MAX_MAGNITUDE:g} in "
                             f"magnitude, got {value!r}")
        leaf = name.split(".")[-1]
        if leaf in _STRICTLY_POSITIVE and value <= 0:
            raise UsageError(f"parameter '{name}' must be > 0, got {value!r}")
        if leaf not in _SIGNED and value < 0:
            raise UsageError(f"parameter '{name}' must be >= 0, got {value!r}")
        return
    if isinstance(default, str):
        leaf = name.split(".")[-1]
        if not isinstance(value, str) or (leaf in _CHOICES and value not in _CHOICES[leaf]):
            choices = ", ".join(_CHOICES.get(leaf, ()))
            raise UsageError(f"parameter '{name}' must be one of: {choices}; got {value!r}")
        return
    if isinstance(default, list) and not isinstance(value, list):
        raise UsageError(f"parameter '{name}' must be a list, got {value!r}")


def _merge(base: dict, overrides: dict, where: str) -> dict:
    merged = copy.deepcopy(base)
    for name, value in overrides.items():
        if name not in base:
            known = ", ".join(sorted(base))
            raise UsageError(f"unknown parameter '{name}' in {where}; known: {known}")
        if isinstance(base[name], dict):
            if not isinstance(value, dict):
                raise UsageError(f"parameter '{name}' in {where} must be an object")
            for key in value:
                if key not in base[name]:
                    known = ", ".join(sorted(base[name]))
                    raise UsageError(f"unknown parameter '{name}.{key}' in {where}; known: {known}")
            merged[name] = {**base[name], **value}
        else:
            merged[name] = copy.deepcopy(value)
    return merged


def validate(params: dict, defaults: dict) -> None:
    """Check every value against the type and range of its default."""
    for name, default in defaults.items():
        value = params[name]
        if isinstance(default, dict):
            for key, sub_default in default.items():
                _check_value(f"{name}.{key}", value[key], sub_default)
        else:
            _check_value(name, value, default)
    if params["timestep_ms"] > params["presentation_ms"]:
        raise UsageError("parameter 'timestep_ms' must not exceed 'presentation_ms'")
    if not 0 < params["calibration_percentile"] <= 100:
        raise UsageError("parameter 'calibration_percentile' must be in (0, 100]")
    for value in params["target_firing_fraction"]:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 < value < 1):
            raise UsageError("parameter 'target_firing_fraction' must be a list of fractions "
                             f"in (0, 1) or null (percentile rule), got {value!r}")
    for value in params["train_patches_factor_by_layer"]:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise UsageError("parameter 'train_patches_factor_by_layer' must be a list of "
                             f"positive numbers, got {value!r}")
    if params["calibration_images"] < 1:
        raise UsageError("parameter 'calibration_images' must be >= 1")
    _check_layer_training(params, defaults)
    check_parameters(params)


#: Parameters a ``layer_training`` entry may override for one conv layer: those of its
#: STDP patch network and weight calibration (inference neurons stay ``neuron``).
LAYER_TRAINING_KEYS = ("kernel_l1", "stdp", "patch_inhibition_na", "homeostasis_mv",
                       "patch_min_spikes", "train_chunk_patches", "patch_neuron",
                       "calibration_percentile", "calibration_threshold_crossings",
                       "random_kernels")


def _check_layer_training(params: dict, defaults: dict) -> None:
    """Each ``layer_training`` entry: an object of known training parameters."""
    entries = params["layer_training"]
    for number, entry in enumerate(entries, start=1):
        where = f"parameter 'layer_training' entry {number}"
        if not isinstance(entry, dict):
            raise UsageError(f"{where} must be an object, got {entry!r}")
        for name, value in entry.items():
            if name not in LAYER_TRAINING_KEYS:
                raise UsageError(f"{where}: '{name}' cannot be set per layer; allowed: "
                                 + ", ".join(LAYER_TRAINING_KEYS))
            default = defaults["neuron"] if name == "patch_neuron" else defaults[name]
            if isinstance(default, dict):
                if not isinstance(value, dict):
                    raise UsageError(f"{where}: '{name}' must be an object")
                for key, sub_value in value.items():
                    if key not in default:
                        raise UsageError(f"{where}: unknown key '{name}.{key}'; known: "
                                         + ", ".join(sorted(default)))
                    _check_value(f"layer_training.{name}.{key}", sub_value, default[key])
            else:
                _check_value(f"layer_training.{name}", value, default)


def read_params_file(path: str | Path) -> dict:
    """The JSON object in ``path`` (a ``--params`` file)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise UsageError(f"cannot read --params file {path}: {err.strerror or err}") from None
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"--params file {path} is not valid JSON: {err}") from None
    if not isinstance(overrides, dict):
        raise UsageError(f"--params file {path} must hold a JSON object of parameter names")
    return overrides


def size_parameters(image_shape: tuple[int, int]) -> dict:
    """The ``parameters.BY_IMAGE_SIZE`` values for images of ``image_shape`` (H, W);
    a one-line ``UsageError`` showing the --params architecture to write when no
    entry fits."""
    module = importlib.import_module("parameters")
    table = getattr(module, "BY_IMAGE_SIZE", [])
    smallest = int(getattr(module, "MIN_IMAGE_SIDE", 1))
    height, width = (int(side) for side in image_shape[:2])
    if min(height, width) >= smallest:
        for bound, values in table:
            if max(height, width) <= bound:
                return copy.deepcopy(values)
    example = json.dumps({"architecture": [
        {"kind": "conv", "n_kernels": 30, "kernel_shape": [5, 5]},
        {"kind": "pool", "pool_shape": [4, 4]}, {"kind": "classifier", "grid": 4}]})
    sizes = f"{smallest}..{max((bound for bound, _ in table), default=smallest)}"
    raise UsageError(f"no default architecture for {height}×{width} images (there is one for "
                     f"sides of {sizes} px): write one in a --params file, e.g. {example}")


def resolve_parameters(dataset: str, overrides: dict | None = None,
                       where: str = "--params",
                       image_shape: tuple[int, int] | None = None) -> dict:
    """Defaults, then the dataset's values, then ``overrides``; validated.

    With ``image_shape`` (own data, whose size is known once loaded) and no
    ``architecture`` in the dataset's values or ``overrides``, the values of
    :func:`size_parameters` come between the dataset's values and ``overrides``.
    """
    defaults, per_dataset = default_parameters()
    dataset_values = per_dataset.get(dataset, {})
    params = _merge(defaults, dataset_values, f"parameters.PER_DATASET[{dataset!r}]")
    overrides = overrides or {}
    if (image_shape is not None and "architecture" not in dataset_values
            and "architecture" not in overrides):
        params = _merge(params, size_parameters(image_shape), "parameters.BY_IMAGE_SIZE")
    params = _merge(params, overrides, where)
    validate(params, defaults)
    return params


def override_parameters(base: dict, overrides: dict, where: str = "--params") -> dict:
    """``base`` (complete parameters, e.g. a model dir's) with ``overrides``; validated."""
    defaults, _ = default_parameters()
    params = _merge(base, overrides, where)
    validate(params, defaults)
    return params


def build_model(params: dict, image_shape: tuple[int, int],
                channels: int | None = None) -> SequentialModel:
    """The ``SequentialModel`` of ``params['architecture']`` on encoded images.

    ``channels`` is the number of input channels (default: 2 with DoG, 1 without,
    for grey images).
    """
    if channels is None:
        channels = 2 if params["dog"] else 1
    model = SequentialModel((image_shape[0], image_shape[1], channels))
    for number, entry in enumerate(params["architecture"], start=1):
        if not isinstance(entry, dict) or entry.get("kind") not in _LAYER_CLASSES:
            raise UsageError(f"architecture entry {number} needs a 'kind' of: "
                             + ", ".join(_LAYER_CLASSES))
        entry = dict(entry)
        kind = entry.pop("kind")
        try:
            layer = _LAYER_CLASSES[kind](**entry)
        except TypeError as err:
            raise UsageError(f"architecture entry {number} ({kind}): {err}") from None
        model.add(layer)
    if not any(isinstance(layer, ConvLayer) for layer in model.layers):
        raise UsageError("the architecture needs at least one conv layer")
    if model.classifier is None:
        raise UsageError("the architecture must end with a classifier")
    return model


def check_backend_options(params: dict, backend: str, emulate_spinnaker: bool,
                          training: bool) -> None:
    """Refuse backend/parameter combinations that cannot run (``training``: STDP will run)."""
    if emulate_spinnaker and backend == "spinnaker":
        raise UsageError("--emulate-spinnaker is for brian2/nest; --backend spinnaker is the "
                         "real thing")
    if (backend == "brian2" and training
            and params["stdp"]["weight_dependence"] != "additive"):
        raise UsageError(f"--backend brian2 trains with additive STDP only (pyNN.brian2's "
                         f"STDPMechanism ignores the weight dependence), not "
                         f"'{params['stdp']['weight_dependence']}': use --backend nest")
    if emulate_spinnaker and params["timestep_ms"] != 1.0:
        raise UsageError("--emulate-spinnaker needs timestep_ms = 1.0 (SpiNNaker's time step)")
