"""Validation accuracy of every readout of a deep net, on a held-out slice of the
MNIST *training* file; the test set only with ``--test N`` (final configs).

    python experiments/deep_layers.py --source ../shared/data/mnist --out /tmp/deep \\
        --name two_layers --params my.json --train 2000 --validation 1000 --backend nest

Stage by stage (a conv layer and the pool layers after it), with the product's
functions: patches from the stage input of the first ``--train`` images
(``sample_patches``, ``train_patches_factor_by_layer``), STDP (``train_conv_layer``), the
layer's weight calibration (``pipeline.calibrate_layer_weight``), then one
simulation of the stage (``pipeline.simulate``) on all ``--train + --validation``
images, whose output is the next stage's input. Stages are cached in ``<out>/cache``
by their parameters and architecture prefix, so configs that share layer 1 simulate
it once. A LinearSVC (sqrt, standardised) is fitted on the first ``--train`` images
and scored on the next ``--validation`` for each stage alone (its windows scaled to
the map), every stage together (``layers: "all"``) and the last stage per neuron.
Writes ``<out>/<name>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spinnconv import datasets
from spinnconv.checkpoint import ModelDir
from spinnconv.config import read_params_file, resolve_parameters
from spinnconv.encoding import encode
from spinnconv.logs import quiet_libraries
from spinnconv.model import Classifier
from spinnconv.pipeline import (
    Run,
    calibrate_layer_weight,
    layer_params,
    per_layer,
    simulate,
    stage_model,
    train_patches_of,
)
from spinnconv.readout import SpikeCountSVM, features_from_counts
from spinnconv.spikes import LayerSpikes
from spinnconv.training import (
    firing_fraction,
    random_kernels,
    sample_patches,
    train_conv_layer,
)

RUN_ONLY = {"chunk_images", "block_images", "svm_c", "diagnostics_images"}


def stage_key(params: dict, model, position: int, n_images: int, what: str) -> str:
    """Cache key of the stage ending at conv layer ``position``'s pools."""
    spec = {k: v for k, v in params.items() if k not in RUN_ONLY | {"architecture"}}
    factors = spec.pop("train_patches_factor_by_layer", [])  # as absolute counts per layer
    spec["train_patches_by_layer"] = [round(params["train_patches"] * f) for f in factors]
    number = model.conv_layer_positions.index(position) + 1  # layers 1..number matter
    own = [per_layer(spec.pop("layer_training", []), n, {}) or {} for n in range(1, number + 1)]
    if any(own):
        spec["layer_training"] = own
    end = position + len(stage_model(model, position).layers)
    prefix = [layer.describe() for layer in model.layers[:end]]
    text = json.dumps([spec, prefix, n_images, what], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_spikes(path: Path, spikes: LayerSpikes, **extra) -> None:
    np.savez(path, shape=np.asarray(spikes.shape), n_images=np.asarray(spikes.n_images),
             image=spikes.image, neuron=spikes.neuron, time_ms=spikes.time_ms, **extra)


def load_spikes(arrays) -> LayerSpikes:
    return LayerSpikes(tuple(int(s) for s in arrays["shape"]), int(arrays["n_images"]),
                       arrays["image"], arrays["neuron"], arrays["time_ms"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="directory of the MNIST IDX files")
    parser.add_argument("--out", required=True, help="cache and results directory")
    parser.add_argument("--name", required=True, help="results go to <out>/<name>.json")
    parser.add_argument("--params", help="JSON parameter overrides (as main.py --params)")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--validation", type=int, default=1000)
    parser.add_argument("--test", type=int, default=0,
                        help="also score the first N test images (final configs only)")
    parser.add_argument("--test-only", action="store_true",
                        help="with --test: only simulate the test images of the stages "
                             "whose kernels can be had without the training images' "
                             "stage outputs (stage 1, or cached ones), then stop")
    parser.add_argument("--subset", type=int, nargs=2, metavar=("FIT", "SCORE"),
                        help="stages not in the cache are trained and simulated on the "
                             "first FIT training and first SCORE validation images only")
    parser.add_argument("--backend", default="nest")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--svm-c", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    args = parser.parse_args(argv)
    quiet_libraries()
    started = time.perf_counter()
    overrides = read_params_file(args.params) if args.params else {}
    params = resolve_parameters("mnist", overrides)
    out = Path(args.out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    datasets.prepare_mnist(out / "data" / "mnist", source=args.source)
    n_seen = args.train + args.validation
    run = Run(params=params, dataset="mnist", data_dir=out / "data",
              model_dir=ModelDir(out / "unused"), backend=args.backend, n_train=n_seen,
              n_test=max(1, args.test), plots=False, jobs=args.jobs)
    data = run.load()
    model = run.model((28, 28))
    print(model.summary(), flush=True)
    sets = {"train+validation": data.train_images[:n_seen]}
    if args.test:
        sets["test"] = data.test_images[:args.test]
    inputs = {name: encode(images, params) for name, images in sets.items()}
    stage_counts = {name: [] for name in sets}
    layers = []
    index, n_fit, tag = None, args.train, "stage"
    train_inputs_ok = True  # inputs["train+validation"] is this stage's input
    for number, position in enumerate(model.conv_layer_positions, start=1):
        layer = model.layers[position]
        stage = stage_model(model, position)
        key = stage_key(params, model, position, n_seen, tag)
        if (args.subset and index is None and not args.test_only
                and not (cache / f"{key}.npz").is_file()):
            fit, score = args.subset
            index = np.r_[0:fit, args.train:args.train + score]
            inputs["train+validation"] = inputs["train+validation"].select(index)
            stage_counts["train+validation"] = [c[index] for c in
                                                stage_counts["train+validation"]]
            n_fit, tag = fit, f"stage-subset{fit}-{score}"
            key = stage_key(params, model, position, n_seen, tag)
        path = cache / f"{key}.npz"
        kernels_path = cache / f"{key}.kernels.npz"
        if path.is_file():
            arrays = np.load(path, allow_pickle=False)
            kernels, weight_na = arrays["kernels"], float(arrays["weight_na"])
            diagnostics = json.loads(str(arrays["diagnostics"]))
            outputs = {"train+validation": load_spikes(arrays)}
            print(f"layer {number}: cached {path.name}", flush=True)
        elif args.test_only:
            if not train_inputs_ok and not kernels_path.is_file():
                break
            if kernels_path.is_file():
                arrays = np.load(kernels_path, allow_pickle=False)
                kernels, weight_na = arrays["kernels"], float(arrays["weight_na"])
            else:
                training = inputs["train+validation"].select(np.arange(args.train))
                rng = np.random.default_rng([params["seed"], number])
                own = layer_params(params, number)
                patches = sample_patches(training, layer, train_patches_of(params, number),
                                         rng, int(own["patch_min_spikes"]))
                trained = (random_kernels(patches.shape, layer.n_kernels, own, rng)
                           if own["random_kernels"] else
                           train_conv_layer(run.make_backend(), patches, layer.n_kernels,
                                            own, rng, quiet=True))
                kernels = trained.kernels
                weight_na, _ = calibrate_layer_weight(training, layer, kernels, own, number)
                np.savez(kernels_path, kernels=kernels, weight_na=np.asarray(weight_na))
            outputs, diagnostics = {}, {}
        else:
            t0 = time.perf_counter()
            spikes = inputs["train+validation"]
            training = spikes.select(np.arange(n_fit))
            rng = np.random.default_rng([params["seed"], number])
            n_patches = train_patches_of(params, number)
            own = layer_params(params, number)
            patches = sample_patches(training, layer, int(n_patches), rng,
                                     int(own["patch_min_spikes"]))
            if own["random_kernels"]:
                trained = random_kernels(patches.shape, layer.n_kernels, own, rng)
            else:
                trained = train_conv_layer(run.make_backend(), patches, layer.n_kernels, own,
                                           rng, quiet=True, description=f"STDP layer {number}")
            weight_na, calibration = calibrate_layer_weight(training, layer, trained.kernels,
                                                            own, number)
            train_seconds = time.perf_counter() - t0
            recorded = simulate(run, stage, {0: trained.kernels * weight_na}, spikes,
                                upto=None, description=f"stage {number}", record_all=True)
            conv_counts = recorded[0].counts()
            per_map = conv_counts.reshape(len(conv_counts), layer.n_kernels, -1).sum(axis=(0, 2))
            diagnostics = {**calibration, "weight_na": weight_na,
                           "firing_fraction": firing_fraction(conv_counts),
                           "active_maps": int((per_map > 0).sum()),
                           "n_kernels": layer.n_kernels, "n_patches": int(patches.n_images),
                           "kernels_won": int((trained.wins > 0).sum()),
                           "convergence_first": (trained.convergence or [None])[0],
                           "convergence_last": (trained.convergence or [None])[-1],
                           "train_seconds": round(train_seconds, 1),
                           "simulate_seconds": round(time.perf_counter() - t0 - train_seconds,
                                                     1)}
            kernels = trained.kernels
            outputs = {"train+validation": recorded[-1]}
            save_spikes(path, recorded[-1], kernels=kernels, weight_na=np.asarray(weight_na),
                        diagnostics=np.asarray(json.dumps(diagnostics)))
        if args.test:
            what = f"test{args.test}" if tag == "stage" else f"{tag}-test{args.test}"
            test_path = cache / f"{stage_key(params, model, position, n_seen, what)}.npz"
            if test_path.is_file():
                outputs["test"] = load_spikes(np.load(test_path, allow_pickle=False))
            else:
                outputs["test"] = simulate(run, stage, {0: kernels * weight_na}, inputs["test"],
                                           upto=None, description=f"stage {number} test")
                save_spikes(test_path, outputs["test"])
        if args.test_only:
            print(f"layer {number}: test images simulated", flush=True)
            inputs["test"] = outputs["test"]
            if "train+validation" in outputs:
                inputs["train+validation"] = outputs["train+validation"]
            else:
                train_inputs_ok = False
            continue
        for name in sets:
            inputs[name] = outputs[name]
            stage_counts[name].append(outputs[name].counts())
        diagnostics["stage_spikes_per_image"] = float(stage_counts["train+validation"][-1]
                                                      .sum(axis=1).mean())
        layers.append(diagnostics)
        print(f"layer {number}: " + json.dumps(diagnostics), flush=True)
    shapes = [stage_model(model, p).output_shape for p in model.conv_layer_positions]
    classifier = model.classifier if model.classifier.windows or model.classifier.grid \
        else Classifier(windows=((6, 2), (3, 3)))

    def readouts(counts: list[np.ndarray]) -> dict[str, np.ndarray]:
        per_stage = [features_from_counts(c, s, classifier.scaled_to(shapes[0], s))
                     for c, s in zip(counts, shapes, strict=True)]
        found = {f"stage {k + 1} ({s[0]}x{s[1]}x{s[2]})": f
                 for k, (f, s) in enumerate(zip(per_stage, shapes, strict=True))}
        if len(per_stage) > 1:
            found["all stages"] = np.concatenate(per_stage, axis=1)
        found["last stage per neuron"] = counts[-1].astype(np.float32)
        return found

    if args.test_only:
        return {}
    seen = readouts(stage_counts["train+validation"])
    tested = readouts(stage_counts["test"]) if args.test else {}
    labels = data.train_labels[:n_seen] if index is None else data.train_labels[index]
    results = {}
    for name, features in seen.items():
        scores, test_scores = {}, {}
        for c in args.svm_c:
            svm = SpikeCountSVM(c=c, transform=params["svm_feature_transform"])
            svm.fit(features[:n_fit], labels[:n_fit])
            scores[str(c)] = float(np.mean(svm.predict(features[n_fit:]) == labels[n_fit:]))
            if args.test:
                test_scores[str(c)] = float(np.mean(svm.predict(tested[name])
                                                    == data.test_labels[:args.test]))
        results[name] = {"features": int(features.shape[1]), "validation_accuracy": scores}
        line = (f"{name}: {features.shape[1]} features, validation "
                + " / ".join(f"{v:.4f}" for v in scores.values()))
        if args.test:
            results[name]["test_accuracy"] = test_scores
            line += ", test " + " / ".join(f"{v:.4f}" for v in test_scores.values())
        print(line + f" (C {' / '.join(scores)})", flush=True)
    record = {"command": "python experiments/deep_layers.py "
              + " ".join(sys.argv[1:] if argv is None else argv),
              "n_train": n_fit, "n_validation": len(labels) - n_fit, "n_test": args.test,
              "subset": args.subset,
              "backend": args.backend, "overrides": overrides, "model": model.to_dict(),
              "layers": layers, "readouts": results,
              "seconds": round(time.perf_counter() - started, 1),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / f"{args.name}.json").write_text(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
