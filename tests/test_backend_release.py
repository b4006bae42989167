"""An ended network is freed, so one process can build many (feature-extraction blocks)."""

import weakref

import numpy as np
import pytest

from spinnconv.backends import get_backend
from spinnconv.backends.base import Connections


def _build_and_run(backend):
    backend.setup(1.0, 0)
    source = backend.spike_source([np.array([2.0, 5.0])] * 4, "src")
    cells = backend.population(3, {}, "cells")
    pre, post = (a.ravel() for a in np.meshgrid(np.arange(4), np.arange(3), indexing="ij"))
    backend.connect(source, cells, Connections.build(pre, post, 2.0, 1.0), label="src->cells")
    backend.record(cells)
    backend.run(10.0)
    refs = [weakref.ref(source), weakref.ref(cells)]
    backend.end()
    return refs


@pytest.mark.parametrize("backend_name", ["nest", "brian2"])
def test_ended_network_is_garbage_collected(backend_name):
    pytest.importorskip("pyNN." + backend_name)
    backend = get_backend(backend_name)
    refs = _build_and_run(backend)
    backend.setup(1.0, 0)  # pyNN.brian2 drops its recorders only here
    assert [r() for r in refs] == [None, None]
    backend.end()


def test_brian2_reuses_object_names_hence_compiled_code():
    """Brian2 puts object names into generated code; live old objects would force new
    names (neurongroup_2, ...) and a recompilation of every code object."""
    pytest.importorskip("pyNN.brian2")
    from brian2 import NeuronGroup

    backend = get_backend("brian2")

    def group_names():
        return sorted(ref().name for ref in NeuronGroup.__instances__() if ref() is not None)

    _build_and_run(backend)
    backend.setup(1.0, 0)
    assert group_names() == []  # nothing of the ended network is alive
    backend.end()
