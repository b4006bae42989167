"""A vectorised ``FromListConnector`` for ``pyNN.nest`` (NEST backend only).

The stock connector makes one ``nest.Connect`` call per target neuron; this one
translates the parameters of the whole list once and makes one
``nest.Connect(sources, targets, "one_to_one", syn_spec)`` call, keeping the
projection's bookkeeping so ``Projection.get``/``set``/``len`` work. Only static
synapses between plain populations of current-based cells in one MPI process
take this path; everything else uses the stock connector. Details:
``docs/design/nest-fromlist.md``.
"""

from __future__ import annotations

from typing import Any

import nest
import numpy as np
from pyNN import errors
from pyNN.common import Population
from pyNN.connectors import FromListConnector
from pyNN.standardmodels.synapses import StaticSynapse

from ..fromlist import check_list, translated_parameters

__all__ = ["VectorisedFromListConnector"]

_DROPPED = ("dendritic_delay_fraction", "tau_minus", "w_min_always_zero_in_NEST")


class VectorisedFromListConnector(FromListConnector):
    """``FromListConnector`` that builds a static ``pyNN.nest`` projection with one
    ``nest.Connect`` call; same arguments as :class:`pyNN.connectors.FromListConnector`."""

    @staticmethod
    def takes_fast_path(projection: Any) -> bool:
        """True when ``projection`` is the simple case described in the module docstring."""
        post = projection.post
        return (isinstance(projection.pre, Population) and isinstance(post, Population)
                and isinstance(projection.synapse_type, StaticSynapse)
                and not post.conductance_based
                and post.celltype.standard_receptor_type
                and not hasattr(post.celltype, "receptor_scale")
                and bool(np.all(post._mask_local)) and bool(np.all(projection.pre._mask_local)))

    def connect(self, projection: Any) -> None:
        """Connect up ``projection`` (a ``pyNN.nest.Projection``)."""
        if not self.takes_fast_path(projection):
            super().connect(projection)
            return
        check_list(self.conn_list, self.column_names, projection)
        if self.conn_list.size == 0:
            return
        # the stock connector's order: by target, then as listed
        conn_list = self.conn_list[np.argsort(self.conn_list[:, 1], kind="stable")]
        n = conn_list.shape[0]
        values = {name: value for name, value in translated_parameters(
            projection.synapse_type, conn_list, self.column_names).items()
            if name not in _DROPPED}
        weight = np.broadcast_to(np.asarray(values.pop("weight"), dtype=float), (n,))
        delay = np.broadcast_to(np.asarray(values.pop("delay"), dtype=float), (n,))
        if values:  # a parameter this path does not know: let PyNN handle it
            super().connect(projection)
            return
        sources = np.asarray(projection.pre.all_cells[conn_list[:, 0].astype(int)],
                             dtype=np.int64)
        targets = np.asarray(projection.post.all_cells[conn_list[:, 1].astype(int)],
                             dtype=np.int64)
        syn_spec = {"synapse_model": projection.nest_synapse_model,
                    "synapse_label": projection.nest_synapse_label,
                    "weight": np.ascontiguousarray(weight),
                    "delay": np.ascontiguousarray(delay)}
        try:
            nest.Connect(sources, targets, "one_to_one", syn_spec)
        except nest.NESTError as err:
            raise errors.ConnectionError(f"{err}; synapse model "
                                         f"'{projection.nest_synapse_model}'") from None
        projection._sources.update(np.unique(sources).tolist())
        projection._connections = None
        projection._simulator.state.stale_connection_cache = True
