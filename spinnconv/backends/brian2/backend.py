"""Brian2 through ``pyNN.brian2`` (installed with spinnconv).

Quirks handled here:

* ``STDPMechanism`` needs ``dendritic_delay_fraction=0`` and then pairs spikes as
  if every delay were axonal, unlike NEST and sPyNNaker: plastic projections use
  :class:`~spinnconv.backends.brian2.stdp.DendriticSTDPMechanism` instead, which
  pairs and updates as they do (and, with ``--emulate-spinnaker``, truncates the
  weights to SpiNNaker's 16-bit step after every pre spike);
* its ``STDPMechanism`` ignores the weight dependence (always additive): other
  rules are refused;
* PyNN's ``FromListConnector`` sets Brian2 synapses one at a time (slow for a
  conv layer's list): connection lists go through
  :class:`~spinnconv.backends.brian2.fromlist.VectorisedFromListConnector`;
* ``SpikeSourceArray`` objects run on Brian2's default clock (0.1 ms) unless the
  default clock is set to the PyNN time step before the network is built;
* spike recordings cannot be cleared: :meth:`Brian2Backend.spikes` reads the
  monitor incrementally instead.
"""

from __future__ import annotations

import functools
import logging

from ...errors import UsageError
from ..base import Connections, PyNNBackend, STDPRule


class Brian2Backend(PyNNBackend):
    """``pyNN.brian2`` with a vectorised connection-list path."""

    name = "brian2"
    extra = ""
    module_name = "pyNN.brian2"
    dendritic_delay_fraction = 0.0

    def setup(self, timestep_ms: float, seed: int) -> None:
        import brian2

        self._quiet_clock(timestep_ms)
        brian2.seed(int(seed))
        super().setup(timestep_ms, seed)

    def attached(self) -> None:
        self._quiet_clock(self.timestep_ms)

    def _quiet_clock(self, timestep_ms: float) -> None:
        """Brian2 logs errors only; the default clock (spike sources) ticks at the time step."""
        import brian2

        logging.getLogger("brian2").setLevel(logging.ERROR)
        brian2.prefs.logging.console_log_level = "ERROR"
        brian2.defaultclock.dt = float(timestep_ms) * brian2.ms
        self._spikes_read: dict[int, int] = {}

    def stdp_mechanism(self, stdp: STDPRule):
        """Dendritic pairing as in NEST and sPyNNaker, with the board's weight step
        when emulating it."""
        if stdp.weight_dependence != "additive":  # pyNN.brian2 would silently run additive
            raise UsageError("pyNN.brian2 implements additive STDP only (its STDPMechanism "
                             f"ignores the weight dependence), not '{stdp.weight_dependence}'")
        if stdp.spinnaker_weight_step_na and min(stdp.a_plus, stdp.a_minus) <= 0:
            raise UsageError("--emulate-spinnaker on brian2 needs stdp a_plus and a_minus > 0")
        from .stdp import DendriticSTDPMechanism

        return functools.partial(DendriticSTDPMechanism,
                                 weight_step_na=stdp.spinnaker_weight_step_na or 0.0)

    def connect(self, pre, post, connections: Connections, receptor: str = "excitatory",
                stdp: STDPRule | None = None, label: str = ""):
        projection = super().connect(pre, post, connections, receptor, stdp, label)
        if stdp is not None:
            projection.synapse_type.configure_pathways(projection)
        return projection

    def connector(self, conn_list):
        from .fromlist import VectorisedFromListConnector

        return VectorisedFromListConnector(conn_list, column_names=["weight", "delay"])

    def spikes(self, population, clear: bool = True):
        """Spikes since the last call, read straight from Brian2's ``SpikeMonitor``.

        ``pyNN.brian2`` cannot clear a spike recording (``get_data(clear=True)``
        returns old spikes and neo then refuses them), so we remember how many
        spikes were already read and slice the monitor from there.
        """
        import brian2
        import numpy as np

        monitor = population.recorder._devices["spikes"]
        start = self._spikes_read.get(id(population), 0)
        stop = int(monitor.num_spikes)
        self._spikes_read[id(population)] = stop
        if stop == start:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        index = np.asarray(monitor.i[start:stop], dtype=np.int64)
        times = np.asarray(monitor.t[start:stop] / brian2.ms, dtype=np.float64)
        return index, times
