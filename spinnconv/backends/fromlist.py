"""What the vectorised ``FromListConnector`` of each backend shares (PyNN only, no
simulator): the stock connector's validation and its parameter translation, done
once for the whole list instead of once per target neuron."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import numpy as np
from pyNN import errors
from pyNN.standardmodels import StandardSynapseType


def check_list(conn_list: np.ndarray, column_names, projection: Any) -> None:
    """The stock checks: every column names a parameter of the synapse type
    (``ValueError``); every source and target index lies in its population
    (``pyNN.errors.ConnectionError``; the stock connector drops bad targets)."""
    synapse_type = projection.synapse_type
    for name in column_names:
        if name not in synapse_type.get_parameter_names():
            raise ValueError(
                f"{name} is not a valid parameter for {synapse_type.__class__.__name__}")
    if conn_list.size == 0:
        return
    for column, side, what in ((0, projection.pre, "source"), (1, projection.post, "target")):
        if np.any(conn_list[:, column] >= side.size) or np.any(conn_list[:, column] < 0):
            raise errors.ConnectionError(f"{what} index out of range")


def translated_parameters(synapse_type: Any, conn_list: np.ndarray,
                          column_names) -> dict[str, Any]:
    """Native synapse parameters of every row of ``conn_list``, built as the stock
    connector builds them per target: a deep copy of the synapse type's parameter
    space with shape ``(n,)``, updated with the list's columns, ``translate``-d
    (standard synapse types) and ``evaluate``-d."""
    parameters = deepcopy(synapse_type.parameter_space)
    parameters.shape = (conn_list.shape[0],)
    for column, name in enumerate(column_names, 2):
        parameters.update(**{name: conn_list[:, column]})
    if isinstance(synapse_type, StandardSynapseType):
        parameters = synapse_type.translate(parameters)
    parameters.evaluate()
    return dict(parameters.items())
