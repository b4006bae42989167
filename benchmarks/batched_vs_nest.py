"""How close the batched engine's features are to pyNN.nest's, on trained kernels.

Trains a model with ``--backend batched`` (``--mode all``), then counts the test
images' output spikes with the batched engine and with pyNN.nest (the same blocks
of ``block_images``), and reports the fraction of equal per-image per-neuron counts,
the accuracy of the model's SVM on each, and how much the images' carry-over
within a block matters (the engine with every image simulated from rest).

    python benchmarks/batched_vs_nest.py --dataset digits
    python benchmarks/batched_vs_nest.py --dataset mnist --train-examples 3000 --test-examples 500
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--train-examples", type=int)
    parser.add_argument("--test-examples", type=int)
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    args = parser.parse_args()

    import numpy as np

    from spinnconv import cli, commands, pipeline
    from spinnconv.readout import SpikeCountSVM, features_from_counts

    model_dir = Path(tempfile.mkdtemp(prefix="spinnconv-batched-"))
    data_dir = model_dir / "data"
    argv = ["--mode", "all", "--dataset", args.dataset, "--backend", "batched", "--quiet",
            "--no-plots", "--model-dir", str(model_dir / "model"), "--data-dir", str(data_dir)]
    if args.dataset == "mnist":
        argv += ["--source", args.source]
    for flag, value in (("--train-examples", args.train_examples),
                        ("--test-examples", args.test_examples)):
        if value:
            argv += [flag, str(value)]
    started = time.perf_counter()
    assert cli.main(argv) == 0
    all_seconds = time.perf_counter() - started
    run = cli.make_run(cli.build_parser().parse_args(argv))
    data = run.load()
    model = run.model(data.image_shape)
    kernels = commands.saved_kernels(run, model, range(1, model.n_conv_layers + 1))
    svm = SpikeCountSVM.from_arrays(run.model_dir.load_svm())
    counts, seconds = {}, {}
    for name in ("batched", "nest"):
        run.backend = name
        started = time.perf_counter()
        counts[name] = pipeline.count_spikes(run, model, kernels, data.test_images, name)
        seconds[name] = time.perf_counter() - started
    run.backend = "batched"
    from_rest = pipeline.count_spikes(
        pipeline.Run(**{**run.__dict__, "params": {**run.params, "block_images": 1}}),
        model, kernels, data.test_images, "from rest")
    accuracy = {}
    for name, c in (*counts.items(), ("batched, every image from rest", from_rest)):
        predicted = svm.predict(features_from_counts(c, model.output_shape, model.classifier))
        accuracy[name] = float(np.mean(predicted == data.test_labels))
    ours, nest = counts["batched"].astype(int), counts["nest"].astype(int)
    report = {
        "dataset": args.dataset, "n_train": data.n_train, "n_test": data.n_test,
        "mode_all_batched_s": round(all_seconds, 1),
        "equal_counts_fraction": float(np.mean(ours == nest)),
        "images_with_all_counts_equal": float(np.mean(np.all(ours == nest, axis=1))),
        "max_abs_count_difference": int(np.abs(ours - nest).max()),
        "spikes_per_image": float(nest.sum(axis=1).mean()),
        "accuracy": accuracy,
        "test_features_s": {k: round(v, 2) for k, v in seconds.items()},
        "from_rest_equal_counts_fraction": float(np.mean(from_rest.astype(int) == ours)),
        "from_rest_images_all_equal": float(np.mean(np.all(from_rest.astype(int) == ours,
                                                           axis=1))),
        "command": "python benchmarks/batched_vs_nest.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
