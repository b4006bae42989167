"""Simulator backends: one package per simulator behind :class:`~spinnconv.interface.Backend`.

``brian2/``, ``nest/`` and ``spinnaker/`` each subclass
:class:`~spinnconv.backends.base.PyNNBackend`; they are the only modules of
spinnconv that import a simulator (``pyproject.toml`` states it as an
import-linter contract). ``get_backend(name)`` imports the simulator only when
asked, so a missing optional simulator only matters to the user who picks it.
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

__all__ = ["BACKENDS", "Backend", "Connections", "STDPRule", "attach_backend", "get_backend"]


def get_backend(name: str, **options) -> Backend:
    """An instance of backend ``name``; ``options`` go to its constructor."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend '{name}'; choose one of: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name]
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(**options)


def attach_backend(sim) -> Backend:
    """The backend whose simulator module is ``sim`` (matched on ``sim.__name__``; any
    other PyNN module gets the generic one), building on ``sim`` as the caller set it up."""
    from .base import PyNNBackend

    for module_name, class_name in BACKENDS.values():
        backend_class = getattr(importlib.import_module(module_name), class_name)
        if getattr(sim, "__name__", None) == backend_class.module_name:
            return backend_class.attach(sim)
    return PyNNBackend.attach(sim)
