"""Per-phase memory figures: each phase reports its own peak, not the run's so far."""

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from spinnconv.checkpoint import ModelDir
from spinnconv.pipeline import Run


def in_fresh_process(function, *args):
    """``function(*args)`` in a newly spawned interpreter: peak-memory figures of a
    long test session depend on what earlier tests left resident."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM reset is Linux only")
def test_a_phase_reports_its_own_peak_and_the_run_keeps_the_largest(tmp_path):
    in_fresh_process(_phases_report_their_own_peaks, tmp_path)


def _phases_report_their_own_peaks(tmp_path: Path) -> None:
    run = Run(params={}, dataset="", data_dir=Path("."), model_dir=ModelDir(tmp_path))
    with run.phase("big", 1, "step"):
        block = np.ones(300 * 2**20 // 8)  # 300 MB, touched
        del block
    with run.phase("small", 1, "step"):
        pass
    with run.phase("workers", 1, "step"):
        run.note_workers([100.0, 250.0], workers=2)
    big, small, workers = run.phases
    assert big["peak_memory_mb"] > small["peak_memory_mb"] + 250
    assert run.main_peak_mb >= big["peak_memory_mb"] - 0.1  # phases round to 0.1 MB
    assert big["workers"] == 0 and big["memory_bound_mb"] == big["peak_memory_mb"]
    assert workers["workers"] == 2 and workers["worker_peak_memory_mb"] == 250.0
    assert workers["memory_bound_mb"] == pytest.approx(workers["peak_memory_mb"] + 500.0, abs=0.1)
    assert run.worker_peak_mb == 250.0
