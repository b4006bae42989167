"""NEST through ``pyNN.nest`` (the ``nest`` extra: ``pip install 'spinnconv[nest]'``).

Quirks handled here: spikes on the time grid (as on SpiNNaker), quiet kernel,
one thread per process (parallelism comes from running shards in processes),
connection lists built with one ``nest.Connect`` call
(:class:`~spinnconv.backends.nest.fromlist.VectorisedFromListConnector`; PyNN's
makes one call per target neuron), projection weights read and written as arrays.
"""

from __future__ import annotations

import numpy as np

from ..base import PyNNBackend


class NestBackend(PyNNBackend):
    """``pyNN.nest``; ``STDPMechanism`` with the default ``dendritic_delay_fraction=1``."""

    name = "nest"
    extra = "nest"
    module_name = "pyNN.nest"
    dendritic_delay_fraction = 1.0

    def setup_options(self, seed: int) -> dict:
        return {"spike_precision": "on_grid", "verbosity": "error", "threads": 1,
                "rng_seed": int(seed) + 1}

    def connector(self, conn_list):
        from .fromlist import VectorisedFromListConnector

        return VectorisedFromListConnector(conn_list, column_names=["weight", "delay"])

    # PyNN's get/set of projection attributes as arrays convert one connection at
    # a time through Population.id_to_index; these read the whole SynapseCollection
    # at once. IDs of a Population are
    # consecutive, so index = node id - first id.
    _NA_PER_NEST_UNIT = 1e-3  # NEST weights of current synapses are in pA

    def _addresses(self, projection):
        connections = projection.nest_connections
        status = connections.get(["source", "target", "weight"])
        pre = np.asarray(status["source"], dtype=np.int64) - int(projection.pre.first_id)
        post = np.asarray(status["target"], dtype=np.int64) - int(projection.post.first_id)
        return connections, pre, post, np.asarray(status["weight"], dtype=np.float64)

    def weights(self, projection) -> np.ndarray:
        _, pre, post, weight = self._addresses(projection)
        dense = np.full((projection.pre.size, projection.post.size), np.nan)
        dense[pre, post] = np.abs(weight) * self._NA_PER_NEST_UNIT
        return dense
