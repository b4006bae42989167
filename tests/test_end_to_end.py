"""The whole pipeline through the real CLI on real simulators (minutes: marked slow)."""

import json

import pytest
from conftest import accuracy_of, run_cli

from spinnconv.checkpoint import ModelDir

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["nest", "brian2"])
def test_all_on_digits_reaches_090(backend, tmp_path):
    pytest.importorskip("pyNN." + backend)
    model_dir = tmp_path / "model"
    result = run_cli("--mode", "all", "--dataset", "digits", "--backend", backend,
                     "--model-dir", str(model_dir), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = accuracy_of(result)
    assert accuracy >= 0.90
    results = json.loads((model_dir / "results.json").read_text())
    assert results["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert results["backend"] == backend and results["dataset"] == "digits"
    assert results["n_test"] == 360 and results["n_train"] == 1437
    matrix = results["confusion_matrix"]
    assert sum(map(sum, matrix)) == 360
    assert sum(matrix[i][i] for i in range(10)) / 360 == pytest.approx(accuracy, abs=1e-4)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["trained"] == {"layers": [1], "svm": True}
    assert sorted(p.name for p in model_dir.glob("*.npz")) == sorted(
        entry["name"] for entry in manifest["files"].values())
    assert [name.split("-")[0] for name in sorted(manifest["files"])] == ["layer1", "svm"]
    # the run record: one entry per phase, in order, with the rates the log printed
    record = json.loads((model_dir / "record.json").read_text())
    assert record["accuracy"] == results["accuracy"] and record["backend"] == backend
    phases = {p["phase"]: p for p in record["phases"]}
    assert list(phases) == ["layer 1 STDP", "features (train)", "svm fit",
                            "features (test) and prediction"]
    assert phases["features (train)"]["items"] == 1437
    assert phases["layer 1 STDP"]["items"] == 2000
    for phase in phases.values():
        assert phase["seconds"] > 0 and phase["peak_memory_mb"] > 50
        assert phase["per_second"] == pytest.approx(phase["items"] / phase["seconds"], rel=0.01)
        assert f"phase {phase['phase']}: " in result.stdout
    assert sum(p["seconds"] for p in phases.values()) <= record["total_seconds"]
    assert record["peak_memory_bound_mb"] >= record["peak_memory_mb"]
    assert record["peak_memory_bound_mb"] == max(
        [record["peak_memory_mb"], *(p["memory_bound_mb"] for p in phases.values())])


def test_same_seed_same_kernels_and_accuracy(tmp_path):
    pytest.importorskip("pyNN.nest")
    runs = []
    for name in ("a", "b"):
        model_dir = tmp_path / name
        result = run_cli("--mode", "all", "--dataset", "digits", "--backend", "nest",
                         "--seed", "3", "--model-dir", str(model_dir),
                         "--train-examples", "500", "--test-examples", "120")
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append((accuracy_of(result), ModelDir(model_dir).layer_path(1).read_bytes()))
    import io

    import numpy as np

    kernels = [np.load(io.BytesIO(blob))["kernels"] for _, blob in runs]
    np.testing.assert_array_equal(kernels[0], kernels[1])
    assert runs[0][0] == runs[1][0]


def test_mnist_subset_reaches_090(tmp_path, mnist_dir):
    # the engine equals NEST spike for spike (test_batched_engine.py); NEST runs the
    # whole pipeline in test_all_on_digits_reaches_090
    result = run_cli("--mode", "all", "--dataset", "mnist", "--source", str(mnist_dir),
                     "--data-dir", str(tmp_path / "data"), "--train-examples", "1000",
                     "--test-examples", "500", "--backend", "batched",
                     "--model-dir", str(tmp_path / "model"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert accuracy_of(result) >= 0.90


def test_jobs_split_images_over_processes(tmp_path):
    pytest.importorskip("pyNN.nest")
    import numpy as np

    from spinnconv.cli import build_parser, make_run
    from spinnconv.encoding import encode
    from spinnconv.pipeline import count_spikes, simulate

    args = build_parser().parse_args(["--mode", "testing", "--backend", "nest", "--quiet",
                                      "--model-dir", str(tmp_path / "m")])
    run = make_run(args)
    data = run.load()
    model = run.model(data.image_shape)
    rng = np.random.default_rng(0)
    kernels = {0: rng.random((16, 3, 3, 2)) * 1.5}
    images = data.test_images[:60]
    spikes = encode(images, run.params)
    single = simulate(run, model, kernels, spikes, None, "one").counts()
    # feature extraction: blocks of 25 images (25, 25, 10), each a fresh network
    run.params = {**run.params, "block_images": 25}
    blocks_one_process = count_spikes(run, model, kernels, images, "blocks")
    run.jobs = 2
    split = simulate(run, model, kernels, spikes, None, "two").counts()
    blocks_two_processes = count_spikes(run, model, kernels, images, "blocks")
    assert run.worker_peak_mb > 50  # each worker reports its peak memory
    from joblib.externals.loky import reusable_executor

    assert not reusable_executor._executor._processes  # idle workers were shut down
    assert split.shape == single.shape == blocks_two_processes.shape == (60, 4 * 4 * 16)
    assert single.sum() > 0
    # the first shard is the same simulation; the second starts without the
    # residual activity of image 29, which nudges a few spikes afterwards
    np.testing.assert_array_equal(split[:30], single[:30])
    assert abs(split[30:].sum() - single[30:].sum()) <= 0.02 * single[30:].sum()
    assert np.mean(split[30:] == single[30:]) > 0.95
    # blocks: identical whatever the number of processes, and the first block is
    # the same simulation as one network for all images
    assert blocks_one_process.dtype == np.uint16
    np.testing.assert_array_equal(blocks_one_process, blocks_two_processes)
    np.testing.assert_array_equal(blocks_one_process[:25], single[:25])
    assert np.mean(blocks_one_process == single) > 0.95


def test_two_conv_layers_train_layer_by_layer(tmp_path):
    """Layer 2 learns on the spikes that layer 1 (with its saved kernels) produces."""
    pytest.importorskip("pyNN.nest")

    params = tmp_path / "two.json"
    params.write_text(json.dumps({"train_patches": 600, "architecture": [
        {"kind": "conv", "n_kernels": 8, "kernel_shape": [3, 3], "padding": 1},
        {"kind": "conv", "n_kernels": 12, "kernel_shape": [3, 3]},
        {"kind": "pool", "pool_shape": [2, 2]},
        {"kind": "classifier"}]}))
    model_dir = tmp_path / "model"
    common = ["--backend", "nest", "--params", str(params), "--model-dir", str(model_dir),
              "--no-plots"]
    for layer in ("1", "2", "svm"):
        result = run_cli("--mode", "training", "--layer", layer, *common)
        assert result.returncode == 0, result.stderr[-3000:]
    layer2 = ModelDir(model_dir).load_layer(2)
    assert layer2["kernels"].shape == (12, 3, 3, 8)  # one weight per layer-1 map
    assert layer2["wins"].sum() > 0
    result = run_cli("--mode", "testing", *common)
    assert accuracy_of(result) >= 0.6
    info = run_cli("--mode", "info", *common)
    assert "trained conv layers [1, 2] of 2, svm yes" in info.stdout


def test_random_kernel_ablation_skips_stdp(tmp_path):
    pytest.importorskip("pyNN.nest")

    params = tmp_path / "random.json"
    params.write_text(json.dumps({"random_kernels": True}))
    model_dir = tmp_path / "model"
    result = run_cli("--mode", "all", "--backend", "nest", "--params", str(params),
                     "--model-dir", str(model_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    layer = ModelDir(model_dir).load_layer(1)
    assert layer["convergence"].size == 0 and layer["wins"].sum() == 0
    assert 0.0 < accuracy_of(result) <= 1.0
    assert (model_dir / "figures" / "kernels_layer1.png").is_file()
