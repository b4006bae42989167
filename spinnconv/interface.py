"""What the network code hands a simulator backend and what it asks of it, simulator-free.

:class:`Connections` and :class:`STDPRule` are plain data; :class:`Backend` names
every method spinnconv calls on a backend. The implementations live in
:mod:`spinnconv.backends` (``PyNNBackend`` and one subclass per simulator).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Backend", "Connections", "STDPRule"]


@dataclass(frozen=True)
class Connections:
    """A connection list as parallel arrays: synapse k goes ``pre[k] -> post[k]``.

    ``weight`` is in nA (current-based cells) and always >= 0: whether it
    excites or inhibits is the projection's receptor, not the sign.
    """

    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    delay_ms: np.ndarray

    def __post_init__(self):
        n = np.asarray(self.pre).size
        for name in ("post", "weight", "delay_ms"):
            if np.asarray(getattr(self, name)).size != n:
                raise ValueError(f"Connections.{name} has a different length than pre")

    @classmethod
    def build(cls, pre, post, weight, delay_ms) -> Connections:
        """Broadcast scalar weight/delay to the length of ``pre``."""
        pre = np.asarray(pre, dtype=np.int64)
        post = np.asarray(post, dtype=np.int64)
        weight = np.broadcast_to(np.asarray(weight, dtype=np.float64), pre.shape).copy()
        delay_ms = np.broadcast_to(np.asarray(delay_ms, dtype=np.float64), pre.shape).copy()
        return cls(pre, post, weight, delay_ms)

    def __len__(self) -> int:
        return int(np.asarray(self.pre).size)

    def as_list(self, weight_sign: float = 1.0) -> np.ndarray:
        """``(n, 4)`` array ``[pre, post, weight, delay]`` for ``FromListConnector``."""
        return np.column_stack([self.pre, self.post, weight_sign * self.weight, self.delay_ms])


@dataclass(frozen=True)
class STDPRule:
    """Pair-based STDP (``SpikePairRule``) with a soft or hard weight bound.

    ``weight_dependence`` is ``"additive"`` (hard bounds; the only one brian2 trains)
    or ``"multiplicative"`` (soft bounds). Weights are in nA; ``a_plus``/``a_minus`` are
    fractions of ``w_max``.
    """

    tau_plus_ms: float
    tau_minus_ms: float
    a_plus: float
    a_minus: float
    w_min: float
    w_max: float
    weight_dependence: str = "additive"
    #: ``--emulate-spinnaker``: the 16-bit step (nA) of the plastic weights on the
    #: board. Backends that can (brian2) then truncate each weight to this step
    #: after every presynaptic spike, as sPyNNaker does; None: float weights.
    spinnaker_weight_step_na: float | None = None


class Backend(ABC):
    """What every backend answers; :class:`~spinnconv.backends.base.PyNNBackend` gives
    the semantics. Populations and projections are the simulator's own objects."""

    name: str = "?"
    #: the pip extra that installs the simulator ("" when installed with spinnconv)
    extra: str = ""
    #: the simulation time step, set by :meth:`setup`
    timestep_ms: float = 1.0

    @abstractmethod
    def setup(self, timestep_ms: float, seed: int) -> None:
        """Start a fresh simulation."""

    @abstractmethod
    def spike_source(self, spike_times: list[np.ndarray], label: str) -> Any:
        """A population that emits the given spike times (ms), one array per neuron."""

    @abstractmethod
    def population(self, n: int, cell_params: dict, label: str,
                   max_input_na: tuple[float, float] | None = None) -> Any:
        """``n`` LIF neurons with the given parameters."""

    @abstractmethod
    def connect(self, pre: Any, post: Any, connections: Connections,
                receptor: str = "excitatory", stdp: STDPRule | None = None,
                label: str = "") -> Any:
        """A projection from a connection list onto ``receptor``."""

    @abstractmethod
    def record(self, population: Any, variables: tuple[str, ...] = ("spikes",),
               indices: Any = None) -> None:
        """Record ``variables`` of ``population`` (all neurons, or ``indices``)."""

    @abstractmethod
    def set_parameters(self, population: Any, **values: Any) -> None:
        """Set neuron parameters between runs."""

    @abstractmethod
    def run(self, duration_ms: float) -> None:
        """Advance the simulation by ``duration_ms``."""

    @abstractmethod
    def spikes(self, population: Any, clear: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Spikes recorded since the last call: ``(neuron_index, time_ms)``."""

    @abstractmethod
    def voltages(self, population: Any) -> Any:
        """The recorded membrane potential (neo ``AnalogSignal``, mV), or ``None``."""

    @abstractmethod
    def weights(self, projection: Any) -> np.ndarray:
        """Weights as a dense ``(n_pre, n_post)`` array in nA, NaN where no synapse."""

    @abstractmethod
    def end(self) -> None:
        """Release the simulator and the network it ran."""
