"""A real signal during a run leaves every earlier checkpoint intact and resumable."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, accuracy_of, run_cli

from spinnconv.checkpoint import ModelDir

pytestmark = pytest.mark.slow


def _start(*args):
    return subprocess.Popen([sys.executable, str(REPO / "main.py"), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_feature_extraction_keeps_layer_and_resumes(tmp_path, signum):
    pytest.importorskip("pyNN.nest")
    model_dir = tmp_path / "model"
    process = _start("--mode", "all", "--backend", "nest", "--model-dir", str(model_dir))
    manifest_path = model_dir / "manifest.json"
    deadline = time.time() + 300
    while not manifest_path.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert manifest_path.exists(), process.communicate()[1][-2000:]
    layer = ModelDir(model_dir).layer_path(1)
    saved = layer.read_bytes()
    time.sleep(0.5)  # now inside SVM feature extraction
    os.kill(process.pid, signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["trained"] == {"layers": [1], "svm": False}
    assert layer.read_bytes() == saved
    ModelDir(model_dir).load_layer(1)["kernels"]  # loadable, hash and shapes checked
    assert not [p for p in model_dir.iterdir() if p.name.endswith(".tmp")]
    # resuming: the remaining stages run on the saved layer
    result = run_cli("--mode", "training", "--layer", "svm", "--backend", "nest",
                     "--model-dir", str(model_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_cli("--mode", "testing", "--backend", "nest", "--model-dir", str(model_dir))
    assert accuracy_of(result) >= 0.85
    assert layer.read_bytes() == saved
