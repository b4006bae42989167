"""Bad input through the real CLI: one clear line, the right exit code, nothing changed."""

import json

import pytest
from conftest import last_line, run_cli, snapshot

TWO_CONV = {"architecture": [
    {"kind": "conv", "n_kernels": 4, "kernel_shape": [3, 3], "padding": 1},
    {"kind": "conv", "n_kernels": 4, "kernel_shape": [3, 3]},
    {"kind": "classifier"}]}


def check_refused(result, code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout[-500:], result.stderr)
    message = last_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("args,code,words", [
    (["--mode", "all", "--dataset", "cifar"], 2, ["invalid choice", "cifar"]),
    (["--mode", "all", "--backend", "neuron"], 2, ["invalid choice", "neuron"]),
    (["--mode", "dance"], 2, ["invalid choice"]),
    (["--mode", "training"], 2, ["--layer"]),
    (["--mode", "training", "--layer", "x"], 2, ["--layer", "'x'"]),
    (["--mode", "testing", "--layer", "1"], 2, ["--layer only goes with --mode training"]),
    (["--mode", "training", "--layer", "3"], 2, ["--layer 3 does not exist"]),
    (["--mode", "all", "--train-examples", "0"], 2, ["--train-examples must be > 0"]),
    (["--mode", "all", "--test-examples", "100000"], 2, ["test", "360"]),
    (["--mode", "testing"], 2, ["no model in", "--mode all"]),
    (["--mode", "training", "--layer", "svm"], 2, ["conv layer 1 trained first"]),
])
def test_usage_errors(args, code, words, tmp_path):
    model_dir = tmp_path / "model"
    result = run_cli(*args, "--model-dir", str(model_dir))
    check_refused(result, code, *words)
    assert not model_dir.exists()


def test_params_file_errors(tmp_path):
    model_dir = tmp_path / "model"
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"tau_mem": 3}))
    check_refused(run_cli("--mode", "all", "--params", str(unknown), "--model-dir",
                          str(model_dir)), 2, "unknown parameter 'tau_mem'")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    check_refused(run_cli("--mode", "all", "--params", str(broken), "--model-dir",
                          str(model_dir)), 2, "not valid JSON")
    for bad, word in (({"rest_ms": -3}, ">= 0"), ({"presentation_ms": float("nan")}, "finite"),
                      ({"architecture": [{"kind": "pool", "pool_shape": [0, 2]},
                                         {"kind": "classifier"}]}, "pool_shape")):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        check_refused(run_cli("--mode", "all", "--params", str(path), "--model-dir",
                              str(model_dir)), 2, word)
    check_refused(run_cli("--mode", "all", "--params", str(tmp_path / "missing.json"),
                          "--model-dir", str(model_dir)), 2, "cannot read --params file")
    assert not model_dir.exists()


def test_multiplicative_stdp_on_brian2_is_refused(tmp_path):
    """pyNN.brian2's STDPMechanism runs the additive rule whatever the weight
    dependence: training with another rule on brian2 is refused, not run wrongly."""
    params = tmp_path / "soft.json"
    params.write_text(json.dumps({"stdp": {"weight_dependence": "multiplicative"}}))
    model_dir = tmp_path / "model"
    result = run_cli("--mode", "all", "--backend", "brian2", "--params", str(params),
                     "--model-dir", str(model_dir))
    check_refused(result, 2, "additive STDP only", "'multiplicative'", "--backend nest")
    assert not model_dir.exists()


def test_layer_before_previous_is_refused_and_nothing_written(tmp_path):
    params = tmp_path / "two.json"
    params.write_text(json.dumps(TWO_CONV))
    model_dir = tmp_path / "model"
    result = run_cli("--mode", "training", "--layer", "2", "--params", str(params),
                     "--model-dir", str(model_dir))
    check_refused(result, 2, "conv layer 1 trained first", "--layer 1")
    assert not model_dir.exists()


def test_missing_mnist_source_is_a_runtime_error(tmp_path):
    data_dir = tmp_path / "data"
    result = run_cli("--mode", "loaddata", "--dataset", "mnist", "--source",
                     str(tmp_path / "nowhere"), "--data-dir", str(data_dir))
    check_refused(result, 1, "nowhere")


def test_unwritable_model_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("--mode", "training", "--layer", "1", "--backend", "nest",
                     "--model-dir", str(blocker / "model"))
    check_refused(result, 1, "cannot create model dir")
    assert blocker.read_text() == "not a directory"


def test_existing_model_with_other_architecture_is_not_touched(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    manifest = {"format_version": 1, "model": {"input_shape": [8, 8, 2], "layers": [
        {"kind": "conv", "n_kernels": 3, "kernel_shape": [3, 3], "stride": 1, "padding": 0,
         "lateral_inhibition": True}, {"kind": "classifier", "grid": None}]},
        "parameters": {}, "seed": 0, "dataset": "digits", "backend": "nest",
        "trained": {"layers": [], "svm": False}}
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(model_dir)
    result = run_cli("--mode", "training", "--layer", "1", "--model-dir", str(model_dir))
    check_refused(result, 2, "different architecture")
    manifest["format_version"] = 99
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(model_dir)
    result = run_cli("--mode", "testing", "--model-dir", str(model_dir))
    check_refused(result, 2, "newer spinnconv")
    assert snapshot(model_dir) == before


def test_info_on_a_fresh_dir_prints_the_summary(tmp_path):
    result = run_cli("--mode", "info", "--model-dir", str(tmp_path / "model"))
    assert result.returncode == 0
    assert "Conv 16×3×3" in result.stdout and "nothing trained yet" in result.stdout
    assert not (tmp_path / "model").exists()


def test_corrupt_mnist_file_is_refused_and_nothing_replaced(tmp_path, mnist_dir):
    import shutil

    source = tmp_path / "source"
    shutil.copytree(mnist_dir, source)
    truncated = source / "t10k-labels-idx1-ubyte.gz"
    truncated.write_bytes(truncated.read_bytes()[:1000])
    data_dir = tmp_path / "data"
    good = data_dir / "mnist"
    shutil.copytree(mnist_dir, good)
    before = snapshot(good)
    result = run_cli("--mode", "loaddata", "--dataset", "mnist", "--source", str(source),
                     "--data-dir", str(data_dir))
    check_refused(result, 1, "t10k-labels-idx1-ubyte.gz", "truncated")
    assert snapshot(good) == before


def test_uninstalled_backend_names_the_extra(monkeypatch):
    import importlib

    from spinnconv.backends import get_backend
    from spinnconv.errors import BackendUnavailable

    real_import = importlib.import_module

    def fake_import(name, *args):
        if name == "pyNN.nest":
            raise ImportError("No module named 'nest'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(BackendUnavailable, match=r"pip install 'spinnconv\[nest\]'") as info:
        get_backend("nest")
    assert info.value.exit_code == 2


def test_disk_full_while_saving_keeps_the_old_file(tmp_path, monkeypatch):
    import errno
    import os

    import numpy as np

    from spinnconv import checkpoint
    from spinnconv.errors import CheckpointError

    path = tmp_path / "layer1.npz"
    checkpoint.write_npz(path, {"kernels": np.ones(3)})
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(CheckpointError, match="No space left"):
        checkpoint.write_npz(path, {"kernels": np.zeros(3)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["layer1.npz"]
