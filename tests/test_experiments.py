"""experiments/mnist_full.py and experiments/deep_layers.py end to end on a few MNIST
images on the batched engine: their JSON records, tables and model dirs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from spinnconv import STDPConvNet
from spinnconv.datasets import load_dataset

SMALL = {"train_patches": 200}
TWO_STAGES = {**SMALL, "architecture": [
    {"kind": "conv", "n_kernels": 8, "kernel_shape": [5, 5]},
    {"kind": "pool", "pool_shape": [2, 2]},
    {"kind": "conv", "n_kernels": 8, "kernel_shape": [3, 3]},
    {"kind": "pool", "pool_shape": [2, 2]},
    {"kind": "classifier"}]}


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "experiments" / name), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def write_params(tmp_path, params: dict):
    path = tmp_path / "params.json"
    path.write_text(json.dumps(params))
    return path


def test_mnist_full_fits_scores_and_saves_every_seed(tmp_path, mnist_dir):
    out = tmp_path / "full"
    result = run_script("mnist_full.py", "--source", str(mnist_dir), "--backend", "batched",
                        "--jobs", "1", "--seeds", "0", "3", "--out", str(out),
                        "--train-examples", "100", "--test-examples", "40",
                        "--params", str(write_params(tmp_path, SMALL)), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 3]
    assert (summary["n_train"], summary["n_test"], summary["backend"]) == (100, 40, "batched")
    records = [json.loads((out / f"seed{s}" / "record.json").read_text()) for s in (0, 3)]
    accuracies = [r["accuracy"] for r in records]
    assert all(0 <= a <= 1 for a in accuracies) and max(accuracies) > 0.3  # 10 classes
    assert summary["accuracy"]["values"] == accuracies
    assert summary["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert summary["accuracy"]["sd"] == pytest.approx(np.std(accuracies, ddof=1))
    for record in records:
        assert [p["phase"] for p in record["phases"]] == [
            "layer 1 STDP", "features (train)", "svm fit", "features (test) and prediction"]
        assert record["peak_memory_bound_mb"] >= max(p["peak_memory_mb"]
                                                     for p in record["phases"]) > 0
        assert record["parameters"]["train_patches"] == 200
    assert records[0]["parameters"]["seed"] == 0 and records[1]["parameters"]["seed"] == 3
    assert "| mean ± sd |" in result.stdout and "| 3 |" in result.stdout
    # each seed's model dir is a working model: loaded, it scores what the record says
    data = load_dataset("mnist", mnist_dir, 100, 40)
    net = STDPConvNet.load(out / "seed3", quiet=True)
    assert net.score(data.test_images, data.test_labels) == pytest.approx(accuracies[1])


def test_mnist_full_bad_params_file_is_one_line_and_writes_nothing(tmp_path, mnist_dir):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = tmp_path / "full"
    result = run_script("mnist_full.py", "--source", str(mnist_dir), "--backend", "batched",
                        "--seeds", "0", "--out", str(out), "--params", str(bad))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "bad.json" in result.stderr
    assert not out.exists()


def test_deep_layers_scores_every_readout_of_two_stages(tmp_path, mnist_dir):
    out = tmp_path / "deep"
    result = run_script("deep_layers.py", "--source", str(mnist_dir), "--out", str(out),
                        "--name", "two", "--params", str(write_params(tmp_path, TWO_STAGES)),
                        "--train", "60", "--validation", "30", "--test", "20",
                        "--backend", "batched", "--svm-c", "0.01", "0.03")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "two.json").read_text())
    assert {"command", "n_train", "n_validation", "n_test", "backend", "overrides", "model",
            "layers", "readouts", "seconds", "date"} <= set(record)
    assert (record["n_train"], record["n_validation"], record["n_test"]) == (60, 30, 20)
    assert record["overrides"] == TWO_STAGES
    assert len(record["layers"]) == 2
    for layer in record["layers"]:
        assert layer["n_kernels"] == 8 and layer["weight_na"] > 0
        assert 0 <= layer["firing_fraction"] <= 1 and layer["stage_spikes_per_image"] > 0
    assert list(record["readouts"]) == ["stage 1 (12x12x8)", "stage 2 (5x5x8)", "all stages",
                                        "last stage per neuron"]
    readouts = record["readouts"]
    assert readouts["last stage per neuron"]["features"] == 5 * 5 * 8
    assert readouts["all stages"]["features"] == (readouts["stage 1 (12x12x8)"]["features"]
                                                  + readouts["stage 2 (5x5x8)"]["features"])
    for readout in readouts.values():
        for split in ("validation_accuracy", "test_accuracy"):
            assert list(readout[split]) == ["0.01", "0.03"]
            assert all(0 <= a <= 1 for a in readout[split].values())
    assert max(r["validation_accuracy"]["0.01"] for r in readouts.values()) > 0.3
    assert "last stage per neuron: 200 features" in result.stdout


def test_readout_selection_scores_every_candidate_on_the_validation_split(tmp_path, mnist_dir):
    out = tmp_path / "selection.json"
    windows = [[[6, 2]], [[6, 2], [4, 2]]]
    result = run_script("readout_selection.py", "--source", str(mnist_dir), "--backend",
                        "batched", "--train", "120", "--validation", "60", "--jobs", "1",
                        "--svm-c", "0.01", "0.03", "--windows", json.dumps(windows),
                        "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    assert (record["n_fit"], record["n_validation"]) == (120, 60)
    assert [(row["windows"], row["svm_c"]) for row in record["rows"]] == [
        (w, c) for w in windows for c in (0.01, 0.03)]
    assert [row["features"] for row in record["rows"]] == [16 * 30] * 2 + [41 * 30] * 2
    assert record["best"] == max(record["rows"], key=lambda row: row["validation_accuracy"])
    assert all(0 <= row["validation_accuracy"] <= 1 for row in record["rows"])
    assert "**best**" in result.stdout
