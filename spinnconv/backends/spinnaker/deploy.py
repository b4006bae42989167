"""Map a trained network onto SpiNNaker and report what it takes, or why it does not fit.

:func:`deploy` builds the inference network as testing builds it
(``conv_mode="fromlist"``) or with sPyNNaker's local-only convolution
(``"native"``, :mod:`.native`), or both, keeping the one with fewer cores
(``"auto"``). sPyNNaker maps it on the chosen machine by running it for a few
milliseconds; every number of the report comes from sPyNNaker's placements
and routing tables (:mod:`.resources`). A virtual board needs no hardware.
Failures become one :class:`~spinnconv.errors.RuntimeFailure` line naming the
layer (:mod:`.errors`); sPyNNaker is always ended. Both modes in detail:
``docs/design/spinnaker-deploy.md``.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ... import network
from ...errors import RuntimeFailure, UsageError
from ...interface import Connections, STDPRule
from ...model import SequentialModel
from .backend import SpiNNakerBackend
from .errors import cores_needed, exception_classes, translate_spinnaker_error
from .machine import check_machine_reachable, describe_machine, machine_options
from .native import (
    DEFAULT_NATIVE_ATOMS_PER_CORE,
    NATIVE_LATERAL,
    build_native_network,
    native_problems,
)
from .quantisation import check_kernels
from .resources import machine_capacity

__all__ = ["CONV_MODES", "deploy", "probe_spike_times"]

CONV_MODES = ("fromlist", "native", "auto")
_CANDIDATE_MODES = ("fromlist", "native")


# -- probe input and the backend used for mapping ----------------------------------
def probe_spike_times(n: int, timestep_ms: float = 1.0) -> list[np.ndarray]:
    """A few input spikes for a mapping run: one spike in every ``k``-th neuron, spread
    over 8 time steps from ``2 * timestep_ms`` (at most ~50 per step, under
    sPyNNaker's "too many spikes at the same time" warning)."""
    every = max(3, math.ceil(int(n) / 400))
    return [np.array([(2 + (i // every) % 8) * timestep_ms]) if i % every == 0
            else np.zeros(0) for i in range(int(n))]


class _MappingBackend(SpiNNakerBackend):
    """:class:`SpiNNakerBackend` that pins a virtual machine to ``n_boards`` boards and
    remembers which layer it is building (to name it when sPyNNaker refuses it).

    Its :meth:`setup` does not ping the machine again: :func:`deploy` did, once.
    Without ``n_boards_required`` a virtual board grows to whatever the network
    needs (``virtual_machine_generator`` sizes it by ``n_chips_needed``), so
    "does not fit" could never happen on a virtual SpiNN-5.
    """

    check_reachable_on_setup = False

    def __init__(self, options: dict, work_dir: Path):
        """``options`` as checked by :func:`.machine.machine_options`; deploy has
        checked that the machine answers."""
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


# -- one mapping run ------------------------------------------------------------------
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


def _map_failure(err: Exception, backend: _MappingBackend, layers: list[str], context: str,
                 groups: dict[str, list]) -> RuntimeFailure:
    """The one-line :class:`RuntimeFailure` of a sPyNNaker exception while mapping."""
    extra = cores_needed(groups) if isinstance(err, exception_classes()["fit"]) else ""
    return RuntimeFailure(translate_spinnaker_error(
        err, layers, building=backend.building or None, context=context, extra=extra))


def _build(backend: _MappingBackend, model: SequentialModel,
           kernels_na: dict[int, np.ndarray], params: dict, mode: str, layers: list[str],
           native_lateral: str, atoms_per_core: int,
           notes: list[str]) -> tuple[dict[str, list], list]:
    """``({row label: [populations]}, output populations)`` of the network of ``mode``."""
    upto = len(model.spiking_layers)
    source_times = probe_spike_times(int(np.prod(model.input_shape)), params["timestep_ms"])
    if mode == "native":
        return build_native_network(backend, model, kernels_na, params, source_times, upto,
                                    atoms_per_core, native_lateral, notes)
    populations = network.build_network(backend, model, kernels_na, params, source_times,
                                        upto)
    groups = {label: [pop] for label, pop in zip(layers, populations, strict=True)}
    return groups, [populations[-1]]


def _report(model: SequentialModel, layers: list[str], raw: dict, options: dict, mode: str,
            seconds: float, notes: list[str], atoms_per_core: int, work_dir: Path) -> dict:
    """The deploy report of one mapping from the backend's raw resource report."""
    upto = len(model.spiking_layers)
    shapes = [model.input_shape] + [model.output_shape_of(p) for p in range(upto)]
    rows = [_row(label, shape, raw_row)
            for label, shape, raw_row in zip(layers, shapes, raw["rows"], strict=True)]
    total: dict[str, Any] = {key: sum(row[key] for row in rows)
                             for key in ("populations", "neurons", "cores", "delay_cores",
                                         "sdram_bytes", "routing_entries")}
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
        "machine": {"description": describe_machine(options), **raw["machine"]},
        "seconds": seconds,
        "notes": notes,
        "work_dir": str(work_dir),
    }


def _map_once(model: SequentialModel, kernels_na: dict[int, np.ndarray], params: dict,
              options: dict, work_dir: Path, mode: str, *, native_lateral: str,
              atoms_per_core: int, run_ms: float, quiet: bool) -> dict:
    """Build, map and report one ``mode``; sPyNNaker is ended whatever happens."""
    upto = len(model.spiking_layers)
    layers = ["input"] + [network.layer_label(model, p) for p in range(upto)]
    context = f"{mode}, {describe_machine(options)}"
    notes: list[str] = []
    if mode == "native":
        problems = native_problems(model, upto)
        if problems:
            layer, _, reason = problems[0].partition(": ")
            raise RuntimeFailure(f"SpiNNaker mapping ({context}) failed at {layer}: not "
                                 f"expressible natively ({reason}); use conv_mode "
                                 "'fromlist'")
    backend = _MappingBackend(options, work_dir)
    groups: dict[str, list] = {}
    started = time.perf_counter()
    log_file = work_dir / "spynnaker_progress.log" if quiet else None
    backend.setup(params["timestep_ms"], params["seed"])
    try:
        groups, outputs = _build(backend, model, kernels_na, params, mode, layers,
                                 native_lateral, atoms_per_core, notes)
        backend.building = ""
        for population in outputs:  # testing records the last layer
            backend.record(population)
        with _spynnaker_progress(log_file):
            backend.run(float(run_ms))
        raw = backend.resource_report(groups)
        raw["machine"].update(machine_capacity())
    except RuntimeFailure:
        raise
    except Exception as err:  # noqa: BLE001 -- every sPyNNaker failure becomes one line
        raise _map_failure(err, backend, layers, context, groups) from None
    finally:
        _end(backend)
    return _report(model, layers, raw, options, mode, time.perf_counter() - started, notes,
                   atoms_per_core, work_dir)


def _end(backend: _MappingBackend) -> None:
    """``sim.end()`` unless sPyNNaker already shut down (it does when a run fails)."""
    with contextlib.suppress(Exception):
        from spinn_utilities.data import UtilsDataView

        if UtilsDataView.is_shutdown():
            return
    with contextlib.suppress(Exception):
        backend.end()


def _check_settings(conv_mode: str, native_lateral: str, native_atoms_per_core: int,
                    run_ms: float) -> None:
    """``UsageError`` for a bad deploy setting (before anything is built)."""
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
    _check_settings(conv_mode, native_lateral, native_atoms_per_core, run_ms)
    options = machine_options(machine)
    # one clear line within seconds, before anything is built; the mapping runs do not
    # ping again
    check_machine_reachable(options.get("host"), options.get("spalloc_server"),
                            options.get("reachable_timeout_s", 3.0))
    upto = len(model.spiking_layers)
    if upto == 0:
        raise UsageError("the model has no spiking layer to deploy; add a ConvLayer")
    check_kernels(model, kernels_na, upto)
    work_dir = Path(work_dir)
    settings = {"native_lateral": native_lateral, "atoms_per_core": native_atoms_per_core,
                "run_ms": run_ms, "quiet": quiet}
    if conv_mode != "auto":
        report = _map_once(model, kernels_na, params, options, work_dir / conv_mode, conv_mode,
                           **settings)
        report["requested_mode"] = conv_mode
        return report
    return _deploy_auto(model, kernels_na, params, options, work_dir, settings)


def _deploy_auto(model: SequentialModel, kernels_na: dict[int, np.ndarray], params: dict,
                 options: dict, work_dir: Path, settings: dict) -> dict:
    """Map both modes and keep the one that fits with fewer cores (FromList on a tie)."""
    started = time.perf_counter()
    reports: dict[str, dict] = {}
    failures: dict[str, str] = {}
    for mode in _CANDIDATE_MODES:
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
    for mode in _CANDIDATE_MODES:
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
