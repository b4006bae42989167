"""The in-memory stages of the pipeline, on arrays: learn a conv layer with STDP
(:func:`fit_conv_layer`), extract features and fit the SVM (:func:`fit_readout`),
predict (:func:`predict_images`), simulated over ``--jobs`` processes or a Dask
cluster; and :class:`Run`, their context: parameters, backend, log lines, and wall
time and peak memory per phase.

:class:`~spinnconv.api.STDPConvNet` calls these stages; the CLI's model-dir commands
(:mod:`spinnconv.commands`) go through it.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score
from tqdm.auto import tqdm

from . import datasets, parallel
from .backends import get_backend
from .checkpoint import ModelDir
from .config import build_model, resolve_parameters
from .encoding import encoded_shape, input_spikes
from .errors import UsageError
from .model import Classifier, PoolLayer, SequentialModel
from .network import run_images
from .readout import (
    SpikeCountSVM,
    StageVoteSVM,
    features_from_counts,
    readout_estimator,
    readout_features,
)
from .spikes import LayerSpikes
from .training import (
    calibrate_weight_na,
    calibrate_weight_to_firing,
    conv_layer_counts,
    firing_fraction,
    kernel_similarity,
    random_kernels,
    sample_patches,
    train_conv_layer,
)
from .validation import check_training_labels


def peak_memory_mb() -> float:
    """Peak resident memory of this process (MB).

    Linux: ``VmHWM`` of ``/proc/self/status``. ``ru_maxrss`` is no good for
    ``--jobs`` workers: it survives fork and exec, so a worker would report the
    parent's size at the time it was started.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def reset_peak_memory() -> None:
    """Restart this process's peak-memory count (Linux: ``5`` to ``/proc/self/clear_refs``
    resets ``VmHWM``), so that a phase reports its own peak; elsewhere a no-op (the
    peak then covers the run so far: still an upper bound)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def format_phase(record: dict) -> str:
    """One line per phase: ``phase <name>: <s> s, <rate> <unit>/s, peak memory <MB> MB``."""
    rate = f", {record['per_second']:.1f} {record['unit']}/s" if record["per_second"] else ""
    workers = (f" (+ {record['workers']} --jobs workers × "
               f"{record['worker_peak_memory_mb']:.0f} MB)" if record.get("workers") else "")
    return (f"phase {record['phase']}: {record['seconds']:.1f} s, {record['items']} "
            f"{record['unit']}{rate}, peak memory {record['peak_memory_mb']:.0f} MB{workers}")


@dataclass
class Run:
    """Everything one CLI invocation (or one :class:`~spinnconv.api.STDPConvNet` call)
    works with."""

    params: dict
    dataset: str
    data_dir: Path
    model_dir: ModelDir
    backend: str = "brian2"
    machine: dict = field(default_factory=dict)  # SpiNNaker machine options
    emulate_spinnaker: bool = False
    n_train: int | None = None
    n_test: int | None = None
    source: Path | None = None  # own data (idx, npz, folder, events): the file or folder
    n_validation: int | None = None  # training images held out as the validation split
    overrides: dict = field(default_factory=dict)  # --params and --seed, for own data
    quiet: bool = False
    plots: bool = True
    jobs: int = 1  # simulator processes for feature extraction
    echo: bool = True  # print log lines (the Python API's quiet=True turns this off)
    dask_scheduler: str | None = None  # address of a Dask cluster doing that instead
    lines: list[str] = field(default_factory=list)  # what this run printed, for its log file
    phases: list[dict] = field(default_factory=list)  # one record per timed phase
    worker_peak_mb: float = 0.0  # largest peak RSS of a --jobs worker process so far
    main_peak_mb: float = 0.0  # largest peak RSS of this process over the finished phases
    phase_worker_peak_mb: float = 0.0  # largest worker peak in the current phase
    phase_workers: int = 0  # worker processes that ran in the current phase
    _data: datasets.Dataset | None = field(default=None, repr=False)

    def note_workers(self, peaks_mb: list[float], workers: int) -> None:
        """Record the peak memory of ``workers`` worker processes that just ran."""
        self.worker_peak_mb = max([self.worker_peak_mb, *peaks_mb])
        self.phase_worker_peak_mb = max([self.phase_worker_peak_mb, *peaks_mb])
        self.phase_workers = max(self.phase_workers, workers)

    @contextmanager
    def phase(self, name: str, items: int, unit: str) -> Iterator[None]:
        """Time a phase of ``items`` ``unit``s; log and keep wall time, rate, and the
        phase's own peak memory (main process, and per worker process)."""
        self.main_peak_mb = max(self.main_peak_mb, peak_memory_mb())
        reset_peak_memory()
        self.phase_worker_peak_mb, self.phase_workers = 0.0, 0
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        main_mb = peak_memory_mb()
        self.main_peak_mb = max(self.main_peak_mb, main_mb)
        record = {"phase": name, "seconds": round(seconds, 3), "items": int(items),
                  "unit": unit, "per_second": round(items / seconds, 3) if seconds else None,
                  "peak_memory_mb": round(main_mb, 1),
                  "worker_peak_memory_mb": round(self.phase_worker_peak_mb, 1),
                  "workers": self.phase_workers,
                  "memory_bound_mb": round(main_mb + self.phase_workers
                                           * self.phase_worker_peak_mb, 1)}
        self.phases.append(record)
        self.log(format_phase(record))

    def __post_init__(self) -> None:
        # own data trained before: the image size is in the model dir, so modes that
        # read no data (deploy, plot) resolve the same size-derived parameters
        if self.dataset in datasets.OWN_DATASETS and self.model_dir.exists():
            height, width, _ = self.model_dir.model().input_shape
            self.params = resolve_parameters(self.dataset, self.overrides,
                                             image_shape=(height, width))

    def log(self, message: str) -> None:
        """Print ``message`` (unless ``echo`` is off) and keep it for the run's log file."""
        if self.echo:
            print(message, flush=True)
        self.lines.append(f"{time.strftime('%H:%M:%S')} {message}")

    @property
    def dataset_dir(self) -> Path:
        return self.data_dir / self.dataset

    def load(self) -> datasets.Dataset:
        """The dataset of this run (read once). For own data the parameters are
        resolved again with the images' size (default architecture by size)."""
        if self._data is None:
            self._data = datasets.load_dataset(
                self.dataset, self.dataset_dir, self.n_train, self.n_test,
                source=self.source, options=self.params.get("data"),
                n_validation=self.n_validation, seed=int(self.params["seed"]))
            if self.dataset in datasets.OWN_DATASETS:
                self.params = resolve_parameters(self.dataset, self.overrides,
                                                 image_shape=self._data.image_shape)
        return self._data

    def model(self, image_shape) -> SequentialModel:
        return build_model(self.params, image_shape)

    def model_for(self, data: datasets.Dataset) -> SequentialModel:
        """The model on ``data``'s input layer: (H, W, 2) for events (ON, OFF), the
        encoded image channels otherwise."""
        return build_model(self.params, data.image_shape, input_shape(data, self.params)[2])

    def make_backend(self):
        if self.backend != "spinnaker":
            return get_backend(self.backend)
        machine = self.machine or {"virtual_board": 5}
        if "virtual_board" in machine:
            raise UsageError("a virtual SpiNNaker board maps but does not run: training and "
                             "testing need --spinnaker-host or --spalloc-server (use "
                             "--mode deploy --virtual-board to check the mapping)")
        return get_backend("spinnaker", work_dir=self.model_dir.path / "spinnaker", **machine)


def input_shape(data: datasets.Dataset, params: dict) -> tuple[int, int, int]:
    """Shape ``(H, W, C)`` of the input layer for ``data``."""
    if data.is_events:
        return (*data.image_shape, 2)
    return encoded_shape((*data.image_shape, data.channels), params)


def kernels_na(run: Run, model: SequentialModel, layers: dict[int, dict]) -> dict[int, np.ndarray]:
    """Kernel weights in nA of conv layers ``{number: arrays of layer<N>.npz}``, keyed
    by layer position.

    With ``emulate_spinnaker`` they are rounded to the 16-bit fixed point the
    board would use for this network (sPyNNaker's ring-buffer shift per
    population and receptor).
    """
    positions = model.conv_layer_positions
    weights = {positions[number - 1]: arrays["kernels"] * float(arrays["weight_na"])
               for number, arrays in layers.items()}
    if run.emulate_spinnaker and weights:
        from .backends.spinnaker import spinnaker_weight_quantiser

        weights = spinnaker_weight_quantiser(model, weights, run.params)
    return weights


def fit_conv_layer(run: Run, model: SequentialModel, number: int, images: np.ndarray,
                   kernels: dict[int, np.ndarray],
                   labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Learn conv layer ``number``'s kernels with STDP on ``images`` (in memory).

    ``kernels``: weights in nA of the conv layers below, keyed by position (see
    :func:`kernels_na`). Returns the arrays of ``layer<N>.npz`` (kernels,
    ``weight_na``, training record) and logs a one-line summary.
    """
    position = model.conv_layer_positions[number - 1]
    layer = model.layers[position]
    backend = run.make_backend()
    board = {}
    if run.emulate_spinnaker:  # train as the board would
        from .backends.spinnaker import board_training_options

        board = board_training_options()
        if run.backend in ("nest", "batched"):
            run.log(f"--emulate-spinnaker on {run.backend}: plastic weights are truncated to "
                    "16 bits at each chunk, not after every spike as on the board (brian2 "
                    "does that)")
    started = time.perf_counter()
    n_images = min(len(images), int(run.params["train_patches"]))
    spikes = input_spikes(images[:n_images], run.params)
    if position > 0:
        with run.phase(f"layer {number} input (layers 1..{position})", n_images, "img"):
            spikes = simulate(run, model, kernels, spikes, upto=position,
                              description=f"layers 1..{position} for layer {number}")
    rng = np.random.default_rng([run.params["seed"], number])
    n_patches = train_patches_of(run.params, number)
    params = layer_params(run.params, number)
    try:
        patches = sample_patches(spikes, layer, int(n_patches), rng,
                                 int(params["patch_min_spikes"]))
    except ValueError as err:  # no window holds patch_min_spikes spikes
        raise UsageError(f"layer {number}: {err}") from None
    with run.phase(f"layer {number} STDP", patches.n_images, "patch"):
        if params["random_kernels"]:  # ablation: same start, no learning
            trained = random_kernels(patches.shape, layer.n_kernels, params, rng, patches)
        else:
            trained = train_conv_layer(backend, patches, layer.n_kernels, params, rng,
                                       quiet=run.quiet, description=f"STDP layer {number}",
                                       **board)
        weight_na, calibration = calibrate_layer_weight(spikes, layer, trained.kernels,
                                                        params, number)
    seconds = time.perf_counter() - started
    diagnostics = layer_diagnostics(run, model, number, spikes, trained.kernels * weight_na,
                                    None if labels is None else labels[:spikes.n_images])
    history = trained.convergence or [float("nan")]  # nan: random kernels, no STDP
    diagnostics.update(calibration, weight_na=float(weight_na),
                       kernels_won=int((trained.wins > 0).sum()), n_kernels=layer.n_kernels,
                       kernel_similarity=kernel_similarity(trained.kernels),
                       convergence_first=float(history[0]), convergence_last=float(history[-1]))
    how = f"{trained.n_patches} patches" if trained.n_patches else "random kernels (no STDP)"
    run.log(f"layer {number}: {how}, {layer.n_kernels} kernels, "
            f"convergence C {history[0]:.4f} -> {history[-1]:.4f}, "
            f"kernels that won: {int((trained.wins > 0).sum())}/{layer.n_kernels}, "
            f"weight {weight_na:.2f} nA, "
            f"{seconds:.1f} s")
    run.log(format_diagnostics(number, diagnostics))
    fraction = diagnostics["firing_fraction"]
    if fraction is not None and not SILENT_BELOW <= fraction <= SATURATED_ABOVE:
        run.log(f"warning: layer {number} is "
                f"{'silent' if fraction < SILENT_BELOW else 'saturated'} (firing fraction "
                f"{fraction:.4f}); set 'target_firing_fraction' for it")
    return {"kernels": trained.kernels, "weight_na": np.asarray(weight_na),
            "convergence": np.asarray(trained.convergence),
            "wins": trained.wins, "thresholds_mv": trained.thresholds_mv,
            "n_patches": np.asarray(trained.n_patches), "w_max_na": np.asarray(trained.w_max_na),
            "v_trace_t_ms": trained.v_trace_t_ms, "v_trace_mv": trained.v_trace_mv,
            "seconds": np.asarray(seconds),
            "diagnostics_json": np.asarray(json.dumps(diagnostics))}


def layer_diagnostics_of(arrays: dict[str, np.ndarray]) -> dict:
    """The per-layer diagnostics (JSON) stored with a layer's arrays ({} if none)."""
    return json.loads(str(arrays["diagnostics_json"])) if "diagnostics_json" in arrays else {}


def per_layer(values: list, number: int, fallback=None):
    """Value for conv layer ``number`` of a per-layer list parameter: its entry
    ``number - 1``, the last entry for deeper layers, ``fallback`` when empty."""
    if not values:
        return fallback
    return values[min(number, len(values)) - 1]


def layer_params(params: dict, number: int) -> dict:
    """``params`` for training conv layer ``number``: its ``layer_training`` entry
    (the last entry for deeper layers) merged in, dict values key by key."""
    overrides = per_layer(params.get("layer_training", []), number, {}) or {}
    merged = dict(params)
    for name, value in overrides.items():
        merged[name] = ({**params[name], **value} if isinstance(params.get(name), dict)
                        else value)
    return merged


def train_patches_of(params: dict, number: int) -> int:
    """Patches conv layer ``number`` learns on: ``train_patches`` times its entry of
    ``train_patches_factor_by_layer``."""
    factor = per_layer(params["train_patches_factor_by_layer"], number, 1)
    return max(1, round(params["train_patches"] * factor))


def calibrate_layer_weight(spikes: LayerSpikes, layer, kernels: np.ndarray, params: dict,
                           number: int) -> tuple[float, dict]:
    """The weight (nA) of conv layer ``number`` and what chose it (JSON-safe).

    ``target_firing_fraction`` for this layer ``None``: the drive-percentile rule
    (:func:`~spinnconv.training.calibrate_weight_na`); a fraction: the weight at
    which that fraction of the layer's neurons fires per image, in the NumPy
    ``IF_curr_exp`` model on the first ``calibration_images`` images of the
    layer's input (:func:`~spinnconv.training.calibrate_weight_to_firing`).
    """
    weight_na = calibrate_weight_na(spikes.counts(), spikes.shape, layer, kernels, params)
    target = per_layer(params["target_firing_fraction"], number)
    sample = spikes.select(np.arange(min(spikes.n_images, int(params["calibration_images"]))))
    if target is None:
        predicted = firing_fraction(conv_layer_counts(sample, layer, kernels, weight_na, params))
        rule = "percentile"
    else:
        weight_na, predicted = calibrate_weight_to_firing(sample, layer, kernels, params,
                                                          float(target), weight_na)
        rule = "firing_fraction"
    return weight_na, {"calibration_rule": rule, "target_firing_fraction": target,
                       "predicted_firing_fraction": predicted,
                       "calibration_images": sample.n_images}


#: Firing fractions outside these bounds are reported as a silent / saturated layer.
SILENT_BELOW, SATURATED_ABOVE = 0.001, 0.5
#: Share of the diagnostic images held out to score a layer's quick readout.
DIAGNOSTIC_VALIDATION_SHARE = 1.0 / 3.0


def stage_model(model: SequentialModel, position: int) -> SequentialModel:
    """Conv layer at ``position`` and the pool layers after it, on its input shape."""
    stage = SequentialModel(model.input_shape_of(position))
    stage.add(model.layers[position])
    for layer in model.layers[position + 1:]:
        if not isinstance(layer, PoolLayer):
            break
        stage.add(layer)
    return stage


def layer_diagnostics(run: Run, model: SequentialModel, number: int, spikes: LayerSpikes,
                      kernels_na: np.ndarray, labels: np.ndarray | None) -> dict:
    """What conv layer ``number`` does on the first ``diagnostics_images`` of its input
    ``spikes`` (simulated with the run's backend): firing fraction of its neurons,
    maps that fire, spikes per image at the end of its stage, and the validation
    accuracy of a linear readout of that stage's pooled counts (fitted on the
    first two thirds of the images, scored on the rest: training images only)."""
    n_images = min(spikes.n_images, int(run.params["diagnostics_images"]))
    if n_images < 30:
        return {"diagnostic_images": n_images, "firing_fraction": None,
                "active_maps": None, "stage_spikes_per_image": None,
                "readout_accuracy": None}
    started = time.perf_counter()
    position = model.conv_layer_positions[number - 1]
    stage = stage_model(model, position)
    recorded = simulate(run, stage, {0: kernels_na}, spikes.select(np.arange(n_images)),
                        upto=None, description=f"layer {number} diagnostics", record_all=True)
    conv_counts = recorded[0].counts()
    stage_counts = recorded[-1].counts()
    shape = stage.output_shape
    classifier = model.classifier or Classifier()
    features = features_from_counts(stage_counts, shape,
                                    classifier.scaled_to(model.readout_shapes()[0], shape))
    n_fit = n_images - round(n_images * DIAGNOSTIC_VALIDATION_SHARE)
    accuracy = None  # no labels (fit_layer without them) or one class: no quick readout
    if labels is not None and len(np.unique(labels[:n_fit])) > 1:
        svm = SpikeCountSVM(c=run.params["svm_c"],
                            transform=run.params["svm_feature_transform"])
        svm.fit(features[:n_fit], labels[:n_fit])
        accuracy = float(accuracy_score(labels[n_fit:n_images], svm.predict(features[n_fit:])))
    conv_shape = recorded[0].shape
    per_map = conv_counts.reshape(n_images, conv_shape[2], -1).sum(axis=(0, 2))
    return {"diagnostic_images": n_images, "firing_fraction": firing_fraction(conv_counts),
            "active_maps": int((per_map > 0).sum()),
            "stage_spikes_per_image": float(stage_counts.sum(axis=1).mean()),
            "readout_accuracy": accuracy, "readout_features": int(features.shape[1]),
            "diagnostic_seconds": round(time.perf_counter() - started, 1)}


def format_diagnostics(number: int, diagnostics: dict) -> str:
    """One line of a layer's diagnostics."""
    def show(key: str, fmt: str) -> str:
        value = diagnostics.get(key)
        return "n/a" if value is None else format(value, fmt)

    target = diagnostics.get("target_firing_fraction")
    return (f"layer {number} diagnostics: firing fraction {show('firing_fraction', '.4f')} "
            f"(calibration {diagnostics['calibration_rule']}"
            + (f", target {target:.4f}" if target is not None else "")
            + f", predicted {show('predicted_firing_fraction', '.4f')}), "
            f"maps firing {show('active_maps', 'd')}/{diagnostics['n_kernels']}, "
            f"kernels won in training {diagnostics['kernels_won']}/{diagnostics['n_kernels']}, "
            f"kernel similarity {show('kernel_similarity', '.3f')}, "
            f"C {diagnostics['convergence_first']:.4f} -> {diagnostics['convergence_last']:.4f}, "
            f"{show('stage_spikes_per_image', '.1f')} stage spikes/image, readout validation "
            f"accuracy {show('readout_accuracy', '.4f')} "
            f"({diagnostics['diagnostic_images']} training images, "
            f"{DIAGNOSTIC_VALIDATION_SHARE:.0%} held out)")


def features_of(run: Run, model: SequentialModel, kernels: dict[int, np.ndarray],
                images: np.ndarray, description: str) -> tuple[np.ndarray, np.ndarray]:
    """Readout features of ``images`` (from the spike counts of the last spiking
    layer; ``kernels`` in nA, by position) and each image's total output spike count."""
    reads_all = model.classifier is not None and model.classifier.reads_all_layers
    counts = count_spikes(run, model, kernels, images, description,
                          positions=model.readout_positions() if reads_all else None)
    last = int(np.prod(model.output_shape))
    spikes_per_image = counts[:, -last:].sum(axis=1, dtype=np.int64)
    return readout_features(counts, model), spikes_per_image


def _count_block(backend_name: str, machine: dict, model_dir: Path, model_spec: dict,
                 kernels: dict, params: dict, images: np.ndarray,
                 positions: list[int] | None = None) -> tuple[np.ndarray, float]:
    """Spike counts ``(len(images), n_out)`` of the last layer (or of the spiking layers
    at ``positions``, side by side) for one block of images, simulated by a fresh
    network; also returns this process's peak memory in MB."""
    record_all = positions is not None
    spikes, peak_mb = _simulate_shard(backend_name, machine, model_dir, model_spec, kernels,
                                      params, input_spikes(images, params), upto=None,
                                      description="", quiet=True, record_all=record_all)
    if not record_all:
        return spikes.counts(dtype=np.uint16), peak_mb
    return np.concatenate([spikes[p].counts(dtype=np.uint16) for p in positions],
                          axis=1), peak_mb


def count_spikes(run: Run, model: SequentialModel, kernels: dict, images: np.ndarray,
                 description: str, positions: list[int] | None = None) -> np.ndarray:
    """Output spike counts ``(n_images, n_out)`` (uint16) of the whole network; with
    ``positions``, the counts of those spiking layers side by side.

    The images are simulated in blocks of ``block_images``, each by a freshly built
    network, so memory stays bounded (only counts are kept, never spike times) and
    the result does not depend on ``--jobs``: with ``run.jobs > 1`` the blocks are
    spread over that many simulator processes, with ``run.dask_scheduler`` over the
    workers of that Dask cluster (see :mod:`spinnconv.parallel`).
    """
    block = int(run.params["block_images"])
    if run.backend == "batched" and not run.dask_scheduler:
        if positions is None:
            return _count_batched(run, model, kernels, images, description)
        return np.concatenate([_count_batched(run, model, kernels, images, description,
                                              upto=p + 1) for p in positions], axis=1)
    starts = list(range(0, len(images), block))
    workers = parallel.workers_for(len(starts), run.jobs, run.dask_scheduler)
    if run.backend == "batched":  # on a Dask cluster: one block of the engine per task
        uptos = [None] if positions is None else [p + 1 for p in positions]
        results = parallel.map_calls(_count_batched_block, [
            (model.to_dict(), kernels, run.params, images[start:start + block], uptos)
            for start in starts], run.jobs, run.dask_scheduler)
    else:
        args = (run.backend, run.machine, run.model_dir.path, model.to_dict(), kernels,
                run.params)
        results = parallel.map_calls(_count_block, [(*args, images[start:start + block],
                                                     positions) for start in starts],
                                     run.jobs, run.dask_scheduler)
    width = (int(np.prod(model.output_shape)) if positions is None else
             sum(int(np.prod(model.output_shape_of(p))) for p in positions))
    counts = np.zeros((len(images), width), dtype=np.uint16)
    with tqdm(total=len(images), desc=description, unit="img", disable=run.quiet) as bar:
        for start, (block_counts, peak_mb) in zip(starts, results, strict=True):
            counts[start:start + len(block_counts)] = block_counts
            if workers:
                run.note_workers([peak_mb], workers)
            bar.update(len(block_counts))
    return counts


def _count_batched(run: Run, model: SequentialModel, kernels: dict, images: np.ndarray,
                   description: str, upto: int | None = None) -> np.ndarray:
    """:func:`count_spikes` on the batched engine: the same blocks of ``block_images``
    (each from rest, as a freshly built network), simulated in parallel on the
    engine's threads; images are encoded a few blocks at a time."""
    from .backends.batched import engine_threads, simulate_counts

    block = int(run.params["block_images"])
    group = block * max(1, engine_threads())
    shape = model.output_shape if upto is None else model.output_shape_of(upto - 1)
    counts = np.zeros((len(images), int(np.prod(shape))), dtype=np.uint16)
    with tqdm(total=len(images), desc=description, unit="img", disable=run.quiet) as bar:
        for start in range(0, len(images), group):
            part = images[start:start + group]
            counts[start:start + len(part)] = simulate_counts(
                model, kernels, run.params, input_spikes(part, run.params), upto=upto,
                block_images=block)
            bar.update(len(part))
    return counts


def _count_batched_block(model_spec: dict, kernels: dict, params: dict, images: np.ndarray,
                         uptos: list[int | None]) -> tuple[np.ndarray, float]:
    """One block of :func:`count_spikes` on the batched engine (a Dask task): the
    counts of the layers ``uptos`` (``None``: the last), side by side, and this
    process's peak memory in MB."""
    from .backends.batched import simulate_counts

    model = SequentialModel.from_dict(model_spec)
    spikes = input_spikes(images, params)
    counts = np.concatenate([simulate_counts(model, kernels, params, spikes, upto=upto,
                                             block_images=len(images)) for upto in uptos],
                            axis=1)
    return counts, peak_memory_mb()


def _simulate_shard(backend_name: str, machine: dict, model_dir: Path, model_spec: dict,
                    kernels: dict, params: dict, spikes: LayerSpikes, upto: int | None,
                    description: str, quiet: bool,
                    record_all: bool = False) -> tuple[LayerSpikes | list[LayerSpikes], float]:
    """One worker's share of :func:`simulate` or one block of :func:`count_spikes`
    (runs in its own process); also returns the process's peak memory in MB."""
    from .logs import quiet_libraries

    quiet_libraries()
    run = Run(params=params, dataset="", data_dir=Path("."), model_dir=ModelDir(model_dir),
              backend=backend_name, machine=machine, quiet=quiet)
    model = SequentialModel.from_dict(model_spec)
    result = run_images(run.make_backend(), model, kernels, params, spikes, upto=upto,
                        description=description, quiet=quiet, record_all=record_all)
    return result, peak_memory_mb()


def simulate(run: Run, model: SequentialModel, kernels: dict, spikes: LayerSpikes,
             upto: int | None, description: str,
             record_all: bool = False) -> LayerSpikes | list[LayerSpikes]:
    """:func:`~spinnconv.network.run_images`, split over ``run.jobs`` processes.

    Each worker builds its own network and simulates a contiguous shard of the
    images (one simulator per process: ``run.jobs`` local processes, or one shard
    per worker of the Dask cluster ``run.dask_scheduler``). Only the first image
    of a shard sees a different predecessor, so results match a single run up to
    the residual activity the rest gap leaves.
    """
    jobs = min(parallel.n_workers(run.jobs, run.dask_scheduler), spikes.n_images)
    if jobs <= 1 and not run.dask_scheduler:
        return run_images(run.make_backend(), model, kernels, run.params, spikes, upto=upto,
                          description=description, quiet=run.quiet, record_all=record_all)
    bounds = np.linspace(0, spikes.n_images, jobs + 1).astype(int)
    shards = [spikes.select(np.arange(bounds[k], bounds[k + 1])) for k in range(jobs)]
    results = list(parallel.map_calls(_simulate_shard, [
        (run.backend, run.machine, run.model_dir.path, model.to_dict(), kernels, run.params,
         shard, upto, f"{description} [{k + 1}/{jobs}]", run.quiet or k > 0, record_all)
        for k, shard in enumerate(shards)], run.jobs, run.dask_scheduler))
    run.note_workers([peak for _, peak in results], jobs)
    if record_all:
        return [LayerSpikes.concatenate([layers[k] for layers, _ in results])
                for k in range(len(results[0][0]))]
    return LayerSpikes.concatenate([spikes for spikes, _ in results])


def fit_readout(run: Run, model: SequentialModel, kernels: dict[int, np.ndarray],
                images, labels: np.ndarray, val_images=None,
                val_labels: np.ndarray | None = None) -> tuple[SpikeCountSVM, dict]:
    """Fit the SVM on the features of ``images`` (in memory); returns it and
    ``{"train_accuracy", "seconds"}`` (and ``validation_accuracy``, ``n_validation``
    when validation images are given), and logs a one-line summary."""
    started = time.perf_counter()
    with run.phase("features (train)", len(images), "img"):
        features, spikes_per_image = features_of(run, model, kernels, images,
                                                 "features (train)")
    svm = readout_estimator(model, run.params)
    check_training_labels(labels)
    with run.phase("svm fit", len(images), "img"):
        svm.fit(features, labels)
    if isinstance(svm, StageVoteSVM):
        run.log("svm: one SVM per stage, stage weights "
                + " / ".join(f"{w:g}" for w in svm.stage_weights_)
                + f" chosen on {svm.holdout:.0%} of the training images held out; there: "
                + ", ".join(f"{name} {value:.4f}"
                            for name, value in svm.holdout_accuracy_.items()))
    train_accuracy = accuracy_score(labels, svm.predict(features))
    held_out = {}
    if val_images is not None and len(val_images):
        with run.phase("features (validation) and prediction", len(val_images), "img"):
            val_features, _ = features_of(run, model, kernels, val_images,
                                          "features (validation)")
            held_out["validation_accuracy"] = float(
                accuracy_score(val_labels, svm.predict(val_features)))
        held_out["n_validation"] = len(val_images)
    seconds = time.perf_counter() - started
    silent = float(np.mean(spikes_per_image == 0))
    validation = (f", validation accuracy {held_out['validation_accuracy']:.4f} "
                  f"({held_out['n_validation']} images)" if held_out else "")
    run.log(f"svm: {len(images)} images, {features.shape[1]} features, mean "
            f"{spikes_per_image.mean():.1f} output spikes/image ({silent:.1%} silent), "
            f"train accuracy {train_accuracy:.4f}{validation}, {seconds:.1f} s")
    return svm, {"train_accuracy": train_accuracy, "seconds": seconds, **held_out}


def predict_images(run: Run, model: SequentialModel, kernels: dict[int, np.ndarray],
                   svm: SpikeCountSVM, images: np.ndarray) -> np.ndarray:
    """The SVM's labels for ``images`` (in memory)."""
    with run.phase("features (test) and prediction", len(images), "img"):
        features, _ = features_of(run, model, kernels, images, "features (test)")
        return svm.predict(features)


