"""The PyNN implementation of :class:`~spinnconv.interface.Backend`.

Everything outside ``spinnconv.backends`` talks to a simulator only through a
:class:`Backend`. ``PyNNBackend`` implements it once for any ``pyNN.<simulator>``
module; a simulator's package (``brian2/``, ``nest/``, ``spinnaker/``)
subclasses it and overrides only that simulator's quirks:

* ``dendritic_delay_fraction`` for ``STDPMechanism`` (Brian2 needs 0, the others 1),
* how a connection list becomes a connector (Brian2 vectorises it, sPyNNaker
  sorts it by (pre, post)),
* the sign convention of inhibitory weights on current-based cells.
"""

from __future__ import annotations

import gc
import importlib

import numpy as np

from ..errors import BackendUnavailable
from ..interface import Backend, Connections, STDPRule

__all__ = ["Backend", "Connections", "PyNNBackend", "STDPRule"]


class PyNNBackend(Backend):
    """A :class:`Backend` on top of one ``pyNN.<simulator>`` module."""

    module_name: str = ""
    dendritic_delay_fraction: float = 1.0
    #: PyNN wants negative weights for inhibitory synapses on current-based cells.
    inhibitory_weight_sign: float = -1.0

    def __init__(self):
        try:
            self.sim = importlib.import_module(self.module_name)
        except ImportError as err:  # the optional extra is missing
            hint = f"pip install 'spinnconv[{self.extra}]'" if self.extra else "see README"
            raise BackendUnavailable(
                f"backend '{self.name}' is not available ({err}); install it with: {hint}"
            ) from err
        self.timestep_ms = 1.0

    @classmethod
    def attach(cls, sim) -> PyNNBackend:
        """This backend's way of building networks on ``sim``, a ``pyNN.<simulator>``
        module the caller has already set up (``sim.setup`` is not called again)."""
        backend = cls.__new__(cls)
        backend.sim = sim
        backend.timestep_ms = float(sim.get_time_step())
        backend._read_until_ms = {}
        backend.attached()
        return backend

    def attached(self) -> None:
        """What :meth:`setup` does besides ``sim.setup`` (for :meth:`attach`)."""

    # -- network construction -------------------------------------------------
    def setup(self, timestep_ms: float, seed: int) -> None:
        """Start a fresh simulation with time step ``timestep_ms``."""
        self.timestep_ms = float(timestep_ms)
        self._read_until_ms: dict[int, float] = {}
        self.sim.setup(timestep=self.timestep_ms, min_delay=self.timestep_ms,
                       **self.setup_options(seed))
        # sim.setup() has just dropped PyNN's references to the previous network
        # (recorders, population lists); collect it now, before anything new is
        # named (see _release_populations)
        gc.collect()

    def setup_options(self, seed: int) -> dict:
        """Extra keyword arguments for ``sim.setup`` (simulator specific)."""
        return {}

    def spike_source(self, spike_times: list[np.ndarray], label: str):
        """A ``SpikeSourceArray`` with one spike-time array (ms) per neuron."""
        times = [np.asarray(t, dtype=float) for t in spike_times]
        return self._track(self.sim.Population(
            len(times), self.sim.SpikeSourceArray(spike_times=times), label=label))

    def population(self, n: int, cell_params: dict, label: str,
                   max_input_na: tuple[float, float] | None = None):
        """``n`` ``IF_curr_exp`` neurons with the given PyNN parameters.

        ``max_input_na``: the largest summed (excitatory, inhibitory) input, in nA,
        that one neuron can receive in one time step, if known. Float simulators
        ignore it; sPyNNaker sizes its 16-bit weights from it (see
        :class:`~spinnconv.backends.spinnaker.SpiNNakerBackend`).
        """
        return self._track(self.sim.Population(
            int(n), self.sim.IF_curr_exp(**cell_params), label=label,
            **self.population_options(max_input_na)))

    def population_options(self, max_input_na: tuple[float, float] | None) -> dict:
        """Extra keyword arguments of ``sim.Population`` (none here)."""
        return {}

    def _track(self, population):
        self.__dict__.setdefault("_populations", []).append(population)
        return population

    def _release_populations(self) -> None:
        """Break the cycle population -> ``all_cells`` -> ``ID.parent`` -> population.

        ``all_cells`` is a NumPy object array, which the garbage collector cannot
        see into, so without this no ended network is ever freed: with Brian2 a
        process that builds one network per block of images grew by ~100 MB per
        MNIST network and, because Brian2 skips the names of live objects,
        recompiled every code object for each new network (Brian2 names objects
        "neurongroup", "neurongroup_1", ..., skipping names of live objects, and
        the names are part of the generated code cached in ``~/.cython``).
        """
        for population in self.__dict__.pop("_populations", []):
            try:
                population.all_cells = np.zeros(0, dtype=object)
                population._mask_local = np.zeros(0, dtype=bool)
            except AttributeError:  # sPyNNaker: a read-only property, no such cycle
                pass
        gc.collect()

    def synapse(self, connections: Connections, stdp: STDPRule | None):
        """The PyNN synapse type of a projection (static or STDP)."""
        if stdp is None:
            return self.sim.StaticSynapse()
        dependence_class = {
            "multiplicative": self.sim.MultiplicativeWeightDependence,
            "additive": self.sim.AdditiveWeightDependence,
        }[stdp.weight_dependence]
        return self.stdp_mechanism(stdp)(
            timing_dependence=self.sim.SpikePairRule(
                tau_plus=stdp.tau_plus_ms, tau_minus=stdp.tau_minus_ms,
                A_plus=stdp.a_plus, A_minus=stdp.a_minus),
            weight_dependence=dependence_class(w_min=stdp.w_min, w_max=stdp.w_max),
            dendritic_delay_fraction=self.dendritic_delay_fraction,
            weight=float(np.mean(connections.weight)) if len(connections) else 0.0,
            delay=self.timestep_ms,
        )

    def stdp_mechanism(self, stdp: STDPRule):
        """The ``STDPMechanism`` class (or factory) this simulator uses for ``stdp``."""
        return self.sim.STDPMechanism

    def connector(self, conn_list: np.ndarray):
        """Turn an ``(n, 4)`` ``[pre, post, weight, delay]`` array into a connector."""
        return self.sim.FromListConnector(conn_list, column_names=["weight", "delay"])

    def connect(self, pre, post, connections: Connections, receptor: str = "excitatory",
                stdp: STDPRule | None = None, label: str = ""):
        """A projection from a connection list; ``receptor`` picks the sign."""
        sign = self.inhibitory_weight_sign if receptor == "inhibitory" else 1.0
        conn_list = connections.as_list(weight_sign=sign)
        return self.sim.Projection(pre, post, self.connector(conn_list),
                                   synapse_type=self.synapse(connections, stdp),
                                   receptor_type=receptor, label=label)

    # -- running and reading back -------------------------------------------
    def record(self, population, variables: tuple[str, ...] = ("spikes",), indices=None) -> None:
        """Record ``variables`` of ``population`` (all neurons, or ``indices``)."""
        target = population if indices is None else population[list(indices)]
        target.record(list(variables))

    def set_parameters(self, population, **values) -> None:
        """Set neuron parameters (scalars or one value per neuron) between runs."""
        population.set(**values)

    def run(self, duration_ms: float) -> None:
        """Advance the simulation by ``duration_ms``."""
        self.sim.run(float(duration_ms))

    def spikes(self, population, clear: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Spikes recorded since the last call: ``(neuron_index, time_ms)`` arrays.

        ``clear=True`` clears the recorder (memory stays bounded over long runs;
        PyNN clears every recorded variable of the population). ``clear=False``
        keeps the recordings (e.g. membrane traces) and filters by time instead.
        """
        block = population.get_data("spikes", clear=clear)
        trains = block.segments[-1].spiketrains
        index = [np.full(len(st), st.annotations["source_index"], dtype=np.int64)
                 for st in trains]
        times = [np.asarray(st.rescale("ms").magnitude, dtype=np.float64) for st in trains]
        if not index:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        index, times = np.concatenate(index), np.concatenate(times)
        if not clear:
            since = self._read_until_ms.get(id(population), -np.inf)
            self._read_until_ms[id(population)] = float(self.sim.get_current_time())
            keep = times >= since
            index, times = index[keep], times[keep]
        return index, times

    def voltages(self, population):
        """The recorded membrane potential as a neo ``AnalogSignal`` (mV, one column per
        recorded neuron), or ``None`` when nothing was recorded."""
        block = population.get_data("v")
        signals = block.segments[-1].filter(name="v")
        return signals[0] if signals else None

    def weights(self, projection) -> np.ndarray:
        """Weights as a dense ``(n_pre, n_post)`` array, NaN where no synapse, >= 0."""
        weights = projection.get("weight", format="array", with_address=False)
        return np.abs(np.asarray(weights, dtype=np.float64))

    def end(self) -> None:
        """Release the simulator and the network it ran."""
        self.sim.end()
        self._release_populations()
