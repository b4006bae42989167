"""A vectorised ``FromListConnector`` for ``pyNN.brian2`` (Brian2 backend only).

The stock connector sets every synaptic variable one synapse at a time; this one
makes one ``Synapses.connect(i=..., j=...)`` call and one array assignment per
variable, in the stock connector's synapse order. It validates as the stock
connector does, raises for out-of-range targets (the stock one drops them),
and falls back to the stock connector for views and assemblies. Details and
the deliberate differences: ``docs/design/brian2-fromlist.md``.
"""

from __future__ import annotations

import logging
from typing import Any

import brian2
import numpy as np
from pyNN.common import Population
from pyNN.connectors import FromListConnector
from pyNN.core import is_listlike

from ..fromlist import check_list, translated_parameters

__all__ = ["VectorisedFromListConnector"]

logger = logging.getLogger(__name__)


def _is_plain_population(obj: Any) -> bool:
    """True for a ``Population`` (not a ``PopulationView`` or an ``Assembly``)."""
    return isinstance(obj, Population)


class VectorisedFromListConnector(FromListConnector):
    """``FromListConnector`` that builds a ``pyNN.brian2`` projection in one go.

    Takes the same arguments as :class:`pyNN.connectors.FromListConnector`.
    Between two plain ``Population`` objects it creates all synapses with a
    single ``Synapses.connect`` call and sets each synaptic variable with a
    single array assignment; otherwise it falls back to the stock connector
    (see the module docstring).
    """

    def connect(self, projection: Any) -> None:
        """Connect up ``projection`` (a ``pyNN.brian2.Projection``)."""
        if not (
            _is_plain_population(projection.pre)
            and _is_plain_population(projection.post)
            and hasattr(projection, "_brian2_synapses")
        ):
            logger.debug("VectorisedFromListConnector: falling back to the stock connector "
                         "(pre=%r, post=%r)", projection.pre, projection.post)
            super().connect(projection)
            return

        synapse_type = projection.synapse_type
        check_list(self.conn_list, self.column_names, projection)
        if self.conn_list.size == 0:
            return
        if self.location_selector is not None:
            raise NotImplementedError("Brian backend does not support multicompartmental models.")

        conn_list = self.conn_list
        # Same ordering as the stock connector (sorted by target, same argsort),
        # so the Brian2 synapses end up in the same order.
        conn_list = conn_list[np.argsort(conn_list[:, 1])]
        # Like the stock connector, only connect to targets on this MPI node.
        local = np.asarray(projection.post._mask_local)[conn_list[:, 1].astype(int)]
        if not np.all(local):
            conn_list = conn_list[local]
        n = conn_list.shape[0]
        if n == 0:
            return
        pre_idx = conn_list[:, 0].astype(int)
        post_idx = conn_list[:, 1].astype(int)

        values = translated_parameters(synapse_type, conn_list, self.column_names)
        values.pop("dendritic_delay_fraction", None)  # as _convergent_connect does
        values.update(synapse_type.initial_conditions)

        syn_obj = projection._brian2_synapses[0][0]
        start = len(syn_obj)
        syn_obj.connect(i=pre_idx, j=post_idx)
        stop = len(syn_obj)
        if stop - start != n:  # Brian2 appends exactly the given pairs, in order
            raise RuntimeError(f"Brian2 created {stop - start} synapses, expected {n}")
        new = slice(start, stop)

        for name, value in values.items():
            if name == "delay":
                # round to the nearest time step rather than truncating
                scale = projection._simulator.state.dt * brian2.ms
                value = np.round(value / scale) * scale
            brian2_var = getattr(syn_obj, name)
            if is_listlike(value):
                brian2_var[new] = value
            else:
                try:
                    brian2_var[new] = value
                except TypeError as err:
                    if "read-only" in str(err):
                        logger.info("Cannot set synaptic initial value for variable %s", name)
                    else:
                        raise
        projection._n_connections += n
