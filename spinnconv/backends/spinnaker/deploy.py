"""Map a trained network onto SpiNNaker and report what it takes, or why it does not fit.

:func:`deploy` builds the inference network exactly as testing builds it, lets
sPyNNaker map it (partitioning, placement, routing, key allocation, data
specifications) on the chosen machine by running it for a few milliseconds, and
reads every number of the report from sPyNNaker's own placements and routing
tables (:meth:`SpiNNakerBackend.resource_report`). A virtual board needs no
hardware: it maps and generates everything, it only does not execute.

Two ways to put a conv layer on SpiNNaker (``conv_mode``):

``"fromlist"``
    What testing builds (:func:`spinnconv.network.build_network`): one
    ``IF_curr_exp`` population per layer and ``FromListConnector`` projections
    (conv feed-forward, lateral inhibition between maps, pooling). The host
    expands every synapse into synaptic matrices in SDRAM.

``"native"``
    sPyNNaker's local-only convolution (``sim.ConvolutionConnector`` with the
    ``sim.Convolution()`` synapse type, sPyNNaker 7.4.1): one ``Grid2D``
    population per feature map (the channel-major layout makes map ``c`` the
    contiguous slice ``[c*H*W, (c+1)*H*W)``, and sPyNNaker's 2-D raster order
    ``y*W + x`` is the same as ours), one projection per (input map, output map)
    holding the shared 2-D kernel, weights kept in DTCM instead of synaptic
    matrices. What it supports and how it is used here:

    * **Kernels** are applied as a true convolution (the core indexes the kernel
      with ``kernel.height - 1 - i``, ``neural_modelling/src/neuron/local_only/
      local_only_conv_impl.c``); spinnconv's layers are cross-correlations, so
      each kernel is passed flipped in both axes. Only square kernels are used
      (for non-square ones sPyNNaker pairs ``kernel_weights.shape[0]`` with the
      x axis in ``get_post_shape`` but reads the flat weights row-major in y, and
      that cannot be checked without hardware). Strides and zero padding are
      supported when sPyNNaker's output shape ``(size - (k - 1) + 2 p) // s``
      equals ours ``(size + 2 p - k) // s + 1`` (always for stride 1).
    * **Signed weights**: positive kernel entries go to ``excitatory``,
      negative ones to ``inhibitory`` (``positive/negative_receptor_type``).
    * **Pooling** is the connector's ``pool_shape``/``pool_stride``: a source
      at ``(x, y)`` is mapped to ``(x // stride, y // stride)``, so only
      non-overlapping windows (``pool_shape == stride``, square) are native.
      The connector divides the kernel by the window size (average pooling);
      we pass ``pool_weight_na * ph * pw`` as a 1×1 kernel so that every spike
      adds ``pool_weight_na`` as in the FromList net. ``PoolDenseConnector`` /
      ``sim.PoolDense()`` is a *dense* layer after pooling (every pooled source
      to every target), not spatial pooling per map, so it is not used.
    * **Lateral inhibition** has no 3-D/cross-map connector, but it is
      expressible as a 1×1 convolution with weight ``-lateral_inhibition_na``
      from every map to every other map (``native_lateral="conv"``, the
      default: ``N (N - 1)`` projections, each an extra source every map core
      looks spikes up in); ``native_lateral="drop"`` leaves it out (the
      report notes it). A population with a local-only synapse type accepts
      only projections of that type (``LocalOnlyConvolution.merge``), so a
      FromList inhibition cannot be mixed in.
    * **Static weights and uniform delays only**: ``ConvolutionConnector``
      refuses anything but one float delay, and there is no plastic local-only
      convolution; ``Projection.get`` cannot read local-only weights back.
    * **Cores**: a 2-D population is split into rectangles whose sides divide
      the map's sides (pacman checks that); :func:`native_atoms_per_core` picks
      the rectangle of at most ``native_atoms_per_core`` neurons (default 256,
      sPyNNaker's default for ``IF_curr_exp`` with synaptic matrices; the
      local-only limit, 2048, would not fit the neuron state and ring buffers
      in DTCM) with the fewest cores, and sets it with
      ``Population.set_max_atoms_per_core((w, h))``. A source takes a whole
      input channel per core (sPyNNaker's FromList input also uses one core).
    * **Saturation**: sPyNNaker sizes a local-only ring buffer for one spike
      per source per tick (``get_n_connections_to_post_vertex_maximum`` =
      kernel size), so several spikes of one pooling window in the same time
      step can saturate the 16-bit ring buffer where the FromList net would
      sum them.

``"auto"``
    Maps both and keeps the one that fits with fewer cores (FromList on a
    tie: it is exactly what testing runs); the report carries both.

Failures (the model does not fit, a delay sPyNNaker cannot make, a row too
long, a layer native mode cannot express, ...) raise
:class:`~spinnconv.errors.RuntimeFailure` with one line naming the layer and the
reason (:func:`translate_spinnaker_error`). sPyNNaker is always ended.

:func:`spinnaker_weight_quantiser` gives the kernels as the board stores them
(16-bit fixed point with the ring-buffer shift sPyNNaker picks per population
and receptor), so a software backend can run "as the board would".
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import network
from .backends.base import Connections, STDPRule
from .backends.spinnaker import (
    SpiNNakerBackend,
    max_summed_weight_equal_delays,
    quantise_weights_like_spinnaker,
    ring_buffer_left_shift,
)
from .errors import RuntimeFailure, UsageError
from .model import ConvLayer, PoolLayer, SequentialModel
from .spinnaker_machine import check_reachable

__all__ = [
    "CONV_MODES",
    "build_native_network",
    "deploy",
    "format_report",
    "native_atoms_per_core",
    "native_problems",
    "probe_spike_times",
    "spinnaker_quantisation",
    "spinnaker_weight_quantiser",
    "translate_spinnaker_error",
]

CONV_MODES = ("fromlist", "native", "auto")
NATIVE_LATERAL = ("conv", "drop")
#: ``[Simulation] spikes_per_second`` of sPyNNaker's default cfg: the rate assumed for
#: sources that do not declare a maximum (``_Stats.__pre_spike_stats``)
SPYNNAKER_SPIKES_PER_SECOND = 30.0
#: sPyNNaker's default neurons per core for ``IF_curr_exp`` with synaptic matrices
DEFAULT_NATIVE_ATOMS_PER_CORE = 256
_MACHINE_KEYS = ("virtual_board", "host", "spalloc_server", "n_boards", "reachable_timeout_s")
_TOKEN = re.compile(r"[A-Za-z0-9_]+")


# -- labels ---------------------------------------------------------------------------
def layer_label(model: SequentialModel, position: int) -> str:
    """The population label testing gives ``model.layers[position]`` (``layer1_conv``)."""
    return f"layer{position + 1}_{model.layers[position].kind}"


def probe_spike_times(n: int, timestep_ms: float = 1.0) -> list[np.ndarray]:
    """A few input spikes for a mapping run: one spike in every ``k``-th neuron, spread
    over 8 time steps from ``2 * timestep_ms`` (at most ~50 per step, under
    sPyNNaker's "too many spikes at the same time" warning)."""
    every = max(3, math.ceil(int(n) / 400))
    return [np.array([(2 + (i // every) % 8) * timestep_ms]) if i % every == 0
            else np.zeros(0) for i in range(int(n))]


# -- checks -----------------------------------------------------------------------------
def _check_kernels(model: SequentialModel, kernels_na: dict[int, np.ndarray], upto: int) -> None:
    """``UsageError`` unless every conv layer has finite, non-negative kernels of its shape."""
    for position in range(upto):
        layer = model.layers[position]
        if not isinstance(layer, ConvLayer):
            continue
        if position not in kernels_na:
            raise UsageError(f"no kernels for {layer_label(model, position)} "
                             f"(kernels_na[{position}])")
        kernels = np.asarray(kernels_na[position])
        channels = model.input_shape_of(position)[2]
        expect = (layer.n_kernels, *layer.kernel_shape, channels)
        if kernels.shape != expect:
            raise UsageError(f"kernels of {layer_label(model, position)} have shape "
                             f"{kernels.shape}, expected {expect}")
        if not np.all(np.isfinite(kernels)) or np.any(kernels < 0):
            raise UsageError(f"kernels of {layer_label(model, position)} must be finite "
                             "and >= 0 (nA)")


def _machine_options(machine: dict) -> dict:
    """The checked machine options (``None`` values dropped); ``UsageError`` otherwise."""
    if not isinstance(machine, dict):
        raise UsageError(f"machine must be a dict, got {type(machine).__name__}")
    unknown = sorted(set(machine) - set(_MACHINE_KEYS))
    if unknown:
        raise UsageError(f"unknown machine option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(_MACHINE_KEYS)}")
    options = {k: v for k, v in machine.items() if v is not None}
    n_boards = options.get("n_boards")
    if n_boards is not None and (isinstance(n_boards, bool) or not isinstance(n_boards, int)
                                 or n_boards < 1):
        raise UsageError(f"machine n_boards must be an integer >= 1, got {n_boards!r}")
    if n_boards is not None and "host" in options:
        raise UsageError("machine n_boards applies to virtual boards and spalloc only")
    return options


def _describe_machine(options: dict) -> str:
    """``virtual SpiNN-5 x1``, ``board <host>`` or ``spalloc <url>``."""
    if "virtual_board" in options:
        boards = options.get("n_boards", 1)
        return f"virtual SpiNN-{options['virtual_board']} x{boards}"
    if "host" in options:
        return f"board {options['host']}"
    if "spalloc_server" in options:
        return f"spalloc {options['spalloc_server']}"
    return "virtual SpiNN-5 x1"


# -- the backend used for mapping --------------------------------------------------------
class _MappingBackend(SpiNNakerBackend):
    """:class:`SpiNNakerBackend` that pins a virtual machine to ``n_boards`` boards and
    remembers which layer it is building (to name it when sPyNNaker refuses it).

    Without ``n_boards_required`` a virtual board grows to whatever the network
    needs (``virtual_machine_generator`` sizes it by ``n_chips_needed``), so
    "does not fit" could never happen on a virtual SpiNN-5.
    """

    def __init__(self, options: dict, work_dir: Path):
        """``options`` as checked by :func:`_machine_options`."""
        self.pin_boards = int(options.get("n_boards", 1))
        super().__init__(virtual_board=options.get("virtual_board"), host=options.get("host"),
                         spalloc_server=options.get("spalloc_server"), work_dir=work_dir,
                         n_boards=options.get("n_boards"),
                         reachable_timeout_s=options.get("reachable_timeout_s", 3.0))
        self.building = ""

    def setup_options(self, seed: int) -> dict:
        """``n_boards_required`` pins a virtual machine's size (spalloc: as the base)."""
        if self.is_virtual:
            return {"n_boards_required": self.pin_boards}
        return super().setup_options(seed)

    def spike_source(self, spike_times: list[np.ndarray], label: str) -> Any:
        """As the base, remembering ``label``."""
        self.building = label
        return super().spike_source(spike_times, label)

    def population(self, n: int, cell_params: dict, label: str,
                   max_input_na: tuple[float, float] | None = None) -> Any:
        """As the base, remembering ``label``."""
        self.building = label
        return super().population(n, cell_params, label, max_input_na)

    def connect(self, pre: Any, post: Any, connections: Connections,
                receptor: str = "excitatory", stdp: STDPRule | None = None,
                label: str = "") -> Any:
        """As the base, remembering ``label``."""
        self.building = label or self.building
        return super().connect(pre, post, connections, receptor=receptor, stdp=stdp,
                               label=label)


# -- native mode ------------------------------------------------------------------------
@functools.cache
def _exact_grid_class() -> type:
    """A ``pyNN.space.Grid2D`` whose size is exactly the ``width × height`` it was given.

    ``Grid2D.calculate_size`` derives the shape from a float aspect ratio and
    can reject e.g. 28 × 27 through rounding; sPyNNaker only calls
    ``calculate_size`` (``PopulationVertex.atoms_shape`` → ``(width, height)``).
    """
    from pyNN.space import Grid2D

    class ExactGrid2D(Grid2D):
        """``Grid2D`` of exactly ``width × height`` points."""

        def __init__(self, width: int, height: int):
            super().__init__(aspect_ratio=width / height)
            self.exact_shape = (int(width), int(height))

        def calculate_size(self, n: int) -> tuple[int, int]:
            """``(width, height)``; ``ValueError`` if ``n`` is not their product."""
            width, height = self.exact_shape
            if int(n) != width * height:
                raise ValueError(f"a {width}x{height} grid has {width * height} points, "
                                 f"not {n}")
            return width, height

    return ExactGrid2D


def _grid(width: int, height: int) -> Any:
    """``Grid2D`` structure of a ``width × height`` map (x fastest, like spinnconv)."""
    return _exact_grid_class()(width, height)


def _mark(backend: Any, label: str) -> None:
    """Remember the layer being built (named in the error if sPyNNaker refuses it)."""
    backend.building = label


def native_atoms_per_core(width: int, height: int, max_atoms: int) -> tuple[int, int]:
    """``(w, h)`` per core for a ``width × height`` map: sides dividing the map's sides
    (pacman requires it), ``w * h <= max_atoms``, fewest cores, then the squarest."""
    best: tuple[tuple[int, int], tuple[int, int]] | None = None
    for w in (d for d in range(1, width + 1) if width % d == 0):
        fitting = [d for d in range(1, height + 1) if height % d == 0 and w * d <= max_atoms]
        if not fitting:
            continue
        h = max(fitting)
        key = ((width // w) * (height // h), abs(w - h))
        if best is None or key < best[0]:
            best = (key, (w, h))
    if best is None:
        raise UsageError(f"native_atoms_per_core must be >= 1, got {max_atoms}")
    return best[1]


def _spynnaker_conv_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """``ConvolutionConnector.get_post_shape`` along one axis."""
    return max(1, (size - (kernel - 1) + 2 * padding) // stride)


def native_problems(model: SequentialModel, upto: int | None = None) -> list[str]:
    """Why layers cannot be built natively, one ``"<layer>: <reason>"`` each (empty: all can)."""
    upto = len(model.spiking_layers) if upto is None else upto
    problems = []
    for position in range(upto):
        layer = model.layers[position]
        label = layer_label(model, position)
        height, width, _ = model.input_shape_of(position)
        out_h, out_w, _ = model.output_shape_of(position)
        if isinstance(layer, ConvLayer):
            kh, kw = layer.kernel_shape
            if kh != kw:
                problems.append(f"{label}: native convolution is used with square kernels "
                                f"only, kernel is {kh}x{kw}")
                continue
            theirs = (_spynnaker_conv_size(height, kh, layer.stride, layer.padding),
                      _spynnaker_conv_size(width, kw, layer.stride, layer.padding))
            if theirs != (out_h, out_w):
                problems.append(
                    f"{label}: sPyNNaker's ConvolutionConnector makes a {theirs[0]}x{theirs[1]} "
                    f"output with stride {layer.stride}, the model has {out_h}x{out_w}")
        elif isinstance(layer, PoolLayer):
            ph, pw = layer.pool_shape
            if not ph == pw == layer.stride:
                problems.append(f"{label}: native pooling needs a square window equal to the "
                                f"stride, pool is {ph}x{pw} stride {layer.stride}")
    return problems


def build_native_network(backend: SpiNNakerBackend, model: SequentialModel,
                         kernels_na: dict[int, np.ndarray], params: dict,
                         source_times: list[np.ndarray], upto: int,
                         atoms_per_core: int = DEFAULT_NATIVE_ATOMS_PER_CORE,
                         lateral: str = "conv",
                         notes: list[str] | None = None) -> tuple[dict[str, list], list]:
    """The network of ``model.layers[:upto]`` with sPyNNaker's local-only convolution.

    Per input channel a ``SpikeSourceArray`` ``Grid2D`` population (``input_c<c>``),
    per layer and feature map an ``IF_curr_exp`` ``Grid2D`` population
    (``layer1_conv_map<n>``), per (input map, output map) a
    ``ConvolutionConnector`` projection with the flipped kernel, lateral
    inhibition as 1×1 projections with a negative weight (``lateral="conv"``)
    or left out (``"drop"``, noted in ``notes``), pooling through the
    connector's ``pool_shape``/``pool_stride``. Call :func:`native_problems`
    first. Returns ``({row label: [populations]}, output populations)``.
    """
    notes = [] if notes is None else notes
    sim = backend.sim
    delay = float(params["synapse_delay_ms"])
    height, width, channels = model.input_shape
    _mark(backend, "input")
    previous = []
    for c in range(channels):
        times = source_times[c * height * width:(c + 1) * height * width]
        previous.append(sim.Population(
            height * width, sim.SpikeSourceArray(spike_times=times),
            structure=_grid(width, height), label=f"input_c{c}"))
        # a 2-D population needs a per-dimension maximum; a source takes a whole map
        previous[-1].set_max_atoms_per_core((width, height))
    groups = {"input": previous}
    dropped: list[str] = []
    lateral_done: list[str] = []
    for position in range(upto):
        layer = model.layers[position]
        label = layer_label(model, position)
        _mark(backend, label)
        out_h, out_w, out_c = model.output_shape_of(position)
        per_core = native_atoms_per_core(out_w, out_h, atoms_per_core)
        maps = []
        for n in range(out_c):
            population = sim.Population(out_h * out_w, sim.IF_curr_exp(**params["neuron"]),
                                        structure=_grid(out_w, out_h),
                                        label=f"{label}_map{n}")
            population.set_max_atoms_per_core(per_core)
            maps.append(population)
        if isinstance(layer, ConvLayer):
            kernels = np.asarray(kernels_na[position], dtype=np.float64)
            for n in range(out_c):
                for c, source in enumerate(previous):
                    kernel = kernels[n, :, :, c]
                    if not np.any(kernel > 0):
                        continue  # FromList leaves zero weights out too
                    connector = sim.ConvolutionConnector(
                        np.ascontiguousarray(kernel[::-1, ::-1]), strides=layer.stride,
                        padding=layer.padding)
                    sim.Projection(source, maps[n], connector, sim.Convolution(delay=delay),
                                   label=f"{label}_feedforward_c{c}_m{n}")
            inhibition = float(params["lateral_inhibition_na"])
            if layer.lateral_inhibition and out_c > 1 and inhibition > 0:
                if lateral == "conv":
                    for n in range(out_c):
                        for m in range(out_c):
                            if n != m:
                                sim.Projection(maps[n], maps[m],
                                               sim.ConvolutionConnector([[-inhibition]]),
                                               sim.Convolution(delay=delay),
                                               label=f"{label}_lateral_m{n}_m{m}")
                    lateral_done.append(f"{label} {out_c * (out_c - 1)}")
                else:
                    dropped.append(label)
        else:
            assert isinstance(layer, PoolLayer)
            ph, pw = layer.pool_shape
            weight = float(params["pool_weight_na"]) * ph * pw  # the connector divides by ph*pw
            for c in range(out_c):
                connector = sim.ConvolutionConnector([[weight]], pool_shape=(pw, ph),
                                                     pool_stride=layer.stride)
                sim.Projection(previous[c], maps[c], connector, sim.Convolution(delay=delay),
                               label=f"{label}_feedforward_c{c}")
        groups[label] = maps
        previous = maps
    if dropped:
        notes.append("lateral inhibition left out (native_lateral='drop') in "
                     + ", ".join(dropped))
    if lateral_done:
        notes.append("lateral inhibition as 1x1 convolution projections between every pair "
                     "of maps: " + ", ".join(lateral_done))
    return groups, previous


# -- translating sPyNNaker's failures ---------------------------------------------------------
def _exception_classes() -> dict[str, tuple[type, ...]]:
    """sPyNNaker/pacman exception classes by what they mean for the user."""
    classes: dict[str, list[type]] = {"fit": [], "routing": [], "row": [], "delay": [],
                                      "machine": [], "unsupported": []}
    with contextlib.suppress(ImportError):
        from pacman.exceptions import (
            MinimisationFailedError,
            PacmanElementAllocationException,
            PacmanException,
            PacmanPlaceException,
            PacmanRouteInfoAllocationException,
            PacmanRoutingException,
            PacmanTooBigToPlace,
        )
        classes["fit"] += [PacmanPlaceException, PacmanTooBigToPlace]
        classes["routing"] += [MinimisationFailedError, PacmanRoutingException,
                               PacmanRouteInfoAllocationException,
                               PacmanElementAllocationException]
        classes["unsupported"] += [PacmanException]
    with contextlib.suppress(ImportError):
        from spynnaker.pyNN.exceptions import (
            DelayExtensionException,
            SpynnakerException,
            SynapseRowTooBigException,
        )
        classes["row"] += [SynapseRowTooBigException]
        classes["delay"] += [DelayExtensionException]
        classes["unsupported"] += [SpynnakerException]
    with contextlib.suppress(ImportError):
        from spinn_front_end_common.utilities.exceptions import SpinnFrontEndException

        classes["unsupported"] += [SpinnFrontEndException]
    with contextlib.suppress(ImportError):
        from spinn_machine.exceptions import SpinnMachineException

        classes["machine"] += [SpinnMachineException]
    with contextlib.suppress(ImportError):
        from pyNN.errors import (
            InvalidModelError,
            InvalidParameterValueError,
            NonExistentParameterError,
        )
        classes["unsupported"] += [InvalidModelError, InvalidParameterValueError,
                                   NonExistentParameterError]
    classes["unsupported"] += [NotImplementedError]
    return {kind: tuple(found) for kind, found in classes.items()}


_REASONS = {
    "fit": "does not fit on the machine (cores/SDRAM)",
    "routing": "routing tables or keys do not fit",
    "row": "a synaptic row is too long",
    "delay": "delay out of range",
    "machine": "machine not available",
    "unsupported": "not supported by sPyNNaker",
    "other": "sPyNNaker failed",
}


def _layer_in(message: str, layers: list[str], last: bool = False) -> str | None:
    """The layer whose label (or a label starting with ``<layer>_``) appears in ``message``."""
    found = []
    for token in _TOKEN.findall(message):
        for layer in layers:
            if token == layer or token.startswith(layer + "_"):
                found.append(layer)
    if not found:
        return None
    named = [layer for layer in found if layer != "input"] or found  # "input" is a word too
    return named[-1] if last else named[0]


def _raised_in_spinnaker(error: BaseException) -> bool:
    """Whether the innermost frame of ``error`` is sPyNNaker's, pacman's or spinn_*'s code."""
    tb = error.__traceback__
    filename = ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    parts = Path(filename).parts
    return any(part in ("spynnaker", "pacman") or part.startswith("spinn_") for part in parts)


def _one_line(text: str, limit: int = 240) -> str:
    """``text`` on one line, without sPyNNaker's report path, at most ``limit`` chars."""
    text = " ".join(str(text).split())
    text = text.split(" Report written to ")[0]
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def translate_spinnaker_error(error: BaseException, layers: list[str], *,
                              building: str | None = None, context: str = "",
                              extra: str = "") -> str:
    """One line for a sPyNNaker/pacman exception: the layer, the reason, the original.

    ``layers`` are the row labels (``input``, ``layer1_conv``, ...); the layer is
    the one whose label the message names (sPyNNaker names vertices and edges by
    their labels), else ``building`` (the layer being built when it was raised).
    """
    kind = "other"
    for name, classes in _exception_classes().items():
        if classes and isinstance(error, classes):
            kind = name
            break
    if kind == "other" and isinstance(error, (ValueError, TypeError)) and _raised_in_spinnaker(
            error):
        kind = "unsupported"
    message = str(error)
    layer = _layer_in(message, layers, last=(kind == "row"))
    if layer is None and building:
        layer = _layer_in(building, layers) or building
    where = layer or "the network (no layer named by sPyNNaker)"
    reason = _REASONS[kind] + (f" ({extra})" if extra else "")
    prefix = f"SpiNNaker mapping{f' ({context})' if context else ''} failed at {where}: "
    return _one_line(prefix + f"{reason} [{type(error).__name__}: {_one_line(message, 200)}]",
                     limit=480)


def _cores_needed(groups: dict[str, list]) -> str:
    """``"needs N cores (layer: n, ...)"`` from sPyNNaker's partitioning, if it got that far."""
    try:
        from spinn_front_end_common.data import FecDataView
        from spynnaker.pyNN.models.utility_models.delays import DelayExtensionVertex

        owner = {pop._vertex: label for label, pops in groups.items() for pop in pops}
        per_row = dict.fromkeys(groups, 0)
        for vertex in FecDataView.iterate_vertices():
            source = vertex.source_vertex if isinstance(vertex, DelayExtensionVertex) else vertex
            if source in owner:
                per_row[owner[source]] += len(list(vertex.machine_vertices))
        total = sum(per_row.values())
        if total == 0:
            return ""
        machine = FecDataView.get_machine()
        top = sorted(per_row.items(), key=lambda item: -item[1])[:3]
        return (f"needs {total} cores: " + ", ".join(f"{k} {v}" for k, v in top)
                + f"; machine has {machine.n_chips} chips, "
                f"{machine.total_available_user_cores} cores incl. system ones")
    except Exception:  # noqa: BLE001 -- best effort detail for an error message
        return ""


# -- one mapping run ------------------------------------------------------------------------
@contextlib.contextmanager
def _spynnaker_progress(log_file: Path | None) -> Iterator[None]:
    """Keep sPyNNaker's progress bars (``ProgressBar`` prints to ``sys.stderr``) out of the
    terminal and append them to ``log_file`` (``None``: leave them).

    Only wrap ``run``: logging handlers that sPyNNaker creates in ``setup`` bind
    the current ``sys.stderr`` and must not keep a redirected stream.
    """
    if log_file is None:
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        with contextlib.suppress(OSError):
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(log_file, "a", encoding="utf-8") as stream:
                stream.write(buffer.getvalue())


def _row(label: str, shape: tuple[int, ...], raw: dict) -> dict:
    """A report row from a :meth:`SpiNNakerBackend.resource_report` row."""
    return {
        "layer": label,
        "shape": list(shape),
        "populations": len(raw["populations"]),
        "neurons": raw["neurons"],
        "cores": raw["cores"],
        "delay_cores": raw["delay_cores"],
        "chips": raw["chips"],
        "sdram_bytes": raw["sdram_bytes"],
        "routing_entries": raw["routing_entries"],
    }


def _map_once(model: SequentialModel, kernels_na: dict[int, np.ndarray], params: dict,
              options: dict, work_dir: Path, mode: str, *, native_lateral: str,
              atoms_per_core: int, run_ms: float, quiet: bool) -> dict:
    """Build, map and report one ``mode``; sPyNNaker is ended whatever happens."""
    upto = len(model.spiking_layers)
    layers = ["input"] + [layer_label(model, p) for p in range(upto)]
    shapes = [model.input_shape] + [model.output_shape_of(p) for p in range(upto)]
    context = f"{mode}, {_describe_machine(options)}"
    notes: list[str] = []
    if mode == "native":
        problems = native_problems(model, upto)
        if problems:
            layer, _, reason = problems[0].partition(": ")
            raise RuntimeFailure(f"SpiNNaker mapping ({context}) failed at {layer}: not "
                                 f"expressible natively ({reason}); use conv_mode "
                                 "'fromlist'")
    backend = _MappingBackend(options, work_dir)
    source_times = probe_spike_times(int(np.prod(model.input_shape)), params["timestep_ms"])
    groups: dict[str, list] = {}
    started = time.perf_counter()
    log_file = work_dir / "spynnaker_progress.log" if quiet else None
    backend.setup(params["timestep_ms"], params["seed"])  # fails fast when unreachable
    try:
        if mode == "fromlist":
            populations = network.build_network(backend, model, kernels_na, params,
                                                source_times, upto)
            groups = {label: [pop] for label, pop in zip(layers, populations)}
            outputs = [populations[-1]]
        else:
            groups, outputs = build_native_network(backend, model, kernels_na, params,
                                                   source_times, upto, atoms_per_core,
                                                   native_lateral, notes)
        backend.building = ""
        for population in outputs:  # testing records the last layer
            backend.record(population)
        with _spynnaker_progress(log_file):
            backend.run(float(run_ms))
        raw = backend.resource_report(groups)
        raw["machine"].update(_machine_capacity())
    except RuntimeFailure:
        raise
    except Exception as err:  # noqa: BLE001 -- every sPyNNaker failure becomes one line
        extra = ""
        if isinstance(err, _exception_classes()["fit"]):
            extra = _cores_needed(groups)
        raise RuntimeFailure(translate_spinnaker_error(
            err, layers, building=backend.building or None, context=context,
            extra=extra)) from None
    finally:
        _end(backend)
    seconds = time.perf_counter() - started
    rows = [_row(label, shape, raw_row)
            for label, shape, raw_row in zip(layers, shapes, raw["rows"])]
    total = {key: sum(row[key] for row in rows)
             for key in ("populations", "neurons", "cores", "delay_cores", "sdram_bytes",
                         "routing_entries")}
    total["chips"] = raw["total"]["chips"]  # distinct chips, not a sum
    total["layer"] = "total"
    if mode == "native":
        notes.append(f"native: kernels flipped for sPyNNaker's convolution, at most "
                     f"{atoms_per_core} neurons per core, pooling may saturate the ring "
                     "buffer when a window spikes more than once per time step")
    return {
        "conv_mode": mode,
        "rows": rows,
        "total": total,
        "machine": {"description": _describe_machine(options), **raw["machine"]},
        "seconds": seconds,
        "notes": notes,
        "work_dir": str(work_dir),
    }


def _end(backend: _MappingBackend) -> None:
    """``sim.end()`` unless sPyNNaker already shut down (it does when a run fails)."""
    with contextlib.suppress(Exception):
        from spinn_utilities.data import UtilsDataView

        if UtilsDataView.is_shutdown():
            return
    with contextlib.suppress(Exception):
        backend.end()


def _machine_capacity() -> dict:
    """Cores of the mapped machine that applications may use (incl. system cores)."""
    from spinn_front_end_common.data import FecDataView

    machine = FecDataView.get_machine()
    return {"cores_available": int(machine.total_available_user_cores)}


def deploy(model: SequentialModel, kernels_na: dict[int, np.ndarray], params: dict,
           machine: dict, work_dir: Path, conv_mode: str = "fromlist", *,
           native_lateral: str = "conv",
           native_atoms_per_core: int = DEFAULT_NATIVE_ATOMS_PER_CORE,
           run_ms: float = 10.0, quiet: bool = True) -> dict:
    """Map the inference network on a SpiNNaker machine and report its resources.

    ``kernels_na`` maps a conv layer's position in ``model.layers`` to its kernels
    ``(n_kernels, kh, kw, C)`` in nA. ``machine`` is one of
    ``{"virtual_board": 3|5}``, ``{"host": "10.11.192.1"}`` or
    ``{"spalloc_server": URL}``, optionally with ``n_boards`` (virtual boards are
    pinned to it, default 1, so a network that needs more does not fit) and
    ``reachable_timeout_s``. sPyNNaker's config and reports go to
    ``work_dir/<mode>/``; with ``quiet`` its progress bars go to
    ``spynnaker_progress.log`` there.

    Returns ``{"conv_mode", "requested_mode", "rows", "total", "machine",
    "seconds", "notes", "work_dir"}`` (plus ``"candidates"`` for ``"auto"``):
    one row per population group (``input``, ``layer1_conv``, ...) with
    ``layer, shape, populations, neurons, cores, delay_cores, chips,
    sdram_bytes, routing_entries`` read from sPyNNaker's placements, SDRAM
    reservations and (uncompressed) routing tables; ``total`` sums the rows
    (``chips`` counts distinct chips). ``seconds`` is the wall time of setup,
    building and mapping. Raises :class:`RuntimeFailure` (one line naming the
    layer) when sPyNNaker cannot map it.
    """
    if conv_mode not in CONV_MODES:
        raise UsageError(f"conv_mode must be one of {', '.join(CONV_MODES)}, got {conv_mode!r}")
    if native_lateral not in NATIVE_LATERAL:
        raise UsageError(f"native_lateral must be one of {', '.join(NATIVE_LATERAL)}, "
                         f"got {native_lateral!r}")
    if isinstance(native_atoms_per_core, bool) or not isinstance(native_atoms_per_core, int) \
            or native_atoms_per_core < 1:
        raise UsageError(f"native_atoms_per_core must be an integer >= 1, "
                         f"got {native_atoms_per_core!r}")
    if not (isinstance(run_ms, (int, float)) and math.isfinite(run_ms) and run_ms > 0):
        raise UsageError(f"run_ms must be > 0, got {run_ms!r}")
    options = _machine_options(machine)
    if "host" in options:  # one clear line within seconds, before anything is built
        check_reachable(options["host"], options.get("reachable_timeout_s", 3.0))
    elif "spalloc_server" in options:
        check_reachable(spalloc_server=options["spalloc_server"],
                        timeout_s=options.get("reachable_timeout_s", 3.0))
    upto = len(model.spiking_layers)
    if upto == 0:
        raise UsageError("the model has no spiking layer to deploy")
    _check_kernels(model, kernels_na, upto)
    work_dir = Path(work_dir)
    settings = {"native_lateral": native_lateral, "atoms_per_core": native_atoms_per_core,
                "run_ms": run_ms, "quiet": quiet}

    if conv_mode != "auto":
        report = _map_once(model, kernels_na, params, options, work_dir / conv_mode, conv_mode,
                           **settings)
        report["requested_mode"] = conv_mode
        return report

    started = time.perf_counter()
    reports: dict[str, dict] = {}
    failures: dict[str, str] = {}
    for mode in ("fromlist", "native"):
        try:
            reports[mode] = _map_once(model, kernels_na, params, options, work_dir / mode, mode,
                                      **settings)
        except RuntimeFailure as err:
            failures[mode] = str(err)
    if not reports:
        raise RuntimeFailure(f"{failures['fromlist']}; and native: {failures['native']}")
    chosen = min(reports, key=lambda mode: (reports[mode]["total"]["cores"], mode != "fromlist"))
    report = dict(reports[chosen])
    report["requested_mode"] = "auto"
    report["seconds"] = time.perf_counter() - started
    candidates = {}
    for mode in ("fromlist", "native"):
        if mode in reports:
            total = reports[mode]["total"]
            candidates[mode] = {"fits": True, "cores": total["cores"],
                                "sdram_bytes": total["sdram_bytes"],
                                "routing_entries": total["routing_entries"],
                                "seconds": reports[mode]["seconds"], "report": reports[mode]}
        else:
            candidates[mode] = {"fits": False, "error": failures[mode]}
    report["candidates"] = candidates
    report["notes"] = list(report["notes"]) + [
        f"auto: chose {chosen} ("
        + ", ".join(f"{m} {c['cores']} cores" if c["fits"] else f"{m} does not map"
                    for m, c in candidates.items()) + ")"]
    return report


# -- the text table ---------------------------------------------------------------------------
def format_report(report: dict) -> str:
    """An aligned text table: one row per layer, then the totals, the machine, notes."""
    columns = [("layer", "layer"), ("populations", "pops"), ("neurons", "neurons"),
               ("cores", "cores"), ("chips", "chips"), ("sdram_bytes", "SDRAM bytes"),
               ("routing_entries", "routes")]

    def cell(row: dict, key: str) -> str:
        value = row.get(key, "")
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) \
            else str(value)

    body = [[cell(row, key) for key, _ in columns] for row in report["rows"]]
    total = [cell(report["total"], key) for key, _ in columns]
    header = [title for _, title in columns]
    widths = [max(len(line[i]) for line in [header, *body, total]) for i in range(len(columns))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    machine = report.get("machine", {})
    mode = report.get("conv_mode", "?")
    requested = report.get("requested_mode", mode)
    title = (f"SpiNNaker mapping: conv_mode {mode}"
             + (f" (chosen by {requested})" if requested != mode else "")
             + f", {machine.get('description', '?')}, {report.get('seconds', 0.0):.1f} s")
    lines = [title, line(header), rule, *map(line, body), rule, line(total)]
    if machine:
        lines.append(
            f"machine: {machine.get('chips_available', '?')} chips, "
            f"{machine.get('cores_available', '?')} cores; placed "
            f"{machine.get('cores_placed', '?')} cores incl. sPyNNaker's system cores on "
            f"{machine.get('chips_used', '?')} chips; max "
            f"{machine.get('max_routing_entries_per_chip', '?')} routing entries per chip")
    for mode_name, candidate in report.get("candidates", {}).items():
        if candidate["fits"]:
            lines.append(f"candidate {mode_name}: {candidate['cores']:,} cores, "
                         f"{candidate['sdram_bytes']:,} SDRAM bytes, "
                         f"{candidate['routing_entries']:,} routes, "
                         f"{candidate['seconds']:.1f} s")
        else:
            lines.append(f"candidate {mode_name}: {candidate['error']}")
    lines += [f"note: {note}" for note in report.get("notes", [])]
    return "\n".join(lines)


# -- weights as the board stores them ------------------------------------------------------------
def _spikes_per_tick(params: dict) -> float:
    """``_Stats.__pre_spike_stats`` for sources without a declared maximum rate."""
    return max(1.0, SPYNNAKER_SPIKES_PER_SECOND * float(params["timestep_ms"]) / 1000.0)


def spinnaker_quantisation(model: SequentialModel, kernels_na: dict[int, np.ndarray],
                           params: dict, conv_mode: str = "fromlist") -> list[dict]:
    """Per spiking layer, the ring-buffer shifts sPyNNaker picks and the weights it stores.

    Mirrors ``PopulationVertex.get_ring_buffer_shifts`` for the networks
    :func:`deploy` builds (all delays equal, so the shift covers ``max(sum over
    incoming projections of spikes_per_tick * w_max * max_fan_in, biggest
    weight)``; sources and neurons both count 1 spike per tick at 30 Hz and
    1 ms):

    * ``"fromlist"``: one population per layer; the excitatory receptor of a
      conv layer gets the feed-forward list (fan-in = most non-zero synapses
      into one neuron, ``w_max`` = largest kernel entry of *all* maps), the
      inhibitory one the lateral list; a pool layer its pooling list.
    * ``"native"``: one population per map; each (input map, output map)
      projection counts ``kh*kw`` synapses at its own largest kernel entry
      (``LocalOnlyConvolution``'s signed-weight statistics), lateral 1×1
      projections one synapse each, pooling one synapse of ``pool_weight_na``.

    Returns one dict per spiking layer: ``position, layer, kind,
    excitatory_shift`` (an int, or one per map for native conv), ``inhibitory_shift``,
    ``kernels`` (quantised, conv only), ``lateral_inhibition_na`` and
    ``pool_weight_na`` (quantised, where used).
    """
    if conv_mode not in ("fromlist", "native"):
        raise UsageError(f"conv_mode must be 'fromlist' or 'native', got {conv_mode!r}")
    spt = _spikes_per_tick(params)
    upto = len(model.spiking_layers)
    _check_kernels(model, kernels_na, upto)
    out = []
    for position in range(upto):
        layer = model.layers[position]
        entry: dict[str, Any] = {"position": position, "layer": layer_label(model, position),
                                 "kind": layer.kind}
        lists = network.layer_connections(model, position, kernels_na.get(position), params)
        by_receptor: dict[str, list] = {"excitatory": [], "inhibitory": []}
        for _, receptor, conns in lists:
            by_receptor[receptor].append(conns)
        inhibitory = by_receptor["inhibitory"]
        if conv_mode == "fromlist":
            shifts = {}
            for receptor, conns_list in by_receptor.items():
                stats = [(float(np.max(c.weight)), int(np.bincount(c.post).max()), spt)
                         for c in conns_list if len(c)]
                shifts[receptor] = ring_buffer_left_shift(max_summed_weight_equal_delays(stats))
            entry["excitatory_shift"] = shifts["excitatory"]
            entry["inhibitory_shift"] = shifts["inhibitory"]
            if isinstance(layer, ConvLayer):
                entry["kernels"] = quantise_weights_like_spinnaker(
                    np.asarray(kernels_na[position], dtype=np.float64),
                    ring_buffer_shift=shifts["excitatory"])
            else:
                entry["pool_weight_na"] = float(quantise_weights_like_spinnaker(
                    params["pool_weight_na"], ring_buffer_shift=shifts["excitatory"]))
            if inhibitory:
                entry["lateral_inhibition_na"] = float(quantise_weights_like_spinnaker(
                    params["lateral_inhibition_na"], ring_buffer_shift=shifts["inhibitory"]))
        elif isinstance(layer, ConvLayer):
            kernels = np.asarray(kernels_na[position], dtype=np.float64)
            n_pre = int(np.prod(model.input_shape_of(position)[:2]))
            kh, kw = layer.kernel_shape
            fan_in = min(kh * kw, n_pre)  # ConvolutionConnector, per projection
            exc_shifts = []
            quantised = np.empty_like(kernels)
            for n in range(layer.n_kernels):
                stats = [(float(kernels[n, :, :, c].max()), fan_in, spt)
                         for c in range(kernels.shape[3]) if np.any(kernels[n, :, :, c] > 0)]
                shift = ring_buffer_left_shift(max_summed_weight_equal_delays(stats))
                exc_shifts.append(shift)
                quantised[n] = quantise_weights_like_spinnaker(kernels[n], ring_buffer_shift=shift)
            entry["excitatory_shift"] = exc_shifts
            entry["kernels"] = quantised
            inhibition = float(params["lateral_inhibition_na"])
            if inhibitory:
                stats = [(inhibition, 1, spt)] * (layer.n_kernels - 1)
                shift = ring_buffer_left_shift(max_summed_weight_equal_delays(stats))
                entry["inhibitory_shift"] = shift
                entry["lateral_inhibition_na"] = float(quantise_weights_like_spinnaker(
                    inhibition, ring_buffer_shift=shift))
            else:
                entry["inhibitory_shift"] = 0
        else:
            weight = float(params["pool_weight_na"])
            shift = ring_buffer_left_shift(max_summed_weight_equal_delays([(weight, 1, spt)]))
            entry["excitatory_shift"] = shift
            entry["inhibitory_shift"] = 0
            entry["pool_weight_na"] = float(quantise_weights_like_spinnaker(
                weight, ring_buffer_shift=shift))
        out.append(entry)
    return out


def spinnaker_weight_quantiser(model: SequentialModel, kernels_na: dict[int, np.ndarray],
                               params: dict, conv_mode: str = "fromlist") -> dict[int, np.ndarray]:
    """The kernels (nA) as the board would use them, in the format of ``kernels_na``.

    Each layer's kernels are rounded to the 16-bit step sPyNNaker chooses for its
    population and receptor (see :func:`spinnaker_quantisation`, which also gives
    the quantised ``lateral_inhibition_na``/``pool_weight_na``). Run a software
    backend with these to simulate "as the board would" (up to the ring-buffer
    saturation and fixed-point neuron arithmetic the board also has).
    """
    quantised = {position: np.asarray(k, dtype=np.float64).copy()
                 for position, k in kernels_na.items()}
    for entry in spinnaker_quantisation(model, kernels_na, params, conv_mode):
        if "kernels" in entry:
            quantised[entry["position"]] = entry["kernels"]
    return quantised
