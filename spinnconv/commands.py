"""The CLI's commands on a model dir, one function per ``--mode``: load data, train a
layer, fit the SVM, test, plot, deploy, describe; and the run's log and record files.

Training and testing go through :class:`~spinnconv.api.STDPConvNet`, built on the CLI's
:class:`~spinnconv.pipeline.Run` with the layers and the SVM saved in the model dir
(:meth:`~spinnconv.api.STDPConvNet._on_run`); each command saves what it fitted back
into the model dir.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix

from . import datasets, figures
from .api import DEFAULT_ARCHITECTURES, STDPConvNet
from .checkpoint import file_hashes, write_json, write_text
from .encoding import input_spikes
from .errors import UsageError
from .logs import program_name
from .model import SequentialModel
from .network import run_images
from .pipeline import Run, features_of, kernels_na, layer_diagnostics_of, peak_memory_mb


def describe_data(data: datasets.Dataset) -> str:
    """One line: kind, sizes, classes and split sizes of ``data``."""
    if data.is_events:
        kind = f"event recordings on a {data.image_shape[0]}×{data.image_shape[1]} sensor"
    else:
        colour = f"×{data.channels}" if data.channels > 1 else ""
        kind = f"images {data.image_shape[0]}×{data.image_shape[1]}{colour}"
    names = (f" ({', '.join(data.class_names[:10])}{', ...' if data.n_classes > 10 else ''})"
             if data.class_names else "")
    validation = f" / {data.n_validation} validation" if data.n_validation else ""
    return (f"{data.name}: {kind}, {data.n_classes} classes{names}, {data.n_train} train"
            f"{validation} / {data.n_test} test")


def load_data(run: Run, source: str | None = None) -> None:
    """``--mode loaddata``: make the dataset available under ``data_dir``.

    Own data (idx, npz, folder, events) is read and checked where it is
    (``--source``, checksums, sizes, labels, pixel values); nothing is copied.
    """
    if run.dataset == "digits":
        data = datasets.load_digits_dataset()
        run.log(f"digits: bundled with scikit-learn, {data.n_train} train / {data.n_test} "
                "test images of 8×8, nothing to download")
        return
    if run.dataset == "mnist":
        path = datasets.prepare_mnist(run.dataset_dir, source=source)
        run.log(f"mnist: verified the four IDX files (SHA-256) in {path}")
        return
    if run.dataset in datasets.OWN_DATASETS:
        if source is not None:
            run.source = Path(source)
        data = run.load()
        run.log(f"{describe_data(data)}; read and checked in {run.source} (used in place, "
                f"nothing copied)")
        return
    datasets.load_dataset(run.dataset, run.dataset_dir)  # raises the unknown-dataset error


def saved_kernels(run: Run, model: SequentialModel, numbers,
                  manifest: dict | None = None) -> dict[int, np.ndarray]:
    """:func:`~spinnconv.pipeline.kernels_na` of conv layers ``numbers`` as ``manifest``
    (default: the one on disk) names them in the model dir."""
    numbers = list(numbers)
    if numbers and manifest is None:
        manifest = run.model_dir.manifest()
    return kernels_na(run, model, {number: run.model_dir.load_layer(number, manifest)
                                   for number in numbers})


def _require_layers(manifest: dict, needed: int, what: str) -> None:
    trained = manifest["trained"]["layers"]
    missing = [n for n in range(1, needed + 1) if n not in trained]
    if missing:
        raise UsageError(f"{what} needs conv layer {missing[0]} trained first: run "
                         f"--mode training --layer {missing[0]}")


def _network(run: Run, model: SequentialModel, manifest: dict, numbers,
             svm: dict[str, np.ndarray] | None = None) -> STDPConvNet:
    """An :class:`~spinnconv.api.STDPConvNet` on ``run`` with the conv layers ``numbers``
    of the model dir (as ``manifest`` names them) and the SVM arrays ``svm``."""
    return STDPConvNet._on_run(run, model, {number: run.model_dir.load_layer(number, manifest)
                                            for number in numbers}, svm)


def train_layer(run: Run, number: int) -> dict:
    """``--mode training --layer N``: learn conv layer N's kernels with STDP."""
    data = run.load()
    model = run.model_for(data)
    if not 1 <= number <= model.n_conv_layers:
        raise UsageError(f"--layer {number} does not exist: the model has conv layers "
                         f"1..{model.n_conv_layers} (and 'svm')")
    if number > 1 and not run.model_dir.exists():
        _require_layers({"trained": {"layers": []}}, number - 1, f"training layer {number}")
    manifest = run.model_dir.start(model, run.params, run.dataset, run.backend)
    _require_layers(manifest, number - 1, f"training layer {number}")
    net = _network(run, model, manifest, range(1, number))
    arrays = net.fit_layer(number, data.train_images, data.train_labels).layers_[number]
    diagnostics = layer_diagnostics_of(arrays)
    kept = {key: value for key, value in manifest.get("diagnostics", {}).items()
            if int(key) < number}
    run.model_dir.save_layer(manifest, number, arrays,
                             diagnostics={**kept, str(number): diagnostics})
    if run.plots:
        figures.training_figures(run.model_dir.path, model, number, run.params)
    history = [float(c) for c in arrays["convergence"]] or [float("nan")]
    return {"layer": number, "convergence": history, "seconds": float(arrays["seconds"]),
            "diagnostics": diagnostics}


def extract_features(run: Run, model: SequentialModel, images: np.ndarray,
                     description: str, manifest: dict | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Readout features of ``images`` with the model dir's kernels (from the spike
    counts of the last spiking layer) and each image's total output spike count."""
    return features_of(run, model, saved_kernels(run, model,
                                                 range(1, model.n_conv_layers + 1), manifest),
                       images, description)


def train_svm(run: Run) -> dict:
    """``--mode training --layer svm``: fit the SVM on the training images' features
    (scored on the validation split, if any)."""
    data = run.load()
    model = run.model_for(data)
    if not run.model_dir.exists():
        _require_layers({"trained": {"layers": []}}, model.n_conv_layers, "the SVM")
    manifest = run.model_dir.start(model, run.params, run.dataset, run.backend, create=False)
    _require_layers(manifest, model.n_conv_layers, "the SVM")
    started = time.perf_counter()
    net = _network(run, model, manifest, range(1, model.n_conv_layers + 1))
    validation = (data.val_images, data.val_labels) if data.n_validation else None
    net.fit_readout(data.train_images, data.train_labels, validation=validation)
    held_out = ({} if validation is None else
                {"validation_accuracy": net.validation_accuracy_,
                 "n_validation": net.n_validation_})
    run.model_dir.save_svm(manifest, net._svm_arrays())
    return {"train_accuracy": net.train_accuracy_, "seconds": time.perf_counter() - started,
            **held_out}


def test(run: Run) -> dict:
    """``--mode testing``: accuracy on the test images; writes ``results.json``."""
    data = run.load()
    model = run.model_for(data)
    if not run.model_dir.exists():
        raise UsageError(f"no model in {run.model_dir.path}: train the layers and the SVM "
                         "first (--mode training ..., or --mode all)")
    manifest = run.model_dir.start(model, run.params, run.dataset, run.backend, create=False)
    if not manifest["trained"]["svm"]:
        raise UsageError("the SVM is not trained: run --mode training --layer svm first")
    started = time.perf_counter()
    svm_arrays = run.model_dir.load_svm(manifest)
    net = _network(run, model, manifest, range(1, model.n_conv_layers + 1), svm_arrays)
    predicted = net.predict(data.test_images)
    accuracy = float(accuracy_score(data.test_labels, predicted))
    seconds = time.perf_counter() - started
    results = {
        "accuracy": accuracy, "n_train": int(svm_arrays["n_train"]),
        "n_test": data.n_test, "backend": run.backend, "dataset": run.dataset,
        "confusion_matrix": confusion_matrix(
            data.test_labels, predicted,
            labels=np.arange(max(data.n_classes, int(np.max(svm_arrays["classes"])) + 1))
        ).tolist(),
        "seconds": seconds, "peak_memory_mb": peak_memory_mb(),
        "seed": run.params["seed"],
        "validation_accuracy": net.validation_accuracy_,
        "n_validation": net.n_validation_,
    }
    results = run.model_dir.save_results(manifest, results)
    if run.plots:
        _testing_figures(run, model, data, manifest)
    return results


def _testing_figures(run: Run, model: SequentialModel, data: datasets.Dataset,
                     manifest: dict | None = None) -> list[Path]:
    """Figures of one test image run through every layer, and of the test results."""
    sample = data.test_images[:1]
    spikes = input_spikes(sample, run.params)
    if data.is_events:
        image = sample.frames()
    else:
        image = np.asarray(sample, dtype=np.float32)
        image = image.mean(axis=3) if image.ndim == 4 else image
    kernels = saved_kernels(run, model, range(1, model.n_conv_layers + 1), manifest)
    layers = run_images(run.make_backend(), model, kernels, run.params, spikes,
                        quiet=True, record_all=True)
    return figures.testing_figures(run.model_dir.path, model, spikes, layers, image[0],
                                   run.params)


def plot(run: Run) -> list[Path]:
    """``--mode plot``: every figure the model dir's state allows."""
    model = run.model_dir.model()
    manifest = run.model_dir.start(model, run.params, run.dataset, run.backend, create=False)
    written = []
    for number in manifest["trained"]["layers"]:
        written += figures.training_figures(run.model_dir.path, model, number, run.params)
    if manifest["trained"]["svm"] and run.model_dir.results(manifest) is not None:
        written += _testing_figures(run, model, run.load(), manifest)
    if not written:
        raise UsageError(f"nothing to plot in {run.model_dir.path}: train a layer first")
    return written


def deploy(run: Run, conv_mode: str = "auto") -> dict:
    """``--mode deploy``: map the trained inference network on a SpiNNaker machine.

    Prints sPyNNaker's per-layer resources and writes ``deploy.json``; a network
    that does not fit is refused in one line naming the layer.
    """
    from .backends.spinnaker import deploy as map_network
    from .backends.spinnaker import format_report

    model = run.model_dir.model()
    manifest = run.model_dir.start(model, run.params, run.dataset, run.backend, create=False)
    _require_layers(manifest, model.n_conv_layers, "deploying")
    kernels = saved_kernels(run, model, range(1, model.n_conv_layers + 1), manifest)
    machine = run.machine or {"virtual_board": 5}
    report = map_network(model, kernels, run.params, machine,
                         work_dir=run.model_dir.path / "spinnaker", conv_mode=conv_mode,
                         quiet=run.quiet)
    write_json(run.model_dir.path / "deploy.json",
               {**report, "model_files": file_hashes(manifest)})
    run.log(format_report(report))
    return report


def write_run_log(run: Run, argv: list[str], seconds: float) -> Path | None:
    """``<model-dir>/logs/<UTC time>_<mode>.log``: command line, parameters, package
    versions, what was printed, wall time and peak memory. Only for model dirs that
    exist (a failed or data-only run leaves the model dir as it was)."""
    if not run.model_dir.exists():
        return None
    from .checkpoint import package_versions

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = run.model_dir.path / "logs" / f"{stamp}_{argv_mode(argv)}.log"
    text = "\n".join([
        f"command: {program_name()} " + " ".join(argv),
        f"wall time: {seconds:.1f} s; peak memory: {peak_memory_mb():.0f} MB",
        "versions: " + json.dumps(package_versions()),
        "parameters: " + json.dumps(run.params, sort_keys=True),
        "", *run.lines, ""])
    write_text(path, text)
    return path


def write_record(run: Run, argv: list[str], results: dict, seconds: float) -> dict:
    """Write and return ``<model-dir>/record.json`` of a ``--mode all`` run: command,
    accuracy, and per phase wall time, rate and peak memory. ``peak_memory_bound_mb``
    bounds the whole run's resident memory: the largest, over the phases, of the main
    process's peak in that phase plus the workers that ran in it times their largest
    peak (workers are shut down between phases)."""
    from .checkpoint import package_versions

    main_peak_mb = max(run.main_peak_mb, peak_memory_mb())
    bound_mb = max([main_peak_mb, *(p["memory_bound_mb"] for p in run.phases)])
    record = {
        "command": f"{program_name()} " + " ".join(argv),
        "dataset": run.dataset, "backend": run.backend, "seed": run.params["seed"],
        "jobs": run.jobs, "cores": os.cpu_count(),
        "n_train": results["n_train"], "n_test": results["n_test"],
        "accuracy": results["accuracy"],
        "validation_accuracy": results.get("validation_accuracy"),
        "total_seconds": round(seconds, 1),
        "peak_memory_mb": round(main_peak_mb, 1),
        "worker_peak_memory_mb": round(run.worker_peak_mb, 1),
        "peak_memory_bound_mb": round(bound_mb, 1),
        "phases": run.phases, "parameters": run.params, "versions": package_versions(),
        "model_files": file_hashes(run.model_dir.manifest()),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(run.model_dir.path / "record.json", record)
    return record


def argv_mode(argv: list[str]) -> str:
    """The ``--mode`` value of a command line (for log file names)."""
    for i, arg in enumerate(argv):
        if arg == "--mode" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--mode="):
            return arg.split("=", 1)[1]
    return "run"


def info(run: Run) -> str:
    """``--mode info``: the model summary and what is trained."""
    image_shape = {name: shape for shape, name in DEFAULT_ARCHITECTURES.items()}.get(
        run.dataset)
    if run.model_dir.exists():
        manifest = run.model_dir.verify()
        model = run.model_dir.model()
        trained = manifest["trained"]
        status = (f"model dir {run.model_dir.path}: dataset {manifest['dataset']}, backend "
                  f"{manifest['backend']}, seed {manifest['seed']}; trained conv layers "
                  f"{trained['layers'] or 'none'} of {model.n_conv_layers}, svm "
                  f"{'yes' if trained['svm'] else 'no'}")
        results = run.model_dir.results(manifest)
        if results is not None:
            status += f"; last test accuracy {results['accuracy']:.4f}"
    elif run.dataset in datasets.OWN_DATASETS:
        data = run.load()
        model = run.model_for(data)
        status = (f"{describe_data(data)}\nmodel dir {run.model_dir.path}: nothing trained "
                  f"yet")
    else:
        if image_shape is None:
            raise UsageError(f"unknown dataset '{run.dataset}'; choose one of: "
                             + ", ".join(datasets.DATASETS))
        model = run.model(image_shape)
        status = f"model dir {run.model_dir.path}: nothing trained yet"
    return model.summary() + "\n" + status
