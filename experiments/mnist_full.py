"""The full MNIST experiment: ``main.py --mode all`` for several seeds, then mean ± sd.

    python experiments/mnist_full.py --source ../shared/data/mnist --seeds 0 1 2 --jobs 2

Each seed runs in its own model dir (``<out>/seed<S>``) and writes its
``record.json`` (per-phase wall time, images/s, peak memory); this script gathers
them into ``<out>/summary.json`` and prints one table. Any other option (for
example ``--train-examples 2000 --test-examples 1000`` for a quick check, or
``--params FILE``) is passed to ``main.py`` unchanged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
                 f"{wall['mean'] / 60:.1f} ± {wall['sd'] / 60:.1f} | {max(mem['values']):.0f} (max) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args, passthrough = parse(argv)
    records = []
    for seed in args.seeds:
        model_dir = args.out / f"seed{seed}"
        command = [sys.executable, str(REPO / "main.py"), "--mode", "all",
                   "--dataset", args.dataset, "--backend", args.backend,
                   "--jobs", str(args.jobs), "--seed", str(seed),
                   "--model-dir", str(model_dir), *passthrough]
        print(f"seed {seed}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        if subprocess.run(command, check=False, cwd=REPO).returncode != 0:
            print(f"error: seed {seed} failed (see {model_dir}/logs)", file=sys.stderr)
            return 1
        record = json.loads((model_dir / "record.json").read_text())
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
