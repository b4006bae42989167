"""A trained digits model through the CLI: figures, SpiNNaker deployment, emulation."""

import json
import time

import matplotlib.image as mpimg
import numpy as np
import pytest
from conftest import accuracy_of, run_cli, snapshot

pytestmark = pytest.mark.slow

FIGURES = ["activity_layer1.png", "activity_layer2.png", "confusion_matrix.png",
           "convergence.png", "input_raster.png", "kernels_layer1.png", "layers.png",
           "membrane_layer1.png"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("pyNN.nest")
    model_dir = tmp_path_factory.mktemp("trained") / "model"
    result = run_cli("--mode", "all", "--backend", "nest", "--model-dir", str(model_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, accuracy_of(result)


def test_every_figure_is_a_real_png(trained):
    model_dir, _ = trained
    written = sorted(p.name for p in (model_dir / "figures").glob("*.png"))
    assert written == FIGURES
    for name in FIGURES:
        path = model_dir / "figures" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = mpimg.imread(path)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200
        rgb = pixels[..., :3]
        assert rgb.std() > 0.05
        assert np.mean(np.any(rgb < 0.95, axis=-1)) > 0.02  # not an empty canvas


def test_plot_mode_rewrites_figures(trained, tmp_path):
    model_dir, _ = trained
    before = {p: p.stat().st_mtime_ns for p in (model_dir / "figures").glob("*.png")}
    result = run_cli("--mode", "plot", "--backend", "nest", "--model-dir", str(model_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{len(FIGURES)} figures" in result.stdout
    after = {p: p.stat().st_mtime_ns for p in (model_dir / "figures").glob("*.png")}
    assert all(after[p] > before[p] for p in before)


def test_deploy_on_virtual_board(trained):
    pytest.importorskip("spynnaker")
    model_dir, _ = trained
    result = run_cli("--mode", "deploy", "--virtual-board", "5", "--model-dir", str(model_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "layer1_conv" in result.stdout and "total" in result.stdout
    report = json.loads((model_dir / "deploy.json").read_text())
    rows = report["rows"]
    assert [r["layer"] for r in rows] == ["input", "layer1_conv", "layer2_pool"]
    assert all(r["cores"] > 0 and r["sdram_bytes"] > 0 and r["neurons"] > 0 for r in rows)
    assert sum(r["cores"] for r in rows) == report["total"]["cores"]
    assert set(report["candidates"]) == {"fromlist", "native"}
    chosen = report["conv_mode"]
    assert report["candidates"][chosen]["cores"] == min(
        c["cores"] for c in report["candidates"].values() if c["fits"])
    assert not (model_dir.parent / "reports").exists()


def test_unreachable_board_fails_fast_and_changes_nothing(trained):
    pytest.importorskip("spynnaker")
    model_dir, _ = trained
    before = snapshot(model_dir)
    started = time.perf_counter()
    result = run_cli("--mode", "deploy", "--spinnaker-host", "192.0.2.1",
                     "--model-dir", str(model_dir))
    assert time.perf_counter() - started < 20
    assert result.returncode == 1
    assert "not reachable" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(model_dir) == before


def test_emulated_spinnaker_weights_keep_accuracy(trained):
    model_dir, accuracy = trained
    result = run_cli("--mode", "testing", "--backend", "nest", "--emulate-spinnaker",
                     "--no-plots", "--model-dir", str(model_dir))
    assert abs(accuracy_of(result) - accuracy) <= 0.02


def test_virtual_board_cannot_train(tmp_path):
    result = run_cli("--mode", "training", "--layer", "1", "--backend", "spinnaker",
                     "--virtual-board", "5", "--model-dir", str(tmp_path / "m"))
    assert result.returncode == 2 and "does not run" in result.stderr
