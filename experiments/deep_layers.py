"""Validation accuracy of every readout of a deep net, on a held-out slice of the
MNIST *training* file (the test set is never read).

    python experiments/deep_layers.py --source ../shared/data/mnist --out /tmp/deep \\
        --train 2000 --validation 1000 --params my.json --backend nest --jobs 2

Trains the conv layers of ``--params`` (merged over the MNIST defaults) on the first
``--train`` training images, with the product's pipeline (``train_layer``: layer-wise
calibration and diagnostics), then simulates the first ``--train + --validation``
training images once, recording the output of every stage (a conv layer and the
pool layers after it). A LinearSVC is fitted on the first ``--train`` images and
scored on the next ``--validation``, for: each stage alone, every stage together
(``layers: "all"``), and the last stage per neuron. Writes ``<out>/deep.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spinnconv import datasets
from spinnconv.checkpoint import ModelDir
from spinnconv.config import build_model, read_params_file, resolve_parameters
from spinnconv.pipeline import Run, _kernels, count_spikes, train_layer
from spinnconv.readout import SpikeCountSVM, features_from_counts


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="directory of the MNIST IDX files")
    parser.add_argument("--out", required=True, help="model dir and results")
    parser.add_argument("--params", help="JSON parameter overrides (as main.py --params)")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--validation", type=int, default=1000)
    parser.add_argument("--backend", default="nest")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--svm-c", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    args = parser.parse_args(argv)
    started = time.perf_counter()
    overrides = read_params_file(args.params) if args.params else {}
    params = resolve_parameters("mnist", overrides)
    out = Path(args.out)
    data_dir = out / "data"
    datasets.prepare_mnist(data_dir / "mnist", source=args.source)
    run = Run(params=params, dataset="mnist", data_dir=data_dir,
              model_dir=ModelDir(out / "model"), backend=args.backend, n_train=args.train,
              n_test=1, plots=False, jobs=args.jobs)
    model = run.model((28, 28))
    print(model.summary(), flush=True)
    layers = [train_layer(run, number) for number in range(1, model.n_conv_layers + 1)]
    # every stage of the net, read with the classifier's windows scaled per stage
    full = Run(**{**run.__dict__, "n_train": args.train + args.validation, "lines": [],
                  "phases": []})
    data = full.load()
    classifier = model.classifier
    every = replace(classifier, layers="all")
    stages = build_model({**params, "architecture": [
        *params["architecture"][:-1], {**params["architecture"][-1], "layers": "all"}]},
        (28, 28))
    positions = stages.readout_positions()
    kernels = _kernels(run, model, range(1, model.n_conv_layers + 1))
    counts = count_spikes(full, stages, kernels, data.train_images, "every stage",
                          positions=positions)
    shapes = stages.readout_shapes()
    sizes = [int(np.prod(s)) for s in shapes]
    edges = np.cumsum([0, *sizes])
    per_stage = [counts[:, edges[k]:edges[k + 1]] for k in range(len(shapes))]
    stage_features = [features_from_counts(c, s, every.scaled_to(shapes[0], s))
                      for c, s in zip(per_stage, shapes, strict=True)]
    readouts = {f"stage {k + 1} ({shapes[k][0]}x{shapes[k][1]}x{shapes[k][2]})": f
                for k, f in enumerate(stage_features)}
    readouts["all stages"] = np.concatenate(stage_features, axis=1)
    readouts["last stage per neuron"] = per_stage[-1].astype(np.float32)
    labels = data.train_labels
    n_fit = args.train
    results = {}
    for name, features in readouts.items():
        scores = {}
        for c in args.svm_c:
            svm = SpikeCountSVM(c=c, transform=params["svm_feature_transform"])
            svm.fit(features[:n_fit], labels[:n_fit])
            scores[str(c)] = float(np.mean(svm.predict(features[n_fit:]) == labels[n_fit:]))
        results[name] = {"features": int(features.shape[1]), "validation_accuracy": scores}
        print(f"{name}: {features.shape[1]} features, validation accuracy "
              + " / ".join(f"{v:.4f}" for v in scores.values())
              + f" (C {' / '.join(scores)})", flush=True)
    record = {"command": "python experiments/deep_layers.py " + " ".join(sys.argv[1:]
                                                                          if argv is None
                                                                          else argv),
              "n_train": args.train, "n_validation": args.validation,
              "backend": args.backend, "overrides": overrides,
              "model": model.to_dict(), "layers": [r["diagnostics"] for r in layers],
              "spikes_per_image": [float(c.sum(axis=1).mean()) for c in per_stage],
              "readouts": results, "seconds": round(time.perf_counter() - started, 1)}
    (out / "deep.json").write_text(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
