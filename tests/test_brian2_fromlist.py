"""``VectorisedFromListConnector`` builds the same ``pyNN.brian2`` network as the stock one.

Each network is built twice, in two separate ``sim.setup()``/``sim.end()``
sessions: once with ``sim.FromListConnector`` and once with
``VectorisedFromListConnector``; connection lists, ``len(projection)`` and the
simulated behaviour must be identical.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("brian2")
sim = pytest.importorskip("pyNN.brian2")

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # the repo is not installed; make ``spinnconv`` importable
    sys.path.insert(0, _ROOT)

from pyNN.errors import ConnectionError as PyNNConnectionError  # noqa: E402

from spinnconv.backends.brian2.fromlist import VectorisedFromListConnector  # noqa: E402

pytestmark = pytest.mark.usefixtures("brian2_numpy_target")

CONNECTORS = {"stock": sim.FromListConnector, "vectorised": VectorisedFromListConnector}


@pytest.fixture
def session():
    sim.setup(timestep=1.0, min_delay=1.0)
    yield sim
    sim.end()


def _in_session(fn: Callable[[], Any]) -> Any:
    sim.setup(timestep=1.0, min_delay=1.0)
    try:
        return fn()
    finally:
        sim.end()


def _random_list(rng: np.random.Generator, n_pre: int, n_post: int, n_conn: int,
                 w_low: float, w_high: float, delays: tuple[int, ...]) -> np.ndarray:
    """``[pre, post, weight, delay]`` rows, no duplicate (pre, post) pair, unsorted."""
    pairs = rng.choice(n_pre * n_post, size=n_conn, replace=False)
    return np.column_stack([
        pairs // n_post,
        pairs % n_post,
        rng.uniform(w_low, w_high, n_conn),
        rng.choice(delays, n_conn),
    ]).astype(float)


def _spike_times(rng: np.random.Generator, n: int, n_spikes: int,
                 t_max: float) -> list[list[float]]:
    return [sorted(set(np.round(rng.uniform(1.0, t_max, n_spikes)).tolist())) for _ in range(n)]


def _trains(population: Any) -> list[np.ndarray]:
    return [np.asarray(st.magnitude) for st in population.get_data().segments[0].spiketrains]


def _sorted(rows: list[tuple]) -> list[tuple]:
    return sorted(tuple(float(x) for x in row) for row in rows)


def _build_static(kind: str, conn_list: np.ndarray, spikes: list[list[float]], n_post: int,
                  receptor: str = "excitatory", t_run: float = 100.0) -> dict[str, Any]:
    def body() -> dict[str, Any]:
        pre = sim.Population(len(spikes), sim.SpikeSourceArray(spike_times=spikes))
        post = sim.Population(n_post, sim.IF_curr_exp())
        post.record(["spikes", "v"])
        prj = sim.Projection(pre, post,
                             CONNECTORS[kind](conn_list, column_names=["weight", "delay"]),
                             sim.StaticSynapse(), receptor_type=receptor)
        out = {"list": prj.get(["weight", "delay"], format="list"), "len": len(prj)}
        sim.run(t_run)
        out["spikes"] = _trains(post)
        out["v"] = np.asarray(post.get_data().segments[0].filter(name="v")[0].magnitude)
        return out

    return _in_session(body)


def test_static_synapses_identical_to_stock() -> None:
    rng = np.random.default_rng(12345)
    n_pre, n_post = 40, 15
    conn_list = _random_list(rng, n_pre, n_post, 300, 0.0, 2.0, (1, 2, 3))
    spikes = _spike_times(rng, n_pre, 4, 80.0)

    stock = _build_static("stock", conn_list, spikes, n_post)
    vec = _build_static("vectorised", conn_list, spikes, n_post)

    assert stock["len"] == vec["len"] == 300
    assert _sorted(vec["list"]) == _sorted(stock["list"])
    # stronger: same synapse order inside Brian2 as the stock connector
    assert vec["list"] == stock["list"]
    # the list really reached Brian2 (delays rounded to whole ms, weights as given)
    expected = _sorted([tuple(row) for row in conn_list])
    np.testing.assert_allclose(np.array(_sorted(vec["list"])), np.array(expected), rtol=1e-12)

    n_spikes = sum(len(t) for t in stock["spikes"])
    assert n_spikes > 0, "test network should make the post neurons fire"
    assert len(vec["spikes"]) == len(stock["spikes"]) == n_post
    for a, b in zip(vec["spikes"], stock["spikes"], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(vec["v"], stock["v"])


def test_inhibitory_negative_weights_identical_to_stock() -> None:
    rng = np.random.default_rng(777)
    n_pre, n_post = 30, 10
    conn_list = _random_list(rng, n_pre, n_post, 150, -2.0, 0.0, (1, 2, 3))
    spikes = _spike_times(rng, n_pre, 3, 50.0)

    stock = _build_static("stock", conn_list, spikes, n_post, receptor="inhibitory", t_run=60.0)
    vec = _build_static("vectorised", conn_list, spikes, n_post, receptor="inhibitory", t_run=60.0)

    assert stock["len"] == vec["len"] == 150
    assert _sorted(vec["list"]) == _sorted(stock["list"])
    assert all(w <= 0 for _, _, w, _ in vec["list"])
    assert any(w < 0 for _, _, w, _ in vec["list"])
    # the inhibition acted identically (membrane potentials went below rest, same trace)
    assert vec["v"].min() < -65.0
    np.testing.assert_array_equal(vec["v"], stock["v"])


def _build_stdp(kind: str, conn_list: np.ndarray, spikes: list[list[float]],
                n_post: int) -> dict[str, Any]:
    def body() -> dict[str, Any]:
        pre = sim.Population(len(spikes), sim.SpikeSourceArray(spike_times=spikes))
        post = sim.Population(n_post, sim.IF_curr_exp())
        post.record("spikes")
        stdp = sim.STDPMechanism(
            timing_dependence=sim.SpikePairRule(tau_plus=20, tau_minus=20,
                                                A_plus=0.01, A_minus=0.012),
            weight_dependence=sim.MultiplicativeWeightDependence(w_min=0, w_max=2),
            dendritic_delay_fraction=0, weight=0.5, delay=1.0)
        prj = sim.Projection(pre, post,
                             CONNECTORS[kind](conn_list, column_names=["weight", "delay"]),
                             stdp, receptor_type="excitatory")
        out = {"initial": prj.get(["weight", "delay"], format="list"), "len": len(prj)}
        sim.run(300)
        out["final"] = prj.get("weight", format="list")
        out["spikes"] = _trains(post)
        return out

    return _in_session(body)


def test_stdp_weights_evolve_identically() -> None:
    rng = np.random.default_rng(2024)
    n_pre, n_post = 20, 5
    conn_list = _random_list(rng, n_pre, n_post, 80, 0.4, 1.0, (1, 2))
    # background spikes plus synchronous volleys every 40 ms (the volleys make the
    # post neurons fire; the background spikes fall before and after those)
    volleys = np.arange(20.0, 300.0, 40.0)
    spikes = [sorted(set(np.round(np.concatenate([volleys + rng.integers(0, 3),
                                                  rng.uniform(1, 295, 6)])).tolist()))
              for _ in range(n_pre)]

    stock = _build_stdp("stock", conn_list, spikes, n_post)
    vec = _build_stdp("vectorised", conn_list, spikes, n_post)

    assert stock["len"] == vec["len"] == 80
    assert _sorted(vec["initial"]) == _sorted(stock["initial"])
    assert sum(len(t) for t in vec["spikes"]) > 0, "post neurons must fire for STDP to act"
    for a, b in zip(vec["spikes"], stock["spikes"], strict=True):
        np.testing.assert_array_equal(a, b)

    final_stock = np.array(_sorted(stock["final"]))
    final_vec = np.array(_sorted(vec["final"]))
    np.testing.assert_array_equal(final_vec[:, :2], final_stock[:, :2])
    assert np.allclose(final_vec[:, 2], final_stock[:, 2])
    initial = np.array(_sorted(vec["initial"]))
    np.testing.assert_array_equal(initial[:, :2], final_vec[:, :2])
    assert not np.allclose(final_vec[:, 2], initial[:, 2]), "STDP did not change any weight"


@pytest.mark.parametrize("row", [(40, 0, 1.0, 1.0), (0, 15, 1.0, 1.0), (-1, 0, 1.0, 1.0),
                                 (0, -1, 1.0, 1.0)])
def test_out_of_range_index_raises(session: Any, row: tuple) -> None:
    pre = sim.Population(40, sim.SpikeSourceArray(spike_times=[[]] * 40))
    post = sim.Population(15, sim.IF_curr_exp())
    conn_list = [(0, 0, 1.0, 1.0), (3, 4, 1.0, 2.0), row]
    with pytest.raises(PyNNConnectionError):
        sim.Projection(pre, post, VectorisedFromListConnector(conn_list), sim.StaticSynapse())


def test_invalid_column_name_raises(session: Any) -> None:
    pre = sim.Population(4, sim.SpikeSourceArray(spike_times=[[]] * 4))
    post = sim.Population(3, sim.IF_curr_exp())
    connector = VectorisedFromListConnector([(0, 0, 1.0)], column_names=["tau_plus"])
    with pytest.raises(ValueError):
        sim.Projection(pre, post, connector, sim.StaticSynapse())


@pytest.mark.parametrize("conn_list", [[], np.empty((0, 4))])
def test_empty_list_builds_empty_projection(session: Any, conn_list: Any) -> None:
    pre = sim.Population(4, sim.SpikeSourceArray(spike_times=[[]] * 4))
    post = sim.Population(3, sim.IF_curr_exp())
    prj = sim.Projection(pre, post, VectorisedFromListConnector(conn_list), sim.StaticSynapse())
    assert len(prj) == 0
    assert prj.get(["weight", "delay"], format="list") == []
    # (like the stock connector's, an empty pyNN.brian2 projection cannot be *run*:
    #  Brian2 refuses a Synapses object without synapses)


def test_brian2_keeps_given_order_and_appends(session: Any) -> None:
    """The assumption the connector relies on: new synapses are appended in i/j order."""
    rng = np.random.default_rng(5)
    conn_list = _random_list(rng, 12, 7, 40, 0.0, 2.0, (1, 2, 3))
    pre = sim.Population(12, sim.SpikeSourceArray(spike_times=[[]] * 12))
    post = sim.Population(7, sim.IF_curr_exp())
    connector = VectorisedFromListConnector(conn_list, column_names=["weight", "delay"])
    prj = sim.Projection(pre, post, connector, sim.StaticSynapse())
    syn = prj._brian2_synapses[0][0]
    expected = conn_list[np.argsort(conn_list[:, 1])]  # the stock connector's order
    np.testing.assert_array_equal(syn.i[:], expected[:, 0])
    np.testing.assert_array_equal(syn.j[:], expected[:, 1])
    # a second connect() appends after the existing synapses (start index != 0)
    connector.connect(prj)
    assert len(prj) == 80
    got = np.array(prj.get(["weight", "delay"], format="list"))
    np.testing.assert_array_equal(got[40:, :2], expected[:, :2])
    np.testing.assert_allclose(got[40:, 2:], expected[:, 2:], rtol=1e-12)
    np.testing.assert_array_equal(got[:40], got[40:])


def test_multapses_keep_their_own_values(session: Any) -> None:
    # the stock path assigns by (pre, post) pair, so multapses share the last value;
    # the vectorised path gives each synapse its own value
    conn_list = [(0, 1, 0.5, 1.0), (2, 1, 0.7, 2.0), (0, 1, 1.5, 3.0), (0, 1, 0.25, 2.0)]
    pre = sim.Population(3, sim.SpikeSourceArray(spike_times=[[]] * 3))
    post = sim.Population(2, sim.IF_curr_exp())
    prj = sim.Projection(pre, post, VectorisedFromListConnector(conn_list), sim.StaticSynapse())
    assert len(prj) == 4
    got = np.array(_sorted(prj.get(["weight", "delay"], format="list")))
    np.testing.assert_allclose(got, np.array(_sorted(conn_list)), rtol=1e-12)


def test_population_view_falls_back_to_stock() -> None:
    rng = np.random.default_rng(99)
    conn_list = _random_list(rng, 10, 6, 30, 0.0, 2.0, (1, 2, 3))

    def build(kind: str) -> list[tuple]:
        def body() -> list[tuple]:
            pre = sim.Population(20, sim.SpikeSourceArray(spike_times=[[]] * 20))
            post = sim.Population(8, sim.IF_curr_exp())
            prj = sim.Projection(pre[5:15], post[1:7],
                                 CONNECTORS[kind](conn_list, column_names=["weight", "delay"]),
                                 sim.StaticSynapse())
            assert len(prj) == 30
            return prj.get(["weight", "delay"], format="list")

        return _in_session(body)

    vec = build("vectorised")
    assert _sorted(vec) == _sorted(build("stock"))
    np.testing.assert_allclose(np.array(_sorted(vec)),
                               np.array(_sorted([tuple(r) for r in conn_list])), rtol=1e-12)


def test_scale_100k(session: Any) -> None:
    rng = np.random.default_rng(0)
    n_pre, n_post, n_conn = 1000, 200, 100_000
    conn_list = _random_list(rng, n_pre, n_post, n_conn, 0.0, 2.0, (1, 2, 3))
    pre = sim.Population(n_pre, sim.SpikeSourceArray(spike_times=[[]] * n_pre))
    post = sim.Population(n_post, sim.IF_curr_exp())
    t0 = time.perf_counter()
    prj = sim.Projection(pre, post,
                         VectorisedFromListConnector(conn_list, column_names=["weight", "delay"]),
                         sim.StaticSynapse())
    elapsed = time.perf_counter() - t0
    print(f"\nVectorisedFromListConnector: built {len(prj)} synapses in {elapsed:.3f} s")
    assert len(prj) == n_conn
    weights = np.asarray(prj._brian2_synapses[0][0].weight[:])
    assert weights.shape == (n_conn,)
