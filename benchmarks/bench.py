"""Speed of the default networks on each backend: prints a table and writes JSON.

Per backend and dataset (default digits and MNIST networks, kernels random but
calibrated as training would calibrate them):

* ``conn_list_s``   building every connection list in NumPy (no simulator),
* ``build_s``       creating populations and projections in the simulator,
* ``features_img_s`` feature extraction: images simulated per second,
* ``stdp_patch_s``  STDP training of conv layer 1 (as training runs it: a fresh
                    patch network per chunk): patches per second,
* ``peak_rss_mb``   peak resident memory of the backend's process.

Each (backend, dataset) runs in its own process so peak memory is its own.
``spinnaker`` is sPyNNaker on a virtual 48-chip board: it builds and maps the
network (``build_s`` includes mapping) but a virtual board does not execute, so
it has no images/s. ``batched`` is the numba engine (NEST's semantics): its
features are counted as feature extraction counts them (``simulate_counts``, blocks
in parallel on all cores: ``features_images`` images in blocks of
``ceil(images / threads)``), ``jit_load_s`` is its first call (numba compiling, or
loading its cache). ``nest-emulated`` and ``brian2-emulated`` run as
``--emulate-spinnaker`` does: inference with the weights SpiNNaker would use, STDP
with 16-bit plastic weights (on brian2 also sPyNNaker's per-spike arithmetic).

    python benchmarks/bench.py [--images 200] [--patches 500] [--out benchmarks/results.json]

Rows of backends/datasets not measured in this call are kept from ``--out``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BACKENDS = ("nest", "brian2", "batched", "nest-emulated", "brian2-emulated", "spinnaker")


def _measure(backend_name: str, dataset: str, n_images: int, n_patches: int) -> dict:
    import numpy as np

    from spinnconv.backends import get_backend
    from spinnconv.config import build_model, resolve_parameters
    from spinnconv.datasets import load_dataset
    from spinnconv.encoding import encode
    from spinnconv.logs import quiet_libraries as _quiet_libraries
    from spinnconv.network import build_network, layer_connections, run_images, schedule_from
    from spinnconv.training import calibrate_weight_na, sample_patches, train_conv_layer

    _quiet_libraries()
    params = resolve_parameters(dataset, {"chunk_images": max(1, n_images)})
    data = load_dataset(dataset, REPO.parent / "shared" / "data" / "mnist"
                        if dataset == "mnist" else None)
    model = build_model(params, data.image_shape)
    rng = np.random.default_rng(0)
    spikes = encode(data.test_images[:n_images], params)
    kernels, layer_input = {}, spikes
    for position in model.conv_layer_positions:
        layer = model.layers[position]
        shape = (layer.n_kernels, *layer.kernel_shape, model.input_shape_of(position)[2])
        kernel = (rng.random(shape) < 0.3).astype(float)
        if position == 0:
            weight = calibrate_weight_na(layer_input.counts(), layer_input.shape, layer, kernel,
                                         params)
        else:  # deeper inputs: calibrate on an approximate count map
            weight = 0.5
        kernels[position] = kernel * weight
    row = {"backend": backend_name, "dataset": dataset, "neurons": 0, "synapses": 0}
    started = time.perf_counter()
    for position in range(len(model.spiking_layers)):
        for _, _, connections in layer_connections(model, position, kernels.get(position),
                                                   params):
            row["synapses"] += len(connections)
    row["conn_list_s"] = time.perf_counter() - started
    row["neurons"] = sum(r["neurons"] for r in model.layer_counts())

    name = backend_name.removesuffix("-emulated")
    emulated = name != backend_name
    if emulated:
        from spinnconv.backends.spinnaker import spinnaker_weight_quantiser

        kernels = spinnaker_weight_quantiser(model, kernels, params)
    if name == "spinnaker":
        import tempfile

        backend = get_backend("spinnaker", virtual_board=5,
                              work_dir=Path(tempfile.mkdtemp(prefix="spinnconv-bench-")))
        started = time.perf_counter()
        backend.setup(params["timestep_ms"], params["seed"])
        populations = build_network(backend, model, kernels, params,
                                    spikes.select(range(1)).to_source_times(
                                        schedule_from(params)), len(model.spiking_layers))
        backend.record(populations[-1])
        backend.run(10.0)
        row["build_s"] = time.perf_counter() - started
        backend.end()
    else:
        backend = get_backend(name)
        started = time.perf_counter()
        backend.setup(params["timestep_ms"], params["seed"])
        build_network(backend, model, kernels, params,
                      spikes.to_source_times(schedule_from(params)), len(model.spiking_layers))
        row["build_s"] = time.perf_counter() - started
        backend.end()
        if name == "batched":
            from spinnconv.backends.batched import engine_threads, simulate_counts

            started = time.perf_counter()
            simulate_counts(model, kernels, params, spikes.select(range(2)))
            row["jit_load_s"] = time.perf_counter() - started
            threads = engine_threads()
            n_features = max(n_images, 1000 * threads)
            many = encode(data.test_images[:n_features], params)
            started = time.perf_counter()
            simulate_counts(model, kernels, params, many,
                            block_images=-(-many.n_images // threads))
            row["features_img_s"] = many.n_images / (time.perf_counter() - started)
            row["features_images"], row["threads"] = many.n_images, threads
        else:
            started = time.perf_counter()
            run_images(backend, model, kernels, params, spikes, quiet=True)
            row["features_img_s"] = n_images / (time.perf_counter() - started)
        layer = model.layers[0]
        patches = sample_patches(spikes, layer, n_patches, rng, int(params["patch_min_spikes"]))
        started = time.perf_counter()
        board = {}
        if emulated:
            from spinnconv.backends.spinnaker import board_training_options

            board = board_training_options()
        train_conv_layer(backend, patches, layer.n_kernels, params, rng, quiet=True, **board)
        row["stdp_patch_s"] = n_patches / (time.perf_counter() - started)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


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
            result = subprocess.run(
                [sys.executable, __file__, "--one", backend, dataset, "--images",
                 str(args.images), "--patches", str(args.patches)],
                capture_output=True, text=True, check=False)
            lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
            if result.returncode != 0 or not lines:
                print(f"{backend}/{dataset} failed: {result.stderr.strip()[-300:]}",
                      file=sys.stderr)
                continue
            row = json.loads(lines[-1])
            row["measured"] = {"date": time.strftime("%Y-%m-%d"),
                               "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:])}
            rows.append(row)
    order = {name: k for k, name in enumerate(BACKENDS)}
    rows.sort(key=lambda row: (row["dataset"] != "digits", order.get(row["backend"], 99)))
    columns = ["backend", "dataset", "neurons", "synapses", "conn_list_s", "build_s",
               "features_img_s", "stdp_patch_s", "peak_rss_mb"]
    for row in rows:
        for key in [k for k in row if k.endswith("_ratio")]:
            del row[key]
    for column in ("features_img_s", "stdp_patch_s"):  # batched against each backend
        for dataset in args.datasets:
            ours = next((r.get(column) for r in rows if r["backend"] == "batched"
                         and r["dataset"] == dataset), None)
            for row in rows:  # only rows measured in this call: one machine state
                if ours and row["dataset"] == dataset and row.get(column) \
                        and (row["backend"], dataset) in measured \
                        and row["backend"] not in ("batched", "spinnaker"):
                    row[f"batched_{column.removesuffix('_s')}_ratio"] = ours / row[column]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "–")
            cells.append(f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
                         if isinstance(value, int) else str(value))
        print("| " + " | ".join(cells) + " |")
    for row in rows:
        ratios = [f"{key.removeprefix('batched_').removesuffix('_ratio')} ×{value:.1f}"
                  for key, value in row.items() if key.endswith("_ratio")]
        if ratios:
            print(f"batched / {row['backend']} ({row['dataset']}): " + ", ".join(ratios))
    import os

    record = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
              "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:]),
              "images": args.images, "patches": args.patches, "rows": rows}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
