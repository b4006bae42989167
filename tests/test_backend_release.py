"""An ended network is freed, so one process can build many (feature-extraction blocks)."""

import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import numpy as np
import pytest

from spinnconv.backends import get_backend
from spinnconv.backends.base import Connections

REPO = Path(__file__).resolve().parents[1]


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
    names (neurongroup_2, ...) and a recompilation of every code object. Checked in a
    fresh process: pyNN.brian2 state left by other tests is not this network's."""
    pytest.importorskip("pyNN.brian2")
    script = textwrap.dedent("""
        from brian2 import NeuronGroup
        from spinnconv.backends import get_backend
        from tests.test_backend_release import _build_and_run

        backend = get_backend("brian2")
        _build_and_run(backend)
        backend.setup(1.0, 0)
        names = sorted(r().name for r in NeuronGroup.__instances__() if r() is not None)
        backend.end()
        print("alive:", names)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "alive: []" in result.stdout  # nothing of the ended network is alive
