"""The model dir through the real CLI: refused commands change nothing (model dir and
data dir hashed before and after), settings come from the manifest, one writer at a
time, a SIGKILL mid-save leaves a dir the next command trusts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, accuracy_of, run_cli
from test_cli_errors import check_refused
from test_config_readout_checkpoint import layer_arrays, svm_arrays

from spinnconv.checkpoint import FAULT_ENV, ModelDir
from spinnconv.config import build_model, resolve_parameters

SMALL = {"train_patches": 200}


def tree_hash(directory: Path) -> str:
    """One SHA-256 over every path and file of ``directory`` (empty if it is absent)."""
    digest = hashlib.sha256()
    if directory.exists():
        for path in sorted(directory.rglob("*")):
            digest.update(str(path.relative_to(directory)).encode())
            if path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def fake_trained(path: Path, dataset: str = "digits", backend: str = "nest") -> ModelDir:
    """A model dir with a committed layer 1 and SVM (arrays of the right shapes)."""
    params = resolve_parameters(dataset)
    model = build_model(params, (8, 8) if dataset == "digits" else (28, 28))
    directory = ModelDir(path)
    manifest = directory.start(model, params, dataset, backend)
    if dataset == "digits":
        manifest = directory.save_layer(manifest, 1, layer_arrays(0.5))
        directory.save_svm(manifest, svm_arrays(model))
    else:
        directory.commit(manifest)
    return directory


BAD_PARAMETERS = [
    ({"neuron": {"cm": 0}}, "'neuron.cm' must be > 0"),
    ({"neuron": {"tau_syn_E": 0}}, "'neuron.tau_syn_E' must be > 0"),
    ({"neuron": {"tau_m": 0}}, "'neuron.tau_m' must be > 0"),
    ({"stdp": {"tau_minus_ms": 0}}, "'stdp.tau_minus_ms' must be > 0"),
    ({"neuron": {"v_rest": -50.0}}, "above 'neuron.v_rest'"),
    ({"synapse_delay_ms": 0.3}, "multiple of timestep_ms"),
    ({"synapse_delay_ms": 145.0}, "1..144 time steps"),
    ({"train_patches": 10**13}, "train_patches"),
    ({"train_patches": 10**9}, "GB of memory"),
    ({"patch_min_spikes": 10**6}, "more spikes than a window can hold"),
    ({"patch_min_spikes": 10**40}, "patch_min_spikes"),
    ({"seed": 2**70}, "0..4294967294"),
    ({"dog_size": 4}, "odd"),
    ({"max_rate_hz": 5000.0}, "one spike per"),
    ({"architecture": [{"kind": "conv", "n_kernels": 4, "kernel_shape": [3, 3],
                        "padding": 10**6}, {"kind": "classifier"}]}, "padding"),
]


@pytest.mark.parametrize("overrides,words", BAD_PARAMETERS)
def test_each_class_of_bad_parameters_is_refused_with_the_fix(overrides, words):
    from spinnconv import datasets
    from spinnconv.errors import UsageError
    from spinnconv.validation import check_run

    data = datasets.load_digits_dataset()
    with pytest.raises(UsageError, match=re.escape(words)):
        params = resolve_parameters("digits", overrides)
        check_run(params, build_model(params, (8, 8)), data.n_train, data.train_labels)


@pytest.mark.parametrize("overrides,words", [BAD_PARAMETERS[i] for i in (0, 5, 8, 9)])
def test_bad_parameters_are_refused_before_anything_is_written(tmp_path, overrides, words):
    params = tmp_path / "bad.json"
    params.write_text(json.dumps(overrides))
    model_dir, data_dir = tmp_path / "model", tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "keep.txt").write_text("x")
    before = tree_hash(data_dir)
    result = run_cli("--mode", "all", "--backend", "nest", "--params", str(params),
                     "--model-dir", str(model_dir), "--data-dir", str(data_dir))
    check_refused(result, 2, words)
    assert not model_dir.exists() and tree_hash(data_dir) == before


@pytest.mark.parametrize("args,words", [
    (["--seed", str(2**70)], "0..4294967294"),
    (["--seed", "-1"], "'seed' must be >= 0"),
    (["--seed", "1e3"], "--seed: must be a whole number"),
    (["--train-examples", "²"], "--train-examples: must be a whole number"),
    (["--jobs", "١"], "--jobs: must be a whole number"),
    (["--test-examples", " 5"], "--test-examples: must be a whole number"),
    (["--train-examples", "1"], "at least two classes"),
])
def test_bad_command_line_values_are_one_line(tmp_path, args, words):
    model_dir = tmp_path / "model"
    result = run_cli("--mode", "all", "--backend", "nest", *args, "--model-dir", str(model_dir))
    check_refused(result, 2, words)
    assert not model_dir.exists()


@pytest.mark.parametrize("layer", ["²", "0", "-1", "１", "1.0"])
def test_layer_must_be_ascii_digits(tmp_path, layer):
    result = run_cli("--mode", "training", "--layer", layer, "--model-dir", str(tmp_path / "m"))
    check_refused(result, 2, "--layer")


def test_refused_commands_leave_an_existing_model_dir_byte_identical(tmp_path):
    directory = fake_trained(tmp_path / "model")
    before = tree_hash(directory.path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"neuron": {"tau_m": 0}}))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"svm_c": 5.0}))
    for args, code, words in [
        (["--mode", "training", "--layer", "1", "--params", str(bad)], 2, ["tau_m"]),
        (["--mode", "training", "--layer", "svm", "--params", str(other)], 2,
         ["other parameters", "'svm_c' is 5.0 here, 0.01 in the model dir"]),
        (["--mode", "testing", "--dataset", "mnist"], 2, ["--dataset mnist", "'digits'"]),
        (["--mode", "training", "--layer", "1", "--backend", "brian2"], 2,
         ["--backend brian2", "--backend nest"]),
        (["--mode", "training", "--layer", "2"], 2, ["--layer 2 does not exist"]),
        (["--mode", "all", "--train-examples", "1"], 2, ["at least two classes"]),
        (["--mode", "testing", "--seed", "7"], 2, ["'seed' is 7 here, 0 in the model dir"]),
    ]:
        check_refused(run_cli(*args, "--model-dir", str(directory.path)), code, *words)
        assert tree_hash(directory.path) == before, args


def test_damaged_model_dirs_are_one_line_with_exit_1(tmp_path):
    directory = fake_trained(tmp_path / "model")
    manifest = json.loads(directory.manifest_path.read_text())
    name = manifest["files"]["layer1"]["name"]
    (directory.path / name).write_bytes(os.urandom(200))
    for mode in ("testing", "info", "plot", "deploy"):
        result = run_cli("--mode", mode, "--model-dir", str(directory.path))
        check_refused(result, 1, "is damaged", name, "SHA-256")
    directory.manifest_path.write_bytes(b"[1, 2]")
    check_refused(run_cli("--mode", "info", "--model-dir", str(directory.path)), 1,
                  "is damaged", "JSON list")


def test_a_manifest_whose_model_contradicts_its_parameters_is_damage(tmp_path):
    directory = fake_trained(tmp_path / "model")
    manifest = json.loads(directory.manifest_path.read_text())
    manifest["model"]["layers"][0]["n_kernels"] = 7
    directory.manifest_path.write_text(json.dumps(manifest))
    check_refused(run_cli("--mode", "testing", "--model-dir", str(directory.path)), 1,
                  "is damaged", "architecture its parameters describe")


@pytest.mark.parametrize("mode,args", [
    ("testing", ["--model-dir", "{dir}"]),
    ("training", ["--layer", "1", "--model-dir", "{fresh}"]),
])
def test_unreachable_board_is_one_line_and_leaves_no_spinnaker_files(tmp_path, mode, args):
    pytest.importorskip("spynnaker")
    directory = fake_trained(tmp_path / "model")
    before = tree_hash(directory.path)
    args = [a.format(dir=directory.path, fresh=tmp_path / "fresh") for a in args]
    result = run_cli("--mode", mode, "--backend", "spinnaker", "--spinnaker-host", "192.0.2.1",
                     *args)
    check_refused(result, 1, "not reachable")
    assert "end before setup" not in result.stderr and "WARNING" not in result.stderr
    assert tree_hash(directory.path) == before and not (tmp_path / "fresh").exists()


def test_a_model_dir_remembers_dataset_and_backend(tmp_path):
    directory = fake_trained(tmp_path / "mnist-model", dataset="mnist", backend="nest")
    result = run_cli("--mode", "info", "--model-dir", str(directory.path))
    assert result.returncode == 0, result.stderr
    assert "dataset mnist, backend nest" in result.stdout and "28×28" in result.stdout
    (directory.path / ".lock").unlink()
    before = tree_hash(directory.path)
    check_refused(run_cli("--mode", "deploy", "--model-dir", str(directory.path)), 2,
                  "conv layer 1 trained first")  # not "trained on 'mnist', not 'digits'"
    assert tree_hash(directory.path) == before  # refused under the lock: no lock file left


def test_testing_takes_the_backend_from_the_manifest(tmp_path):
    pytest.importorskip("pyNN.nest")
    directory = fake_trained(tmp_path / "model", backend="nest")
    result = run_cli("--mode", "testing", "--test-examples", "20", "--no-plots",
                     "--model-dir", str(directory.path))
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((directory.path / "results.json").read_text())
    assert results["backend"] == "nest" and results["n_test"] == 20
    assert results["model_files"] == {r: e["sha256"] for r, e in
                                      directory.manifest()["files"].items()}


def test_a_refused_first_command_leaves_no_manifest_behind(tmp_path):
    """A refused ``dog_size`` on a fresh dir, then the corrected command trains."""
    pytest.importorskip("pyNN.nest")
    model_dir = tmp_path / "model"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**SMALL, "dog_size": 4}))
    check_refused(run_cli("--mode", "training", "--layer", "1", "--backend", "nest",
                          "--params", str(bad), "--model-dir", str(model_dir)), 2, "dog_size")
    assert not model_dir.exists()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(SMALL))
    result = run_cli("--mode", "training", "--layer", "1", "--backend", "nest", "--no-plots",
                     "--params", str(good), "--train-examples", "200",
                     "--model-dir", str(model_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert ModelDir(model_dir).manifest()["trained"] == {"layers": [1], "svm": False}


def _start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "main.py"), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_second_cli_writer_is_refused_with_the_holders_pid(tmp_path):
    pytest.importorskip("pyNN.nest")
    model_dir = tmp_path / "model"
    params = tmp_path / "small.json"
    params.write_text(json.dumps(SMALL))
    common = ["--backend", "nest", "--params", str(params), "--train-examples", "300",
              "--no-plots", "--model-dir", str(model_dir)]
    assert run_cli("--mode", "all", "--test-examples", "50", *common).returncode == 0
    # the second writer is main() in a process that has already imported everything, so
    # that it runs while the first holds the lock
    waiting = subprocess.Popen(
        [sys.executable, "-c", ("import sys; sys.path.insert(0, sys.argv[1]); "
         "import spinnconv.cli, spinnconv.pipeline; print('ready', flush=True); "
         "sys.stdin.readline(); sys.exit(spinnconv.cli.main(sys.argv[2:]))"), str(REPO),
         "--mode", "training", "--layer", "svm", *common],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    assert waiting.stdout.readline().strip() == "ready"
    first = _start("--mode", "training", "--layer", "1", *common)
    lock = model_dir / ".lock"
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None and \
            f'"pid": {first.pid}' not in lock.read_text():
        time.sleep(0.01)
    assert first.poll() is None, "the first writer ended before it could be tested"
    out, err = waiting.communicate("go\n", timeout=600)
    second = subprocess.CompletedProcess(waiting.args, waiting.returncode, out, err)
    _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err[-2000:]
    check_refused(second, 1, f"in use by pid {first.pid}", "--mode training --layer 1")
    manifest = ModelDir(model_dir).manifest()
    assert manifest["trained"] == {"layers": [1], "svm": False}  # svm dropped, not mixed
    check_refused(run_cli("--mode", "testing", "--model-dir", str(model_dir)), 2,
                  "SVM is not trained")


@pytest.mark.slow
def test_sigkill_after_the_new_layer_file_keeps_the_old_model_whole(tmp_path):
    """The issue's case: killed after the new layer file is in place, before the
    manifest names it. The dir still holds the old, consistent model."""
    pytest.importorskip("pyNN.nest")
    model_dir = tmp_path / "model"
    params = tmp_path / "small.json"
    params.write_text(json.dumps(SMALL))
    common = ["--backend", "nest", "--params", str(params), "--train-examples", "300",
              "--no-plots", "--model-dir", str(model_dir)]
    assert run_cli("--mode", "all", "--test-examples", "100", *common).returncode == 0
    before = ModelDir(model_dir).manifest()
    accuracy = json.loads((model_dir / "results.json").read_text())["accuracy"]
    # fewer training images: other kernels, so another file name
    killed = _start("--mode", "training", "--layer", "1", *common, "--train-examples", "150",
                    env={FAULT_ENV: "array-renamed"})
    killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL
    assert ModelDir(model_dir).manifest() == before
    assert len(list(model_dir.glob("layer1-*.npz"))) == 2  # the new one, named by nothing
    result = run_cli("--mode", "testing", "--test-examples", "100", "--model-dir", str(model_dir))
    assert accuracy_of(result) == accuracy
    assert sorted(p.name for p in model_dir.glob("*.npz")) == sorted(
        e["name"] for e in before["files"].values())
