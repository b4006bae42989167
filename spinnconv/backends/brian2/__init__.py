"""Brian2 through ``pyNN.brian2``: :mod:`.backend` (:class:`Brian2Backend`), :mod:`.fromlist`
(the vectorised connection-list connector), :mod:`.stdp` (PyNN's STDP semantics, and
SpiNNaker's 16-bit weights, on Brian2). Importing this package does not import Brian2."""

from .backend import Brian2Backend

__all__ = ["Brian2Backend"]
