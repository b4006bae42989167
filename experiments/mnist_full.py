"""The full MNIST experiment: ``main.py --mode all`` for several seeds, then mean ± sd.

    python experiments/mnist_full.py --source ../shared/data/mnist --seeds 0 1 2 --jobs 2

Each seed runs the pipeline's stages in this process (what ``main.py --mode all``
runs) in its own model dir (``<out>/seed<S>``) and writes its ``record.json``
(per-phase wall time, images/s, peak memory); this script gathers them into
``<out>/summary.json`` and prints one table. Any other option of ``main.py`` (for
example ``--train-examples 2000 --test-examples 1000`` for a quick check, or
``--params FILE``) applies unchanged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spinnconv import cli, interrupt, pipeline  # noqa: E402
from spinnconv.errors import SpinnconvError  # noqa: E402
from spinnconv.logs import quiet_libraries  # noqa: E402


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=REPO / "models" / "mnist_full",
                        help="parent of the per-seed model dirs (default models/mnist_full)")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--backend", default="brian2")
    parser.add_argument("--jobs", type=int, default=2)
    return parser.parse_known_args(argv)


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


def run_all(argv: list[str]) -> dict:
    """``main.py ARGV`` (``--mode all``) through the pipeline's stages in this process:
    train every conv layer, the SVM, test; returns the written ``record.json``."""
    args = cli.build_parser().parse_args(argv)
    cli._check_args(args)
    started = time.perf_counter()
    run = cli.make_run(args)
    pipeline.load_data(run, args.source)
    for number in range(1, run.model(run.load().image_shape).n_conv_layers + 1):
        pipeline.train_layer(run, number)
        interrupt.check()
    pipeline.train_svm(run)
    results = pipeline.test(run)
    seconds = time.perf_counter() - started
    record = pipeline.write_record(run, argv, results, seconds)
    run.log(f"accuracy: {results['accuracy']:.4f}")
    pipeline.write_run_log(run, argv, seconds)
    return record


def main(argv: list[str] | None = None) -> int:
    args, passthrough = parse(argv)
    quiet_libraries()
    records = []
    for seed in args.seeds:
        model_dir = args.out / f"seed{seed}"
        command = ["--mode", "all", "--dataset", args.dataset, "--backend", args.backend,
                   "--jobs", str(args.jobs), "--seed", str(seed),
                   "--model-dir", str(model_dir), *passthrough]
        if not any(arg.split("=")[0] == "--data-dir" for arg in passthrough):
            command += ["--data-dir", str(REPO / "data")]  # as main.py run from the repo
        print(f"seed {seed}: main.py {' '.join(command)}", flush=True)
        started = time.perf_counter()
        try:
            record = run_all(command)
        except SpinnconvError as err:
            print(f"error: seed {seed} failed: {err}", file=sys.stderr)
            return err.exit_code
        print(f"seed {seed}: accuracy {record['accuracy']:.4f}, "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        records.append(record)
    summary = summarise(records)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(table(summary))
    print(f"summary in {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
