"""experiments/: mnist_full.py gathers per-seed runs into mean ± sd (run on digits);
emulation_gap.py pairs float and emulated runs by seed."""

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_seeds_are_run_and_summarised(tmp_path):
    out = tmp_path / "full"
    result = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "mnist_full.py"), "--dataset", "digits",
         "--backend", "batched", "--jobs", "1", "--seeds", "0", "1", "--out", str(out),
         "--no-plots", "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    accuracies = [json.loads((out / f"seed{s}" / "record.json").read_text())["accuracy"]
                  for s in (0, 1)]
    assert summary["accuracy"]["values"] == accuracies
    assert summary["accuracy"]["mean"] == pytest.approx(sum(accuracies) / 2)
    assert min(accuracies) >= 0.90
    assert "| mean ± sd |" in result.stdout


def test_emulation_gap_pairs_seeds_and_reports_points():
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        import emulation_gap
    finally:
        sys.path.remove(str(REPO / "experiments"))
    summary = {"seeds": [0, 1, 2], "n_train": 10, "n_test": 5, "backend": "nest"}
    floats = {**summary, "accuracy": {"values": [0.95, 0.94, 0.96]}}
    emulated = {**summary, "accuracy": {"values": [0.94, 0.95, 0.96]}}
    result = emulation_gap.gap(floats, emulated)
    assert result["difference_points"]["values"] == pytest.approx([-1.0, 1.0, 0.0])
    assert result["difference_points"]["mean"] == pytest.approx(0.0)
    assert result["mean_absolute_difference_points"] == pytest.approx(2 / 3)
    assert result["float"]["mean"] == pytest.approx(0.95)
    text = emulation_gap.table(result)
    assert "| 0 | 0.9500 | 0.9400 | -1.00 |" in text and "| mean ± sd |" in text
    with pytest.raises(ValueError):  # seeds must pair up
        emulation_gap.gap(floats, {**emulated, "accuracy": {"values": [0.9]}})
