"""``spinnconv.interface.Backend`` names everything spinnconv asks of a backend."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spinnconv
from spinnconv.backends import BACKENDS
from spinnconv.backends.base import PyNNBackend
from spinnconv.interface import Backend

PACKAGE = Path(spinnconv.__file__).parent


def _used_on_backends(path: Path) -> set[str]:
    """Attributes read on a variable named ``backend`` in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "backend"}


def test_backend_declares_every_method_used_outside_backends():
    used: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "backends" not in path.relative_to(PACKAGE).parts:
            for name in _used_on_backends(path):
                used.setdefault(name, set()).add(path.name)
    assert used, "no backend calls found: the scan is broken"
    declared = set(Backend.__abstractmethods__) | {"name", "extra", "timestep_ms"}
    undeclared = {name: sorted(files) for name, files in used.items() if name not in declared}
    assert undeclared == {}, "declare these in spinnconv.interface.Backend"


def test_backend_is_abstract_and_pynn_backend_implements_it():
    with pytest.raises(TypeError, match="abstract"):
        Backend()
    assert PyNNBackend.__abstractmethods__ == frozenset()
    assert {"spikes", "voltages", "weights", "end"} <= Backend.__abstractmethods__


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_class_is_a_complete_backend(name):
    import importlib

    module_name, class_name = BACKENDS[name]
    backend_class = getattr(importlib.import_module(module_name), class_name)
    assert issubclass(backend_class, Backend)
    assert backend_class.__abstractmethods__ == frozenset()
