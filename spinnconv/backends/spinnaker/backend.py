"""The sPyNNaker backend (``pyNN.spiNNaker``): SpiNNaker boards, spalloc, or a virtual board.

sPyNNaker 7.4.1's quirks handled here: the machine comes from a run-private
config (:mod:`.machine`), STDP needs ``dendritic_delay_fraction = 1``,
inhibitory weights are positive (the receptor gives the sign), connection
lists are sorted by (pre, post), additive STDP amplitudes are pre-multiplied by
``w_max``, spike reads drop what was read before. Each quirk and the sPyNNaker
source behind it: ``docs/design/spinnaker-backend.md``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UsageError
from ..base import PyNNBackend, STDPRule
from .machine import check_machine_reachable, private_config, write_spynnaker_config
from .quantisation import quantise_weights_like_spinnaker, spinnaker_stdp_amplitudes
from .resources import resource_report

__all__ = ["SpiNNakerBackend"]


class SpiNNakerBackend(PyNNBackend):
    """``pyNN.spiNNaker`` on a virtual board, one physical board, or spalloc.

    Exactly one of ``virtual_board`` (3 or 5), ``host`` (IPv4 address / name of a
    SpiNN-5 board) or ``spalloc_server`` (URL); with none of them a virtual 48-chip
    board is used (mapping only: recordings come back empty, nothing is simulated).
    ``work_dir`` holds ``config/.spynnaker.cfg`` and sPyNNaker's ``reports/``
    (default: a new temporary directory). ``n_boards`` is passed to ``sim.setup``
    as ``n_boards_required`` for spalloc.
    """

    name = "spinnaker"
    extra = "spinnaker"
    module_name = "pyNN.spiNNaker"
    dendritic_delay_fraction = 1.0
    inhibitory_weight_sign = 1.0
    #: :meth:`setup` pings a physical board / spalloc server first (a caller that
    #: already did, such as ``deploy``, turns it off)
    check_reachable_on_setup = True

    def __init__(self, *, virtual_board: int | None = None, host: str | None = None,
                 spalloc_server: str | None = None, work_dir: Path | None = None,
                 n_boards: int | None = None, reachable_timeout_s: float = 3.0):
        if virtual_board is None and host is None and spalloc_server is None:
            virtual_board = 5
        super().__init__()
        if work_dir is None:
            work_dir = Path(tempfile.mkdtemp(prefix="spinnconv-spinnaker-"))
        self.work_dir = Path(work_dir).resolve()
        self.config_dir = self.work_dir / "config"
        #: sPyNNaker writes reports/<timestamp>/run_<n>/ here
        self.reports_dir = self.work_dir / "reports"
        self.virtual_board, self.host, self.spalloc_server = virtual_board, host, spalloc_server
        self.n_boards = n_boards
        self.reachable_timeout_s = float(reachable_timeout_s)
        self.config_file = write_spynnaker_config(
            self.config_dir, virtual_board=virtual_board, host=host,
            spalloc_server=spalloc_server, reports_dir=self.work_dir)
        self._spikes_read_until: dict[int, float] = {}

    @property
    def is_virtual(self) -> bool:
        return self.virtual_board is not None

    # -- network construction ---------------------------------------------------
    def setup(self, timestep_ms: float, seed: int) -> None:
        """Ping the board / spalloc server (unless :attr:`check_reachable_on_setup` is
        off), then ``sim.setup`` on the private config."""
        if self.check_reachable_on_setup:
            check_machine_reachable(self.host, self.spalloc_server, self.reachable_timeout_s)
        self._spikes_read_until.clear()
        with private_config(self.config_dir):
            super().setup(timestep_ms, seed)

    def setup_options(self, seed: int) -> dict:
        # sPyNNaker's setup has no seed (FromList connectivity needs none)
        if self.spalloc_server is not None and self.n_boards is not None:
            return {"n_boards_required": int(self.n_boards)}
        return {}

    def population_options(self, max_input_na: tuple[float, float] | None) -> dict:
        """``max_input_na`` (excitatory, inhibitory) becomes the population's
        ``max_expected_summed_weight``, from which sPyNNaker takes the ring-buffer
        shift of each receptor (its own bound assumes every input at its largest
        weight at once). The 16-bit weight step is then as fine as the input allows
        without saturating the ring buffer."""
        if max_input_na is None:
            return {}
        return {"additional_parameters": {
            "max_expected_summed_weight": [float(v) for v in max_input_na]}}

    def synapse(self, connections, stdp: STDPRule | None):
        if stdp is not None and (stdp.w_min < 0 or stdp.w_max < 0):
            raise UsageError("sPyNNaker needs w_min, w_max >= 0 (the receptor gives the sign)")
        return super().synapse(connections, spinnaker_stdp_amplitudes(stdp))

    def connector(self, conn_list: np.ndarray):
        """``FromListConnector`` on the list sorted by (pre, post)."""
        conn_list = np.asarray(conn_list, dtype=np.float64).reshape(-1, 4)
        order = np.lexsort((conn_list[:, 1], conn_list[:, 0]))
        return self.sim.FromListConnector(conn_list[order], column_names=["weight", "delay"])

    # -- running and reading back ---------------------------------------------
    def spikes(self, population, clear: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Spikes since the last call (``get_data(clear=...)``; empty on a virtual board).

        Spikes before the previous read are dropped as well, in case a sPyNNaker
        version ignores ``clear``.
        """
        since = self._spikes_read_until.get(id(population), -np.inf)
        index, times = super().spikes(population, clear=clear)
        self._spikes_read_until[id(population)] = float(self.sim.get_current_time())
        keep = times >= since
        return index[keep], times[keep]

    # -- what sPyNNaker made of it ----------------------------------------------
    def weight_quantisation(self, projection) -> dict:
        """``{"ring_buffer_shift", "weight_scale", "weight_step", "synapse_type"}`` of a
        projection, from its post population's vertex (after ``setup``/``connect``)."""
        info = projection._synapse_information
        vertex = projection._projection_edge.post_vertex
        shifts = vertex.get_ring_buffer_shifts()
        scales = vertex.get_weight_scales(shifts)
        s_type = int(info.synapse_type)
        return {"synapse_type": s_type, "ring_buffer_shift": int(shifts[s_type]),
                "weight_scale": float(scales[s_type]),
                "weight_step": 1.0 / float(scales[s_type])}

    def quantised(self, projection, weights) -> np.ndarray:
        """``weights`` as sPyNNaker stores them in ``projection``."""
        q = self.weight_quantisation(projection)
        vertex = projection._projection_edge.post_vertex
        plastic = hasattr(projection._synapse_information.synapse_dynamics,
                          "weight_dependence")
        return quantise_weights_like_spinnaker(
            weights, ring_buffer_shift=q["ring_buffer_shift"],
            global_weight_scale=float(vertex.weight_scale), plastic=plastic)

    def resource_report(self, populations: dict[str, Any]) -> dict:
        """:func:`~spinnconv.backends.spinnaker.resources.resource_report` of the mapped
        network on this backend's machine (call after ``run``)."""
        board = (f"virtual SpiNN-{self.virtual_board}" if self.is_virtual
                 else self.host or self.spalloc_server)
        return resource_report(populations, board)
