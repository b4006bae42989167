"""Simulator backends: one module per simulator behind one small interface.

``get_backend(name)`` imports the simulator only when asked, so a missing
optional simulator only matters to the user who picks it.
"""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import Backend, Connections, STDPRule

BACKENDS = {
    "brian2": ("spinnconv.backends.brian2", "Brian2Backend"),
    "nest": ("spinnconv.backends.nest", "NestBackend"),
    "spinnaker": ("spinnconv.backends.spinnaker", "SpiNNakerBackend"),
    "batched": ("spinnconv.backends.batched", "BatchedBackend"),
}

__all__ = ["BACKENDS", "Backend", "Connections", "STDPRule", "get_backend"]


def get_backend(name: str, **options) -> Backend:
    """An instance of backend ``name``; ``options`` go to its constructor."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend '{name}'; choose one of: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name]
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(**options)
