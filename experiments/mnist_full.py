"""The full MNIST experiment: fit and score :class:`spinnconv.STDPConvNet` for several
seeds, then mean ± sd.

    python experiments/mnist_full.py --source ../shared/data/mnist --seeds 0 1 2 --jobs 2

Per seed: ``STDPConvNet(params, backend, seed, jobs)``, ``fit`` on the training
images, ``score`` on the test images, ``save(<out>/seed<S>)`` (a model dir for
``main.py --model-dir``) with its ``record.json`` (accuracy, per-phase wall time,
images/s and peak memory, from the net's ``phases_``). The seeds are gathered into
``<out>/summary.json`` and one printed table. ``--train-examples 2000
--test-examples 1000`` makes a quick check; ``--params FILE`` overrides parameters
as in ``main.py``; ``--dataset`` also takes digits and own data (idx, npz, folder
with ``--source``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spinnconv import STDPConvNet, datasets  # noqa: E402
from spinnconv.checkpoint import ModelDir, file_hashes, package_versions, write_json  # noqa: E402
from spinnconv.config import read_params_file  # noqa: E402
from spinnconv.errors import SpinnconvError  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=REPO / "models" / "mnist_full",
                        help="parent of the per-seed model dirs (default models/mnist_full)")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--backend", default="brian2")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--source", type=Path,
                        help="mnist: folder of the four IDX files (default <data-dir>/mnist, "
                             "downloaded if missing); own data: the file or folder")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--train-examples", type=int, help="use the first N training images")
    parser.add_argument("--test-examples", type=int, help="use the first N test images")
    parser.add_argument("--params", help="JSON file of parameter overrides (as main.py)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    parser.add_argument("--no-plots", action="store_true", help="accepted; no figures are drawn")
    return parser.parse_args(argv)


def load_data(args: argparse.Namespace, overrides: dict) -> datasets.Dataset:
    """The training and test images of ``--dataset``."""
    if args.dataset == "mnist":
        directory = args.source or datasets.prepare_mnist(args.data_dir / "mnist")
        return datasets.load_dataset("mnist", directory, args.train_examples,
                                     args.test_examples)
    return datasets.load_dataset(args.dataset, args.data_dir / args.dataset,
                                 args.train_examples, args.test_examples, source=args.source,
                                 options=overrides.get("data"))


def run_seed(args: argparse.Namespace, overrides: dict, data: datasets.Dataset, seed: int,
             command: str) -> dict:
    """Fit, score and save one seed's net; returns the ``record.json`` written beside it."""
    started = time.perf_counter()
    net = STDPConvNet(params=overrides, backend=args.backend, seed=seed, jobs=args.jobs,
                      quiet=args.quiet)
    net.fit(data.train_images, data.train_labels)
    stages = {}
    if hasattr(net.svm_, "stage_predictions"):  # a vote of per-stage SVMs: each one's own
        features = net.transform(data.test_images)  # accuracy too (reported, not chosen)
        accuracy = float(np.mean(net.svm_.predict(features) == data.test_labels))
        stages = {"stage_weights": net.svm_.stage_weights_.tolist(),
                  "holdout_accuracy": net.svm_.holdout_accuracy_,
                  "stage_test_accuracy": [
                      float(np.mean(predicted == data.test_labels))
                      for predicted in net.svm_.stage_predictions(features)]}
    else:
        accuracy = net.score(data.test_images, data.test_labels)
    seconds = time.perf_counter() - started
    model_dir = net.save(args.out / f"seed{seed}")
    phases = net.phases_
    record = {
        "command": command, "dataset": args.dataset, "backend": args.backend, "seed": seed,
        "jobs": args.jobs, "cores": os.cpu_count(),
        "n_train": len(data.train_images), "n_test": len(data.test_images),
        "accuracy": accuracy, "train_accuracy": net.train_accuracy_, **stages,
        "total_seconds": round(seconds, 1),
        "peak_memory_mb": max(p["peak_memory_mb"] for p in phases),
        "worker_peak_memory_mb": max(p["worker_peak_memory_mb"] for p in phases),
        "peak_memory_bound_mb": max(p["memory_bound_mb"] for p in phases),
        "phases": phases, "parameters": net.params_, "versions": package_versions(),
        "model_files": file_hashes(ModelDir(model_dir).manifest()),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(model_dir / "record.json", record)
    return record


def stats(values: list[float]) -> dict:
    """Mean, sample sd (0 for one value) and the values themselves."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd, "values": values}


def summarise(records: list[dict]) -> dict:
    """Mean and sample sd of accuracy, wall time and memory over the seeds."""
    return {
        "seeds": [r["seed"] for r in records],
        "accuracy": stats([r["accuracy"] for r in records]),
        "total_seconds": stats([r["total_seconds"] for r in records]),
        "peak_memory_bound_mb": stats([r["peak_memory_bound_mb"] for r in records]),
        "n_train": records[0]["n_train"], "n_test": records[0]["n_test"],
        "backend": records[0]["backend"], "jobs": records[0]["jobs"],
        "cores": records[0]["cores"], "records": records,
    }


def table(summary: dict) -> str:
    lines = ["| seed | accuracy | wall (min) | peak memory (MB) |", "|---|---|---|---|"]
    for r in summary["records"]:
        lines.append(f"| {r['seed']} | {r['accuracy']:.4f} | {r['total_seconds'] / 60:.1f} | "
                     f"{r['peak_memory_bound_mb']:.0f} |")
    acc, wall = summary["accuracy"], summary["total_seconds"]
    mem = summary["peak_memory_bound_mb"]
    lines.append(f"| mean ± sd | {acc['mean']:.4f} ± {acc['sd']:.4f} | "
                 f"{wall['mean'] / 60:.1f} ± {wall['sd'] / 60:.1f} | "
                 f"{max(mem['values']):.0f} (max) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = "python experiments/mnist_full.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    records = []
    try:
        overrides = read_params_file(args.params) if args.params else {}
        data = load_data(args, overrides)
        for seed in args.seeds:
            print(f"seed {seed}: {args.dataset}, {len(data.train_images)} train / "
                  f"{len(data.test_images)} test images, backend {args.backend}", flush=True)
            record = run_seed(args, overrides, data, seed, command)
            each = ", stages alone " + " / ".join(
                f"{a:.4f}" for a in record["stage_test_accuracy"]) + ", weights " + " / ".join(
                f"{w:g}" for w in record["stage_weights"]) if "stage_weights" in record else ""
            print(f"seed {seed}: accuracy {record['accuracy']:.4f}{each}, "
                  f"{record['total_seconds']:.0f} s", flush=True)
            records.append(record)
    except SpinnconvError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = summarise(records)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "summary.json", summary)
    print(table(summary))
    print(f"summary in {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
