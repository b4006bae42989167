"""Validation accuracy of every readout of a deep net, on a held-out slice of the
MNIST *training* file; the test set only with ``--test N`` (final configs).

    python experiments/deep_layers.py --source ../shared/data/mnist --out /tmp/deep \\
        --name two_layers --params my.json --train 2000 --validation 1000 --backend nest

With the public API (:class:`spinnconv.STDPConvNet`): ``fit_layer(n, ...)`` for
every conv layer in order on the first ``--train`` images (each layer's
diagnostics come with it), then per stage (a conv layer and the pool layers
after it) ``transform(images, layer=n)``: the spike counts of the stage's last
layer for the ``--train`` fit images, the next ``--validation`` images and the
first ``--test`` test images. A LinearSVC (``SpikeCountSVM``, one per
``--svm-c``) is fitted on the fit images and scored on the validation (and test)
images for each stage alone (its windows scaled to the map), every stage
together (``"all stages"``) and the last stage per neuron. Writes
``<out>/<name>.json``. Nothing is cached: the counting path is fast enough to
simulate every stage again for each config.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spinnconv import STDPConvNet, datasets  # noqa: E402
from spinnconv.config import read_params_file  # noqa: E402
from spinnconv.errors import SpinnconvError  # noqa: E402
from spinnconv.model import Classifier, SequentialModel  # noqa: E402
from spinnconv.readout import SpikeCountSVM, features_from_counts  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="directory of the MNIST IDX files")
    parser.add_argument("--out", required=True, help="results directory")
    parser.add_argument("--name", required=True, help="results go to <out>/<name>.json")
    parser.add_argument("--params", help="JSON parameter overrides (as main.py --params)")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--validation", type=int, default=1000)
    parser.add_argument("--test", type=int, default=0,
                        help="also score the first N test images (final configs only)")
    parser.add_argument("--backend", default="nest")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--svm-c", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    return parser.parse_args(argv)


def stage_shapes(model: SequentialModel) -> list[tuple[int, int, int]]:
    """Output shape of every stage: its conv layer and the pool layers after it."""
    positions = model.conv_layer_positions
    ends = [p - 1 for p in positions[1:]] + [len(model.spiking_layers) - 1]
    return [model.output_shape_of(end) for end in ends]


def readouts(counts: list[np.ndarray], shapes: list[tuple[int, int, int]],
             classifier: Classifier) -> dict[str, np.ndarray]:
    """Features of each stage alone, of every stage together, and of the last stage's
    neurons, from the stages' spike counts."""
    per_stage = [features_from_counts(c, s, classifier.scaled_to(shapes[0], s))
                 for c, s in zip(counts, shapes, strict=True)]
    found = {f"stage {k + 1} ({s[0]}x{s[1]}x{s[2]})": f
             for k, (f, s) in enumerate(zip(per_stage, shapes, strict=True))}
    if len(per_stage) > 1:
        found["all stages"] = np.concatenate(per_stage, axis=1)
    found["last stage per neuron"] = counts[-1].astype(np.float32)
    return found


def scalar_items(diagnostics: dict) -> dict:
    """The diagnostics that are one number or string (not per kernel or per step)."""
    return {k: v for k, v in diagnostics.items() if not isinstance(v, (list, dict))}


def run(args: argparse.Namespace, command: str) -> dict:
    started = time.perf_counter()
    overrides = read_params_file(args.params) if args.params else {}
    data = datasets.load_dataset("mnist", args.source, args.train + args.validation,
                                 max(1, args.test))
    net = STDPConvNet(params=overrides, backend=args.backend,
                      seed=int(overrides.get("seed", 0)), jobs=args.jobs)
    fit_images, fit_labels = data.train_images[:args.train], data.train_labels[:args.train]
    sets = {"fit": fit_images, "validation": data.train_images[args.train:]}
    if args.test:
        sets["test"] = data.test_images[:args.test]
    labels = {"fit": fit_labels, "validation": data.train_labels[args.train:],
              "test": data.test_labels[:args.test]}
    layers = []
    stage_counts: dict[str, list[np.ndarray]] = {name: [] for name in sets}
    number = 0
    while number == 0 or number < net.model_.n_conv_layers:
        number += 1
        t0 = time.perf_counter()
        net.fit_layer(number, fit_images, fit_labels)
        if number == 1:
            net.summary(print_fn=lambda text: print(text, flush=True))
        train_seconds = time.perf_counter() - t0
        for name, images in sets.items():
            stage_counts[name].append(net.transform(images, layer=number))
        seen = np.concatenate([stage_counts["fit"][-1], stage_counts["validation"][-1]])
        diagnostics = {**scalar_items(net.layer_diagnostics_[number]),
                       "stage_spikes_per_image": float(seen.sum(axis=1).mean()),
                       "train_seconds": round(train_seconds, 1),
                       "transform_seconds": round(time.perf_counter() - t0 - train_seconds, 1)}
        layers.append(diagnostics)
        print(f"layer {number}: " + json.dumps(diagnostics), flush=True)
    model = net.model_
    shapes = stage_shapes(model)
    classifier = model.classifier if model.classifier.windows or model.classifier.grid \
        else Classifier(windows=((6, 2), (3, 3)))
    features = {name: readouts(counts, shapes, classifier)
                for name, counts in stage_counts.items()}
    results = {}
    for readout, fit_features in features["fit"].items():
        scores: dict[str, dict[str, float]] = {"validation": {}, "test": {}}
        for c in args.svm_c:
            svm = SpikeCountSVM(c=c, transform=net.params_["svm_feature_transform"])
            svm.fit(fit_features, labels["fit"])
            for name in scores:
                if name in features:
                    predicted = svm.predict(features[name][readout])
                    scores[name][str(c)] = float(np.mean(predicted == labels[name]))
        results[readout] = {"features": int(fit_features.shape[1]),
                            "validation_accuracy": scores["validation"]}
        line = (f"{readout}: {fit_features.shape[1]} features, validation "
                + " / ".join(f"{v:.4f}" for v in scores["validation"].values()))
        if args.test:
            results[readout]["test_accuracy"] = scores["test"]
            line += ", test " + " / ".join(f"{v:.4f}" for v in scores["test"].values())
        print(line + f" (C {' / '.join(scores['validation'])})", flush=True)
    record = {"command": command, "n_train": len(fit_images),
              "n_validation": len(sets["validation"]), "n_test": args.test,
              "backend": args.backend, "overrides": overrides, "model": model.to_dict(),
              "layers": layers, "readouts": results,
              "seconds": round(time.perf_counter() - started, 1),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(record, indent=2))
    return record


def main(argv: list[str] | None = None) -> dict:
    """Run the experiment; returns the written record."""
    args = parse(argv)
    return run(args, "python experiments/deep_layers.py "
               + " ".join(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    try:
        main()
    except SpinnconvError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
