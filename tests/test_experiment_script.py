"""experiments/mnist_full.py: per-seed runs gathered into mean ± sd (on digits: fast)."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_seeds_are_run_and_summarised(tmp_path):
    pytest.importorskip("pyNN.nest")
    out = tmp_path / "full"
    result = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "mnist_full.py"), "--dataset", "digits",
         "--backend", "nest", "--jobs", "1", "--seeds", "0", "1", "--out", str(out),
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
