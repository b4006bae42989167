"""Shared test helpers: the repo paths, the MNIST folder beside the repo, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 1800,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """``python main.py ARGS`` in a subprocess; returns the completed process."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=cwd or REPO,
                          check=False, capture_output=True, text=True, timeout=timeout,
                          env=environment)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def accuracy_of(result: subprocess.CompletedProcess) -> float:
    line = last_line(result.stdout)
    assert line.startswith("accuracy: "), (result.stdout[-2000:], result.stderr[-2000:])
    return float(line.split()[1])


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes (to check nothing changed)."""
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_DIR / "SHA256SUMS").is_file():
        pytest.skip(f"MNIST not found in {MNIST_DIR}")
    return MNIST_DIR


@pytest.fixture
def brian2_numpy_target():
    """Brian2 generates NumPy code for the test instead of compiling Cython (tens of
    seconds per new network on a cold cache). For tests of what the connections and the
    equations are, which every code target runs alike; the default target (Cython) runs
    the whole pipeline in ``test_end_to_end.py``."""
    brian2 = pytest.importorskip("brian2")
    before = brian2.prefs.codegen.target
    brian2.prefs.codegen.target = "numpy"
    yield
    brian2.prefs.codegen.target = before
