"""Accuracy with and without ``--emulate-spinnaker``, paired by seed.

    python experiments/emulation_gap.py --dataset digits --seeds 0 1 2 3 4
    python experiments/emulation_gap.py --dataset mnist --source ../shared/data/mnist \\
        --train-examples 5000 --test-examples 2000 --seeds 0 1 2 3 4 --jobs 2

For every seed, :mod:`mnist_full` runs the pipeline (``main.py --mode all``, in
this process) twice (float, then emulated: 16-bit weights, per-chunk rebuilt
patch networks, sPyNNaker's STDP semantics) into ``<out>/float/seed<S>`` and
``<out>/emulated/seed<S>``. The script prints the per-seed accuracies and their
difference (emulated − float, in points) and writes ``<out>/gap.json``. The
backend defaults to brian2, the one that emulates sPyNNaker's plasticity
arithmetic in full (nest truncates plastic weights only between chunks). Other
options of ``main.py`` apply unchanged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mnist_full

REPO = Path(__file__).resolve().parents[1]


def gap(float_summary: dict, emulated_summary: dict) -> dict:
    """Per-seed accuracies and differences (points), with mean ± sd of each."""
    floats = float_summary["accuracy"]["values"]
    emulated = emulated_summary["accuracy"]["values"]
    differences = [100.0 * (e - f) for f, e in zip(floats, emulated, strict=True)]
    stats = mnist_full.stats
    return {"seeds": float_summary["seeds"], "float": stats(floats),
            "emulated": stats(emulated), "difference_points": stats(differences),
            "mean_absolute_difference_points": statistics.fmean(abs(d) for d in differences),
            "n_train": float_summary["n_train"], "n_test": float_summary["n_test"],
            "backend": float_summary["backend"]}


def table(result: dict) -> str:
    lines = ["| seed | float | emulated | difference (points) |", "|---|---|---|---|"]
    for seed, f, e, d in zip(result["seeds"], result["float"]["values"],
                             result["emulated"]["values"],
                             result["difference_points"]["values"], strict=True):
        lines.append(f"| {seed} | {f:.4f} | {e:.4f} | {d:+.2f} |")
    f, e, d = result["float"], result["emulated"], result["difference_points"]
    lines.append(f"| mean ± sd | {f['mean']:.4f} ± {f['sd']:.4f} | "
                 f"{e['mean']:.4f} ± {e['sd']:.4f} | {d['mean']:+.2f} ± {d['sd']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "models" / "emulation_gap")
    parser.add_argument("--backend", default="brian2")
    parser.add_argument("--jobs", type=int, default=1)
    args, passthrough = parser.parse_known_args(argv)
    if "--emulate-spinnaker" in passthrough:
        parser.error("--emulate-spinnaker is added by this script")
    common = ["--backend", args.backend, "--jobs", str(args.jobs), *passthrough]
    summaries = {}
    for kind, extra in (("float", []), ("emulated", ["--emulate-spinnaker"])):
        out = args.out / kind
        if mnist_full.main([*common, "--out", str(out), *extra]) != 0:
            return 1
        summaries[kind] = json.loads((out / "summary.json").read_text())
    result = gap(summaries["float"], summaries["emulated"])
    (args.out / "gap.json").write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"gap in {args.out / 'gap.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
