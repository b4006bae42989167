"""What a mapped network takes on SpiNNaker, read from sPyNNaker's own data, and its tables.

:func:`resource_report` counts cores, chips, SDRAM and routing entries per named
group of populations after ``run`` has mapped them (``FecDataView``'s
placements, SDRAM reservations and uncompressed routing tables);
:func:`format_resource_report` and :func:`format_report` print a resource
report and a :func:`~spinnconv.backends.spinnaker.deploy.deploy` report as
aligned tables.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import RuntimeFailure, UsageError

__all__ = ["format_report", "format_resource_report", "machine_capacity", "resource_report"]


# -- reading the mapping -----------------------------------------------------------------
def _owners(populations: dict[str, Any], vertices) -> tuple[dict[str, list], dict, set]:
    """``(groups, application vertex -> row, delay vertices)``; ``UsageError`` when a
    population is in two rows."""
    from spynnaker.pyNN.models.utility_models.delays import DelayExtensionVertex

    groups: dict[str, list] = {}
    owner: dict[Any, int] = {}
    delay_vertices: set = set()
    for row, (label, pops) in enumerate(populations.items()):
        pops = list(pops) if isinstance(pops, (list, tuple)) else [pops]
        groups[str(label)] = pops
        for pop in pops:
            if pop._vertex in owner:
                raise UsageError(f"population {pop.label!r} is in two resource rows; "
                                 "give each population to one row")
            owner[pop._vertex] = row
    for vertex in vertices:
        if isinstance(vertex, DelayExtensionVertex) and vertex.source_vertex in owner:
            owner[vertex] = owner[vertex.source_vertex]
            delay_vertices.add(vertex)
    return groups, owner, delay_vertices


def _placements(owner: dict, delay_vertices: set, n_rows: int, plan_n: int,
                placement_of) -> tuple[list[int], list[int], list[int], list[set]]:
    """Per row: cores, delay cores, reserved SDRAM bytes and the chips used."""
    cores, delay_cores, sdram = [0] * n_rows, [0] * n_rows, [0] * n_rows
    chips: list[set] = [set() for _ in range(n_rows)]
    for app_vertex, row in owner.items():
        for m_vertex in app_vertex.machine_vertices:
            placement = placement_of(m_vertex)
            cores[row] += 1
            delay_cores[row] += app_vertex in delay_vertices
            chips[row].add((placement.x, placement.y))
            sdram[row] += int(m_vertex.sdram_required.get_total_sdram(plan_n))
    return cores, delay_cores, sdram, chips


def _routing_entries(owner: dict, n_rows: int, routing_infos,
                     tables) -> tuple[list[int], int, int]:
    """Per row the routing entries whose key matches one of its key/masks (on every chip
    the routes pass), plus all entries and the most on one chip."""
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
    return entries, total_entries, max_entries


def resource_report(populations: dict[str, Any], board: str) -> dict:
    """Cores, chips, SDRAM and routing entries per named group of populations.

    Call after ``run`` (which maps: placement, routing, key allocation; on a
    virtual board that is all it does); sPyNNaker 7.4.1 keeps the mapping
    readable after ``end`` too, until the next ``setup``. ``populations`` maps a
    row label to a Population or a list of them; ``board`` names the machine.
    Returns ``{"rows": [...], "total": {...}, "machine": {...}}``; each row has
    ``label, populations, neurons, cores, chips, sdram_bytes, routing_entries,
    delay_cores``. ``total`` sums the rows (``chips`` counts distinct chips);
    ``machine`` counts everything placed, including sPyNNaker's system cores.

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

    try:
        n_placements = FecDataView.get_n_placements()
        plan_n = FecDataView.get_plan_n_timestep()
        tables = FecDataView.get_uncompressed()
        routing_infos = FecDataView.get_routing_infos()
    except SpiNNUtilsException as err:  # DataNotYetAvialable, ShutdownException, ...
        raise RuntimeFailure(f"no SpiNNaker mapping to report on ({err.__class__.__name__}:"
                             f" {err}); call run() first") from None

    groups, owner, delay_vertices = _owners(populations, FecDataView.iterate_vertices())
    n_rows = len(groups)
    cores, delay_cores, sdram, chips = _placements(
        owner, delay_vertices, n_rows, plan_n, FecDataView.get_placement_of_vertex)
    entries, total_entries, max_entries = _routing_entries(owner, n_rows, routing_infos,
                                                           tables)
    out_rows = [{
        "label": label,
        "populations": [p.label for p in pops],
        "neurons": int(sum(p.size for p in pops)),
        "cores": cores[row],
        "delay_cores": delay_cores[row],
        "chips": len(chips[row]),
        "sdram_bytes": sdram[row],
        "routing_entries": entries[row],
    } for row, (label, pops) in enumerate(groups.items())]
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
        "board": board,
        "chips_available": FecDataView.get_machine().n_chips,
        "cores_placed": int(n_placements),
        "chips_used": len({(p.x, p.y) for p in FecDataView.iterate_placemements()}),
        "routing_entries": total_entries,
        "max_routing_entries_per_chip": max_entries,
        "plan_n_timesteps": plan_n,
    }
    return {"rows": out_rows, "total": total, "machine": machine}


def machine_capacity() -> dict:
    """Cores of the mapped machine that applications may use (incl. system cores)."""
    from spinn_front_end_common.data import FecDataView

    machine = FecDataView.get_machine()
    return {"cores_available": int(machine.total_available_user_cores)}


# -- text tables ---------------------------------------------------------------------------
def _table(header: list[str], body: list[list[str]], footer: list[str]) -> list[str]:
    """Lines of an aligned table: header, rule, body, rule, footer (first column left-,
    the others right-aligned)."""
    widths = [max(len(line[i]) for line in [header, *body, footer])
              for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    rule = "-" * len(line(header))
    return [line(header), rule, *map(line, body), rule, line(footer)]


def format_resource_report(report: dict) -> str:
    """A fixed-width text table of :func:`resource_report`."""
    columns = ["label", "neurons", "cores", "delay_cores", "chips", "sdram_bytes",
               "routing_entries"]
    body = [[str(row[c]) for c in columns] for row in report["rows"]]
    footer = [str(report["total"][c]) for c in columns]
    machine = report.get("machine", {})
    tail = ", ".join(f"{k}={v}" for k, v in machine.items())
    return "\n".join([*_table(columns, body, footer), f"machine: {tail}"])


def _cell(row: dict, key: str) -> str:
    value = row.get(key, "")
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _candidate_line(mode: str, candidate: dict) -> str:
    if not candidate["fits"]:
        return f"candidate {mode}: {candidate['error']}"
    return (f"candidate {mode}: {candidate['cores']:,} cores, "
            f"{candidate['sdram_bytes']:,} SDRAM bytes, "
            f"{candidate['routing_entries']:,} routes, {candidate['seconds']:.1f} s")


def format_report(report: dict) -> str:
    """A deploy report as an aligned text table: one row per layer, then the totals, the
    machine, the candidates of ``"auto"`` and the notes."""
    columns = [("layer", "layer"), ("populations", "pops"), ("neurons", "neurons"),
               ("cores", "cores"), ("chips", "chips"), ("sdram_bytes", "SDRAM bytes"),
               ("routing_entries", "routes")]
    body = [[_cell(row, key) for key, _ in columns] for row in report["rows"]]
    total = [_cell(report["total"], key) for key, _ in columns]
    machine = report.get("machine", {})
    mode = report.get("conv_mode", "?")
    requested = report.get("requested_mode", mode)
    title = (f"SpiNNaker mapping: conv_mode {mode}"
             + (f" (chosen by {requested})" if requested != mode else "")
             + f", {machine.get('description', '?')}, {report.get('seconds', 0.0):.1f} s")
    lines = [title, *_table([name for _, name in columns], body, total)]
    if machine:
        lines.append(
            f"machine: {machine.get('chips_available', '?')} chips, "
            f"{machine.get('cores_available', '?')} cores; placed "
            f"{machine.get('cores_placed', '?')} cores incl. sPyNNaker's system cores on "
            f"{machine.get('chips_used', '?')} chips; max "
            f"{machine.get('max_routing_entries_per_chip', '?')} routing entries per chip")
    lines += [_candidate_line(m, c) for m, c in report.get("candidates", {}).items()]
    lines += [f"note: {note}" for note in report.get("notes", [])]
    return "\n".join(lines)
