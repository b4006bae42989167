"""sPyNNaker's, pacman's and PyNN's exceptions as one line that names the layer and the fix.

sPyNNaker names vertices and edges by their population labels, so the layer is
found in the message; the kind of failure (does not fit, routing, row too
long, delay, machine, unsupported) comes from the exception class.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

__all__ = ["cores_needed", "exception_classes", "translate_spinnaker_error"]

_TOKEN = re.compile(r"[A-Za-z0-9_]+")


def exception_classes() -> dict[str, tuple[type, ...]]:
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
_FIXES = {
    "fit": "use more boards (machine n_boards), conv_mode 'auto' or a smaller model",
    "routing": "try conv_mode 'native' or more boards (machine n_boards)",
    "row": "use conv_mode 'native' or fewer kernels per layer",
    "delay": "use a smaller synapse_delay_ms",
    "machine": "check the machine option (virtual_board 3 or 5, host, spalloc_server)",
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
    for name, classes in exception_classes().items():
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
    fix = f"; {_FIXES[kind]}" if kind in _FIXES else ""
    return _one_line(prefix + f"{reason} [{type(error).__name__}: {_one_line(message, 200)}]"
                     + fix, limit=480)


def cores_needed(groups: dict[str, list]) -> str:
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

