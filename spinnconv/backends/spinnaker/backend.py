"""The sPyNNaker backend (``pyNN.spiNNaker``): SpiNNaker boards, spalloc, or a virtual board.

Quirks handled here (sPyNNaker 7.4.1, source under ``spynnaker/pyNN``):

* **Machine choice.** sPyNNaker takes the machine only from ``.spynnaker.cfg``
  files. :class:`SpiNNakerBackend` writes a run-private config into
  ``<work_dir>/config`` and reads it through
  :func:`spinnconv.spinnaker_machine.private_config`, so a user's
  ``~/.spynnaker.cfg`` is neither read nor touched, and sPyNNaker's
  ``reports/`` tree goes to ``<work_dir>/reports`` instead of the cwd.
  A physical board / spalloc server is pinged first (3 s) so a wrong address
  fails in seconds with one line instead of hanging inside spinnman.
* **STDP delays.** ``SynapseDynamicsSTDP.__init__`` raises
  ``NotImplementedError("All delays must be dendritic!")`` unless
  ``dendritic_delay_fraction == 1.0``.
* **Inhibitory weights are positive.** sPyNNaker takes ``numpy.abs`` of every
  weight (``AbstractConnector._generate_weights``; mixed signs in one projection
  raise ``SpynnakerException``), the receptor alone decides the sign, weights read
  back are positive, and an STDP weight dependence refuses ``w_min``/``w_max`` < 0
  (``SynapseDynamicsWeightChangable``). So ``inhibitory_weight_sign = +1``.
* **FromList order.** Connection lists are sorted by (pre, post) (``numpy.lexsort``);
  unsorted lists can raise ``SynapseRowTooBigException``.
* **Recording.** ``Population.get_data(variables, gather, clear)`` supports
  ``clear=True``: ``NeoBufferDatabase.clear_data`` moves the recording's
  ``t_start`` to the current time, so later reads start there. The returned block
  also carries one segment per earlier ``reset()``; we read the last one. On a
  virtual board every recording is empty (sPyNNaker logs "Data from a virtual run
  will be empty").
* **Weights.** ``Projection.get`` works on a virtual board too for connectors
  generated on the host (``FromListConnector``): sPyNNaker keeps the synaptic rows it
  generated (``Projection.__virtual_connection_list``) and decodes them, so the
  values are already the 16-bit fixed-point ones (see below). ``Projection.set``
  is not implemented in sPyNNaker (``NotImplementedError``).

16-bit weights: how sPyNNaker quantises them
-------------------------------------------
Per post-synaptic population and per synapse type (receptor), sPyNNaker picks a
*ring-buffer left shift* ``s`` and stores each weight ``w`` of every incoming
projection of that receptor as the 16-bit integer ``rint(|w| * 2**(15 - s) * g)``
where ``g`` is the input type's global weight scale (1 for current-based cells,
1024 for conductance-based). The neuron core shifts the accumulated ring-buffer
value left by ``s`` to get an s16.15 input, so the weight actually used is
``rint(|w| * scale) / scale`` with ``scale = 2**(15 - s) * g``; the weight step is
``2**(s - 15) / g`` nA and the largest weight is just under ``2**s / g``.

* ``s`` comes from ``PopulationVertex.get_ring_buffer_shifts``
  (``spynnaker/pyNN/models/neuron/population_vertex.py``): with ``m`` the
  "maximum expected summed weight" of that synapse type,
  ``s = 0 if m <= 0 else ceil(max(0, log2(m)))``, plus one if ``2**s <= m``.
  ``m`` is ``max_expected_summed_weight`` if the cell type was given one, else
  ``_Stats.get_max_weight``: when all incoming delays of that synapse type are equal
  (delay variance 0) it is ``max(sum over projections of spikes_per_tick * w_max *
  max_fan_in, biggest single weight)``; otherwise a Poisson upper bound
  (``ring_buffer_sigma`` = 5 standard deviations at ``spikes_per_second`` = 30 Hz,
  cfg ``[Simulation]``) clipped to that range. For STDP projections ``w_max`` is at
  least the weight dependence's ``w_max``. So the precision of a projection depends
  on the *other* projections into the same population and receptor.
* The scale: ``PopulationVertex.__get_weight_scale`` =
  ``2 ** (16 - (s + 1))`` times ``get_global_weight_scale()`` in
  ``PopulationVertex.get_weight_scales``.
* Encoding: ``synapse_io.get_synapses`` multiplies by the scale;
  ``SynapseDynamicsStatic.get_static_synaptic_data`` stores
  ``(numpy.rint(numpy.abs(w)).astype(uint32) & 0xFFFF) << 16`` (round half to even;
  the mask would wrap an out-of-range weight, which the choice of ``s`` prevents);
  ``SynapseDynamicsSTDP.get_plastic_synaptic_data`` stores
  ``numpy.rint(numpy.abs(w)).astype(uint16)``.
* Decoding (what ``Projection.get`` returns): ``synapse_io._rescale_connections``
  divides by the same scale.

:func:`quantise_weights_like_spinnaker` reproduces this; ``tests/test_spinnaker.py``
checks it bit-exactly against weights read back from a virtual-board projection
and against sPyNNaker's own ``get_ring_buffer_shifts``/``get_weight_scales``.
Connectors that sPyNNaker expands on the chip (e.g. ``AllToAllConnector`` with
scalar weights) are not covered: on hardware the synapse expander (C code)
converts their weights, and on a virtual board nothing is generated for them.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RuntimeFailure, UsageError
from ..spinnaker_machine import check_reachable, private_config, write_spynnaker_config
from .base import PyNNBackend, STDPRule

__all__ = [
    "SpiNNakerBackend",
    "board_training_options",
    "format_resource_report",
    "plastic_weight_step_on_board",
    "plastic_weights_on_board",
    "quantise_weights_like_spinnaker",
    "ring_buffer_left_shift",
    "spinnaker_stdp_amplitudes",
    "spinnaker_weight_scale",
]


# -- 16-bit weights -----------------------------------------------------------
def ring_buffer_left_shift(max_summed_weight: float) -> int:
    """sPyNNaker's ring-buffer left shift for a maximum expected summed weight.

    Same arithmetic as ``PopulationVertex.get_ring_buffer_shifts`` (the weight
    is in nA for current-based cells, already times the global weight scale).
    """
    m = float(max_summed_weight)
    if not math.isfinite(m):
        raise ValueError(f"max_summed_weight must be finite, got {max_summed_weight!r}")
    shift = 0 if m <= 0 else math.ceil(max(0.0, math.log2(m)))
    if 2 ** shift <= m:  # range is [0, 2**shift): an exact power needs one more bit
        shift += 1
    return shift


def spinnaker_weight_scale(ring_buffer_shift: int, global_weight_scale: float = 1.0) -> float:
    """Float weight -> 16-bit integer factor: ``2**(16 - (shift + 1)) * global scale``."""
    return float(2.0 ** (16 - (int(ring_buffer_shift) + 1))) * float(global_weight_scale)


def max_summed_weight_equal_delays(projections: Iterable[tuple[float, int, float]]) -> float:
    """``m`` for one post population and receptor when all its delays are equal.

    ``projections`` holds ``(w_max, max_fan_in, spikes_per_tick)`` per incoming
    projection of that receptor (``spikes_per_tick`` = the source's maximum
    spikes per time step: 1 for a ``SpikeSourceArray`` with at most one spike
    per neuron and step, ``max(1, 30 Hz * dt)`` for neurons). Mirrors
    ``_Stats.get_max_weight`` when the delay variance is 0.
    """
    total, biggest = 0.0, 0.0
    for w_max, fan_in, spikes_per_tick in projections:
        total += float(spikes_per_tick) * abs(float(w_max)) * int(fan_in)
        biggest = max(biggest, abs(float(w_max)))
    return max(total, biggest)


def quantise_weights_like_spinnaker(weights, *, ring_buffer_shift: int | None = None,
                                    max_summed_weight: float | None = None,
                                    global_weight_scale: float = 1.0,
                                    plastic: bool = False) -> np.ndarray:
    """The weights sPyNNaker actually uses (and ``Projection.get`` returns).

    Give the post population's ring-buffer shift for the projection's receptor
    (``SpiNNakerBackend.weight_quantisation`` reads it from sPyNNaker), or the
    maximum expected summed weight to derive it from. Returns
    ``rint(|w| * scale) / scale`` with the sign of ``w`` kept (sPyNNaker itself
    stores ``|w|``); NaN stays NaN. Static synapses keep the low 16 bits of the
    integer like sPyNNaker's ``& 0xFFFF``; for ``plastic=True`` the integer is
    clipped to uint16 (sPyNNaker's ``astype(uint16)`` is undefined beyond it).
    """
    if (ring_buffer_shift is None) == (max_summed_weight is None):
        raise ValueError("give exactly one of ring_buffer_shift or max_summed_weight")
    shift = (int(ring_buffer_shift) if ring_buffer_shift is not None
             else ring_buffer_left_shift(max_summed_weight))
    scale = spinnaker_weight_scale(shift, global_weight_scale)
    w = np.asarray(weights, dtype=np.float64)
    finite = np.isfinite(w)
    scaled = np.rint(np.abs(np.where(finite, w, 0.0)) * scale)
    if plastic:
        encoded = np.clip(scaled, 0, 0xFFFF)
    else:
        encoded = (scaled.astype(np.uint64) & 0xFFFF).astype(np.float64)
    out = np.copysign(encoded / scale, w)
    return np.where(finite, out, w)


def spinnaker_stdp_amplitudes(stdp: STDPRule | None) -> STDPRule | None:
    """The rule to give sPyNNaker so that it learns what PyNN's rule means.

    PyNN (and pyNN.nest, pyNN.brian2) take the additive ``A_plus``/``A_minus`` as
    fractions of ``w_max``: a pair moves the weight by ``A * w_max``. sPyNNaker
    7.4.1's ``WeightDependenceAdditive.write_parameters`` writes
    ``A_plus * global_weight_scale`` (no ``w_max``, although its comment says
    "Pre-multiply A+ and A- by Wmax" and the triplet rule does), so on the board
    the step would be ``A`` nA. Pre-multiplying here restores PyNN's meaning. The
    multiplicative rule writes ``A`` unscaled, as PyNN means it: unchanged.
    """
    if stdp is None or stdp.weight_dependence != "additive":
        return stdp
    return replace(stdp, a_plus=stdp.a_plus * stdp.w_max, a_minus=stdp.a_minus * stdp.w_max)


def plastic_weight_step_on_board(max_input_na: float) -> float:
    """The 16-bit step (nA) of plastic weights into a population given
    ``max_expected_summed_weight`` = ``max_input_na`` (excitatory); sPyNNaker
    truncates each plastic weight to a multiple of it after every presynaptic
    spike. The grid of :func:`plastic_weights_on_board`.
    """
    return 1.0 / spinnaker_weight_scale(ring_buffer_left_shift(max_input_na))


def board_training_options() -> dict:
    """The keyword arguments of :func:`~spinnconv.training.train_conv_layer` that
    make a software backend store and update the patch network's plastic weights
    as sPyNNaker does (``--emulate-spinnaker``)."""
    return {"board_weights": plastic_weights_on_board,
            "board_weight_step": plastic_weight_step_on_board}


def plastic_weights_on_board(weights_na: np.ndarray, max_input_na: float) -> np.ndarray:
    """Plastic (STDP) weights as sPyNNaker stores them in a population whose
    excitatory ``max_expected_summed_weight`` is ``max_input_na``.

    That population parameter fixes the ring-buffer shift (training passes it:
    ``SpiNNakerBackend.population``); weights are clipped to uint16 as
    ``SynapseDynamicsSTDP.get_plastic_synaptic_data`` stores them.
    """
    return quantise_weights_like_spinnaker(np.asarray(weights_na, dtype=np.float64),
                                           max_summed_weight=max_input_na, plastic=True)


# -- the backend ----------------------------------------------------------------
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
        """Ping the board / spalloc server, then ``sim.setup`` on the private config."""
        if self.host is not None:
            check_reachable(self.host, self.reachable_timeout_s)
        elif self.spalloc_server is not None:
            check_reachable(spalloc_server=self.spalloc_server,
                            timeout_s=self.reachable_timeout_s)
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

    def weights(self, projection) -> np.ndarray:
        """Dense ``(n_pre, n_post)`` weights read back with ``Projection.get`` (16-bit values)."""
        holder = projection.get("weight", format="array", with_address=False)
        return np.abs(np.array(holder, dtype=np.float64))

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
        """Cores, chips, SDRAM and routing entries per named group of populations.

        Call after ``run`` (which maps: placement, routing, key allocation; on a
        virtual board that is all it does); sPyNNaker 7.4.1 keeps the mapping
        readable after ``end`` too, until the next ``setup``. ``populations`` maps a row label to a Population or a list of
        them. Returns ``{"rows": [...], "total": {...}, "machine": {...}}``; each row
        has ``label, populations, neurons, cores, chips, sdram_bytes,
        routing_entries, delay_cores``. ``total`` sums the rows (``chips`` counts
        distinct chips); ``machine`` counts everything placed, including
        sPyNNaker's system cores (extra monitors, gatherers).

        Sources: ``FecDataView.get_placement_of_vertex`` for each machine vertex of
        the population's application vertex (and of its ``DelayExtensionVertex``),
        ``MachineVertex.sdram_required.get_total_sdram(get_plan_n_timestep())``
        (what the placer reserved), and the entries of
        ``FecDataView.get_uncompressed()`` whose key matches one of the group's
        ``FecDataView.get_routing_infos()`` key/masks (the routes *from* the group,
        on every chip they pass, before compression).
        """
        from spinn_front_end_common.data import FecDataView
        from spinn_utilities.exceptions import SpiNNUtilsException
        from spynnaker.pyNN.models.utility_models.delays import DelayExtensionVertex

        try:
            n_placements = FecDataView.get_n_placements()
            plan_n = FecDataView.get_plan_n_timestep()
            tables = FecDataView.get_uncompressed()
            routing_infos = FecDataView.get_routing_infos()
        except SpiNNUtilsException as err:  # DataNotYetAvialable, ShutdownException, ...
            raise RuntimeFailure(f"no SpiNNaker mapping to report on ({err.__class__.__name__}:"
                                 f" {err}); call run() first") from None

        groups: dict[str, list] = {}
        owner: dict[Any, int] = {}  # application vertex -> row index
        delay_vertices: set = set()
        for row, (label, pops) in enumerate(populations.items()):
            pops = list(pops) if isinstance(pops, (list, tuple)) else [pops]
            groups[str(label)] = pops
            for pop in pops:
                if pop._vertex in owner:
                    raise UsageError(f"population {pop.label!r} is in two resource rows")
                owner[pop._vertex] = row
        for vertex in FecDataView.iterate_vertices():
            if isinstance(vertex, DelayExtensionVertex) and vertex.source_vertex in owner:
                owner[vertex] = owner[vertex.source_vertex]
                delay_vertices.add(vertex)

        n_rows = len(groups)
        cores, delay_cores = [0] * n_rows, [0] * n_rows
        sdram = [0] * n_rows
        chips: list[set] = [set() for _ in range(n_rows)]
        for app_vertex, row in owner.items():
            for m_vertex in app_vertex.machine_vertices:
                placement = FecDataView.get_placement_of_vertex(m_vertex)
                cores[row] += 1
                delay_cores[row] += app_vertex in delay_vertices
                chips[row].add((placement.x, placement.y))
                sdram[row] += int(m_vertex.sdram_required.get_total_sdram(plan_n))

        # key/mask of every partition sent by a row's vertices
        keys, masks, rows = [], [], []
        for info in routing_infos:
            vertex = info.vertex
            app_vertex = getattr(vertex, "app_vertex", None) or vertex
            row = owner.get(vertex, owner.get(app_vertex))
            if row is not None:
                keys.append(info.key)
                masks.append(info.mask)
                rows.append(row)
        entries = [0] * n_rows
        total_entries, max_entries = 0, 0
        key_arr = np.array(keys, dtype=np.uint64)
        mask_arr = np.array(masks, dtype=np.uint64)
        row_arr = np.array(rows, dtype=np.int64)
        for table in tables.routing_tables:
            table_entries = list(table.multicast_routing_entries)
            total_entries += len(table_entries)
            max_entries = max(max_entries, len(table_entries))
            if not table_entries or not keys:
                continue
            entry_keys = np.array([e.key for e in table_entries], dtype=np.uint64)
            match = (entry_keys[:, None] & mask_arr[None, :]) == key_arr[None, :]
            hit = match.any(axis=1)
            first = np.argmax(match, axis=1)
            for row in row_arr[first[hit]]:
                entries[int(row)] += 1

        out_rows = []
        for row, (label, pops) in enumerate(groups.items()):
            out_rows.append({
                "label": label,
                "populations": [p.label for p in pops],
                "neurons": int(sum(p.size for p in pops)),
                "cores": cores[row],
                "delay_cores": delay_cores[row],
                "chips": len(chips[row]),
                "sdram_bytes": sdram[row],
                "routing_entries": entries[row],
            })
        total = {
            "label": "total",
            "neurons": sum(r["neurons"] for r in out_rows),
            "cores": sum(cores),
            "delay_cores": sum(delay_cores),
            "chips": len(set().union(*chips)) if chips else 0,
            "sdram_bytes": sum(sdram),
            "routing_entries": sum(entries),
        }
        machine = {
            "board": (f"virtual SpiNN-{self.virtual_board}" if self.is_virtual
                      else self.host or self.spalloc_server),
            "chips_available": FecDataView.get_machine().n_chips,
            "cores_placed": int(n_placements),
            "chips_used": len({(p.x, p.y) for p in FecDataView.iterate_placemements()}),
            "routing_entries": total_entries,
            "max_routing_entries_per_chip": max_entries,
            "plan_n_timesteps": plan_n,
        }
        return {"rows": out_rows, "total": total, "machine": machine}


def format_resource_report(report: dict) -> str:
    """A fixed-width text table of :meth:`SpiNNakerBackend.resource_report`."""
    columns = ["label", "neurons", "cores", "delay_cores", "chips", "sdram_bytes",
               "routing_entries"]
    lines = [[str(row[c]) for c in columns] for row in [*report["rows"], report["total"]]]
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(columns)]

    def fmt(cells):
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(fmt(columns))
    machine = report.get("machine", {})
    tail = ", ".join(f"{k}={v}" for k, v in machine.items())
    return "\n".join([fmt(columns), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1]),
                      f"machine: {tail}"])
