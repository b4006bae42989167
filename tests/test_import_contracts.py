"""The layering of spinnconv, as the import-linter contracts in ``pyproject.toml`` state it."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import spinnconv

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contract(contract_id: str) -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c.get("id") == contract_id)


def test_import_contracts_are_kept():
    """``lint-imports`` passes: no simulator outside backends/, a simulator-free core,
    no import cycles."""
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} missing: pip install -e '.[test]'"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout, result.stdout


def test_simulator_contract_covers_every_module_outside_backends():
    """A module added to spinnconv falls under "only backends imports a simulator"."""
    modules = {f"spinnconv.{info.name}" for info in pkgutil.iter_modules(spinnconv.__path__)
               if info.name != "backends"}
    listed = set(_contract("simulators-in-backends")["source_modules"])
    assert modules - listed == set(), "add these to the contract in pyproject.toml"
    assert listed - modules == set(), "these modules no longer exist"


def test_every_subpackage_is_installed():
    """``[tool.setuptools] packages`` lists every package of spinnconv (a missing one
    would be left out of a non-editable install)."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {"spinnconv"} | {name for _, name, is_package in pkgutil.walk_packages(
        spinnconv.__path__, "spinnconv.") if is_package}
    assert found == listed
