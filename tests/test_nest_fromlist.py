"""``VectorisedFromListConnector`` builds the same ``pyNN.nest`` network as the stock one.

Each network is built twice, in separate ``sim.setup()``/``sim.end()`` sessions:
once with ``sim.FromListConnector`` and once with the vectorised connector; the
NEST connections (source, target, weight, delay), ``len(projection)``, weights
read back through PyNN and the simulated spikes must be identical.
"""

from __future__ import annotations

import numpy as np
import pytest

sim = pytest.importorskip("pyNN.nest")

from pyNN.errors import ConnectionError as PyNNConnectionError  # noqa: E402

from spinnconv.backends.nest.fromlist import VectorisedFromListConnector  # noqa: E402

CONNECTORS = {"stock": sim.FromListConnector, "vectorised": VectorisedFromListConnector}


def _random_list(rng, n_pre, n_post, n_conn, sign=1.0):
    pairs = rng.choice(n_pre * n_post, size=n_conn, replace=False)
    return np.column_stack([pairs // n_post, pairs % n_post,
                            sign * rng.uniform(0.5, 2.0, n_conn),
                            rng.choice([1.0, 2.0, 3.0], n_conn)])


def _build_and_run(kind, excitatory, inhibitory, stdp=False):
    sim.setup(timestep=1.0, min_delay=1.0, spike_precision="on_grid", verbosity="error",
              threads=1, rng_seed=1)
    try:
        times = [np.arange(2.0 + i % 5, 60.0, 7.0 + i % 3) for i in range(40)]
        source = sim.Population(40, sim.SpikeSourceArray(spike_times=times))
        cells = sim.Population(30, sim.IF_curr_exp(tau_m=10.0))
        cells.record("spikes")
        connector = CONNECTORS[kind]
        synapse = (sim.STDPMechanism(timing_dependence=sim.SpikePairRule(),
                                     weight_dependence=sim.AdditiveWeightDependence(w_max=3.0),
                                     weight=0.5, delay=1.0) if stdp else sim.StaticSynapse())
        names = ["weight", "delay"]
        excite = sim.Projection(source, cells, connector(excitatory, column_names=names),
                                synapse_type=synapse, receptor_type="excitatory")
        inhibit = sim.Projection(cells, cells, connector(inhibitory, column_names=names),
                                 synapse_type=sim.StaticSynapse(), receptor_type="inhibitory")
        sim.run(60.0)
        status = [p.nest_connections.get(["source", "target", "weight", "delay"])
                  for p in (excite, inhibit)]
        table = [sorted(zip(s["source"], s["target"], s["weight"], s["delay"], strict=True))
                 for s in status]
        spikes = cells.get_data("spikes").segments[0].spiketrains
        return {"connections": table, "len": (len(excite), len(inhibit)),
                "weights": excite.get("weight", format="array"),
                "spikes": [np.asarray(train.magnitude) for train in spikes]}
    finally:
        sim.end()


@pytest.mark.parametrize("stdp", [False, True], ids=["static", "stdp-falls-back"])
def test_same_network_as_the_stock_connector(stdp):
    rng = np.random.default_rng(3)
    excitatory = _random_list(rng, 40, 30, 500)
    inhibitory = _random_list(rng, 30, 30, 200, sign=-1.0)
    stock = _build_and_run("stock", excitatory, inhibitory, stdp)
    fast = _build_and_run("vectorised", excitatory, inhibitory, stdp)
    assert stock["len"] == fast["len"] == (500, 200)
    assert stock["connections"] == fast["connections"]
    np.testing.assert_array_equal(np.isnan(stock["weights"]), np.isnan(fast["weights"]))
    np.testing.assert_allclose(np.nan_to_num(stock["weights"]), np.nan_to_num(fast["weights"]))
    assert sum(len(t) for t in stock["spikes"]) > 0
    for a, b in zip(stock["spikes"], fast["spikes"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_takes_the_fast_path_only_for_static_synapses():
    sim.setup(timestep=1.0, verbosity="error")
    try:
        a = sim.Population(3, sim.IF_curr_exp())
        static = sim.Projection(a, a, VectorisedFromListConnector([[0, 1, 1.0, 1.0]]))
        plastic = sim.Projection(a, a, VectorisedFromListConnector([[0, 1, 1.0, 1.0]]),
                                 synapse_type=sim.STDPMechanism(
                                     timing_dependence=sim.SpikePairRule(),
                                     weight_dependence=sim.AdditiveWeightDependence(w_max=2.0)))
        assert VectorisedFromListConnector.takes_fast_path(static)
        assert not VectorisedFromListConnector.takes_fast_path(plastic)
        with pytest.raises(PyNNConnectionError, match="target index out of range"):
            sim.Projection(a, a, VectorisedFromListConnector([[0, 3, 1.0, 1.0]]))
        with pytest.raises(PyNNConnectionError, match="source index out of range"):
            sim.Projection(a, a, VectorisedFromListConnector([[5, 0, 1.0, 1.0]]))
    finally:
        sim.end()
