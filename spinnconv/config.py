"""Parameters: the defaults of :mod:`spinnconv.defaults`, per-dataset values, ``--params``
overrides.

Validation happens here, at the edge, once: unknown names, wrong types, negative,
non-finite or huge numbers (:meth:`spinnconv.defaults.Parameters.from_dict`), and
physically impossible combinations (:func:`spinnconv.validation.check_parameters`)
are refused with a :class:`~spinnconv.errors.UsageError` before anything runs.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path

from . import defaults as _defaults
from .defaults import Parameters
from .errors import UsageError
from .model import _LAYER_CLASSES, ConvLayer, SequentialModel
from .validation import check_parameters


def default_parameters() -> tuple[dict, dict]:
    """``(DEFAULTS, PER_DATASET)`` of :mod:`spinnconv.defaults` (copies)."""
    return copy.deepcopy(_defaults.DEFAULTS), copy.deepcopy(_defaults.PER_DATASET)


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


def validate(params: dict) -> Parameters:
    """Check every value against the type and range of its field of
    :class:`~spinnconv.defaults.Parameters`, then the relations between values;
    returns the typed parameters."""
    typed = Parameters.from_dict(params)
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
    _check_layer_training(params)
    check_parameters(params)
    return typed


#: Parameters a ``layer_training`` entry may override for one conv layer: those of its
#: STDP patch network and weight calibration (inference neurons stay ``neuron``).
LAYER_TRAINING_KEYS = ("kernel_l1", "stdp", "patch_inhibition_na", "homeostasis_mv",
                       "patch_min_spikes", "train_chunk_patches", "patch_neuron",
                       "calibration_percentile", "calibration_threshold_crossings",
                       "random_kernels", "initial_kernels",
                       "stdp_rate_scale")


def _check_layer_training(params: dict) -> None:
    """Each ``layer_training`` entry: an object of training parameters, each value
    checked as its top-level default is (the parameters with the entry merged in)."""
    for number, entry in enumerate(params["layer_training"], start=1):
        where = f"parameter 'layer_training' entry {number}"
        if not isinstance(entry, dict):
            raise UsageError(f"{where} must be an object, got {entry!r}")
        unknown = sorted(set(entry) - set(LAYER_TRAINING_KEYS))
        if unknown:
            raise UsageError(f"{where}: '{unknown[0]}' cannot be set per layer; allowed: "
                             + ", ".join(LAYER_TRAINING_KEYS))
        merged = {**params, "layer_training": []}
        for name, value in entry.items():
            target = "neuron" if name == "patch_neuron" else name
            if isinstance(params[target], dict):
                if not isinstance(value, dict):
                    raise UsageError(f"{where}: '{name}' must be an object")
                merged[target] = _merge(params, {target: value}, where)[target]
            else:
                merged[target] = value
        try:
            validate(merged)
        except UsageError as err:
            raise UsageError(f"{where}: {err}") from None


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
    """The ``spinnconv.defaults.BY_IMAGE_SIZE`` values for images of ``image_shape``
    (H, W); a one-line ``UsageError`` showing the --params architecture to write when
    no entry fits."""
    table, smallest = _defaults.BY_IMAGE_SIZE, _defaults.MIN_IMAGE_SIDE
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
    params = _merge(defaults, dataset_values, f"spinnconv.defaults.PER_DATASET[{dataset!r}]")
    overrides = overrides or {}
    default_architecture = params["architecture"]  # its readout: see _with_default_readout
    if image_shape is not None and "architecture" not in dataset_values:
        if "architecture" not in overrides:
            params = _merge(params, size_parameters(image_shape),
                            "spinnconv.defaults.BY_IMAGE_SIZE")
        else:
            with contextlib.suppress(UsageError):  # no default for this size: the base one
                default_architecture = size_parameters(image_shape)["architecture"]
    params = _merge(params, overrides, where)
    if "architecture" in overrides:
        params["architecture"] = _with_default_readout(params["architecture"],
                                                       default_architecture)
    validate(params)
    return params


def _with_default_readout(architecture, default_architecture: list[dict]):
    """``architecture`` whose classifier, if it names neither ``grid`` nor ``windows``,
    takes those of the default architecture's classifier (MNIST-like images: the
    windows chosen on held-out images); ``"windows": null`` keeps one feature per
    neuron. Anything that is not a list of objects is left to the model's checks."""
    default = next((entry for entry in reversed(default_architecture)
                    if entry.get("kind") == "classifier"), {})
    readout = {key: copy.deepcopy(default[key]) for key in ("grid", "windows")
               if default.get(key) is not None}
    if not readout or not isinstance(architecture, list):
        return architecture
    return [{**entry, **readout}
            if isinstance(entry, dict) and entry.get("kind") == "classifier"
            and "grid" not in entry and "windows" not in entry else entry
            for entry in architecture]


def override_parameters(base: dict, overrides: dict, where: str = "--params") -> dict:
    """``base`` (complete parameters, e.g. a model dir's) with ``overrides``; validated."""
    params = _merge(base, overrides, where)
    validate(params)
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
