"""Speed of the default networks on each backend: prints a table and writes JSON.

Per backend and dataset (default digits and MNIST networks), driven through the
public API (:class:`spinnconv.STDPConvNet`), its conv layers trained by STDP on
``--patches`` patches:

* ``stdp_patch_s``  ``fit_layer(1, images)`` (encoding, patch sampling, STDP as
                    training runs it: a fresh patch network per chunk, weight
                    calibration): patches per second,
* ``conn_list_s``   ``connection_lists()``: every connection list in NumPy,
* ``build_s``       ``to_pynn(sim)`` after ``sim.setup``: populations and projections
                    in the simulator,
* ``features_img_s`` ``transform(images)``: feature extraction, images per second,
* ``peak_rss_mb``   peak resident memory of the backend's process.

Each (backend, dataset) runs in its own process so peak memory is its own.
``spinnaker`` maps the network trained on ``batched`` onto a virtual 48-chip board
with ``spinnconv --mode deploy --virtual-board 5`` (``build_s``: building and
mapping); a virtual board does not execute, so it has no images/s. ``batched`` is
the numba engine (NEST's semantics, no PyNN network to build): its features are
extracted in blocks of ``ceil(features_images / threads)`` images, in parallel on
all cores, ``jit_load_s`` is its first ``transform`` (numba compiling, or loading
its cache). ``nest-emulated`` and ``brian2-emulated`` are
``STDPConvNet(emulate_spinnaker=True)``: inference with the weights SpiNNaker would
use, STDP with 16-bit plastic weights (on brian2 also sPyNNaker's per-spike
arithmetic).

    python benchmarks/bench.py [--images 200] [--patches 500] [--out benchmarks/results.json]

Rows of backends/datasets not measured in this call are kept from ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BACKENDS = ("nest", "brian2", "batched", "nest-emulated", "brian2-emulated", "spinnaker")
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"


def _timed(call, *args, **kwargs) -> tuple[object, float]:
    started = time.perf_counter()
    result = call(*args, **kwargs)
    return result, time.perf_counter() - started


def _fitted_net(backend: str, emulated: bool, images, n_patches: int, params: dict,
                row: dict):
    """A network with every conv layer fitted on ``images``; ``row`` gets the STDP rate
    of layer 1 and the network's size."""
    from spinnconv import STDPConvNet

    net = STDPConvNet(backend=backend, emulate_spinnaker=emulated, quiet=True,
                      params={"train_patches": n_patches, "diagnostics_images": 0, **params})
    _, seconds = _timed(net.fit_layer, 1, images)
    row["stdp_patch_s"] = net.layer_diagnostics_[1]["n_patches"] / seconds
    for number in range(2, net.model_.n_conv_layers + 1):
        net.fit_layer(number, images)
    row["neurons"] = sum(r["neurons"] for r in net.model_.layer_counts())
    lists, row["conn_list_s"] = _timed(net.connection_lists)
    row["synapses"] = sum(len(rows) for kinds in lists.values() for rows in kinds.values())
    return net


def _measure_pynn(net, name: str, images, row: dict) -> None:
    import importlib

    sim = importlib.import_module(f"pyNN.{name}")
    started = time.perf_counter()
    sim.setup(timestep=net.params_["timestep_ms"])
    net.to_pynn(sim, images=images)
    row["build_s"] = time.perf_counter() - started
    sim.end()
    _, seconds = _timed(net.transform, images)
    row["features_img_s"] = len(images) / seconds


def _measure_batched(net, test_images, n_images: int, row: dict) -> None:
    from spinnconv.backends.batched import engine_threads

    _, row["jit_load_s"] = _timed(net.transform, test_images[:2])
    many = test_images[:_batched_feature_images(n_images)]
    _, seconds = _timed(net.transform, many)
    row["features_img_s"] = len(many) / seconds
    row["features_images"], row["threads"] = len(many), engine_threads()


def _batched_feature_images(n_images: int) -> int:
    from spinnconv.backends.batched import engine_threads

    return max(n_images, 1000 * engine_threads())


def _measure_spinnaker(net, row: dict) -> None:
    from spinnconv.cli import main as spinnconv_main

    model_dir = Path(tempfile.mkdtemp(prefix="spinnconv-bench-")) / "model"
    net.save(model_dir)
    status, row["build_s"] = _timed(spinnconv_main, ["--mode", "deploy", "--virtual-board",
                                                     "5", "--quiet", "--model-dir",
                                                     str(model_dir)])
    if status != 0:
        raise SystemExit(f"--mode deploy failed with exit code {status}")


def _measure(backend_name: str, dataset: str, n_images: int, n_patches: int) -> dict:
    from spinnconv.datasets import load_dataset

    data = load_dataset(dataset, MNIST_DIR if dataset == "mnist" else None)
    name = backend_name.removesuffix("-emulated")
    row = {"backend": backend_name, "dataset": dataset, "neurons": 0, "synapses": 0}
    train_images = data.train_images[:max(n_patches, 1)]
    test_images = data.test_images[:n_images]
    params = {"chunk_images": max(1, n_images)}
    if name == "batched":  # one block of feature images per engine thread
        from spinnconv.backends.batched import engine_threads

        many = min(_batched_feature_images(n_images), len(data.test_images))
        params["block_images"] = -(-many // engine_threads())
    net = _fitted_net("batched" if name == "spinnaker" else name, name != backend_name,
                      train_images, n_patches, params, row)
    if name == "spinnaker":
        del row["stdp_patch_s"]  # trained on batched: not the board's rate
        _measure_spinnaker(net, row)
    elif name == "batched":
        _measure_batched(net, data.test_images, n_images, row)
    else:
        _measure_pynn(net, name, test_images, row)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


COLUMNS = ["backend", "dataset", "neurons", "synapses", "conn_list_s", "build_s",
           "features_img_s", "stdp_patch_s", "peak_rss_mb"]


def _run_worker(backend: str, dataset: str, args: argparse.Namespace) -> dict | None:
    """One (backend, dataset) measured in its own process; None if it failed."""
    result = subprocess.run(
        [sys.executable, __file__, "--one", backend, dataset, "--images", str(args.images),
         "--patches", str(args.patches)], capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        print(f"{backend}/{dataset} failed: {result.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    row = json.loads(lines[-1])
    row["measured"] = {"date": time.strftime("%Y-%m-%d"),
                       "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:])}
    return row


def _add_ratios(rows: list[dict], measured: set, datasets: list[str]) -> None:
    """``batched_<column>_ratio``: batched's rate over each backend's, for the rows
    measured in this call only (one machine state)."""
    for row in rows:
        for key in [k for k in row if k.endswith("_ratio")]:
            del row[key]
    for column in ("features_img_s", "stdp_patch_s"):
        for dataset in datasets:
            ours = next((r.get(column) for r in rows if r["backend"] == "batched"
                         and r["dataset"] == dataset), None)
            for row in rows:
                if ours and row["dataset"] == dataset and row.get(column) \
                        and (row["backend"], dataset) in measured \
                        and row["backend"] not in ("batched", "spinnaker"):
                    row[f"batched_{column.removesuffix('_s')}_ratio"] = ours / row[column]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _print_table(rows: list[dict]) -> None:
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(_cell(row.get(column, "–")) for column in COLUMNS) + " |")
    for row in rows:
        ratios = [f"{key.removeprefix('batched_').removesuffix('_ratio')} ×{value:.1f}"
                  for key, value in row.items() if key.endswith("_ratio")]
        if ratios:
            print(f"batched / {row['backend']} ({row['dataset']}): " + ", ".join(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--patches", type=int, default=500)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist"])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results.json"))
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # worker: backend dataset
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure(args.one[0], args.one[1], args.images, args.patches)))
        return
    measured = {(backend, dataset) for backend in args.backends for dataset in args.datasets}
    rows = []
    if Path(args.out).exists():  # keep what this call does not measure
        rows = [row for row in json.loads(Path(args.out).read_text())["rows"]
                if (row["backend"], row["dataset"]) not in measured]
    for dataset in args.datasets:
        for backend in args.backends:
            row = _run_worker(backend, dataset, args)
            if row is not None:
                rows.append(row)
    order = {name: k for k, name in enumerate(BACKENDS)}
    rows.sort(key=lambda row: (row["dataset"] != "digits", order.get(row["backend"], 99)))
    _add_ratios(rows, measured, args.datasets)
    _print_table(rows)
    record = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
              "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:]),
              "images": args.images, "patches": args.patches, "rows": rows}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
