"""The batched backend: a numba engine with the semantics of ``pyNN.nest``.

``BatchedBackend`` answers the :class:`~spinnconv.backends.base.Backend` interface
(used for STDP training and for recorded runs); ``simulate_counts`` counts the
output spikes of many blocks of images at once, in parallel over blocks (used for
feature extraction). numba is imported only when either is used.
"""

from .backend import BatchedBackend, engine_threads, simulate_counts

__all__ = ["BatchedBackend", "engine_threads", "simulate_counts"]
