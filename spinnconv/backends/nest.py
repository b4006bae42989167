"""NEST through ``pyNN.nest`` (the ``nest`` extra: ``pip install 'spinnconv[nest]'``).

Quirks handled here: spikes on the time grid (as on SpiNNaker), quiet kernel,
one thread per process (parallelism comes from running shards in processes).
"""

from __future__ import annotations

from .base import PyNNBackend


class NestBackend(PyNNBackend):
    """``pyNN.nest``; ``STDPMechanism`` with the default ``dendritic_delay_fraction=1``."""

    name = "nest"
    extra = "nest"
    module_name = "pyNN.nest"
    dendritic_delay_fraction = 1.0

    def setup_options(self, seed: int) -> dict:
        return {"spike_precision": "on_grid", "verbosity": "error", "threads": 1,
                "rng_seed": int(seed) + 1}
