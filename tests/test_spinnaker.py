"""The sPyNNaker backend on a virtual 48-chip board (no SpiNNaker hardware needed).

Every sPyNNaker run here gets its config and reports in ``tmp_path`` and runs
with an empty current directory under ``tmp_path``, which must stay empty.
The user's (here: a fake) ``~/.spynnaker.cfg`` must be neither read nor touched.
"""

from __future__ import annotations

import configparser
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("spynnaker")

from spinnconv.backends.base import Connections, STDPRule
from spinnconv.backends.spinnaker import (
    SpiNNakerBackend,
    format_resource_report,
    max_summed_weight_equal_delays,
    plastic_weight_step_on_board,
    plastic_weights_on_board,
    quantise_weights_like_spinnaker,
    ring_buffer_left_shift,
    spinnaker_stdp_amplitudes,
    spinnaker_weight_scale,
)
from spinnconv.backends.spinnaker.machine import (
    SCP_SCAMP_PORT,
    check_reachable,
    private_config,
    scp_version_request,
    write_spynnaker_config,
)
from spinnconv.errors import RuntimeFailure, UsageError

# would point sPyNNaker at hardware (and break the run) if it were read
POISON_CFG = "[Machine]\nmachine_name = 192.0.2.1\nversion = 5\nvirtual_board = False\n"


def _default_cfgs():
    """sPyNNaker's own default cfg files, in the order sPyNNaker adds them."""
    import pacman
    import spinn_front_end_common
    import spinn_machine
    import spinn_utilities
    import spinnman
    import spynnaker

    return [str(Path(spinn_utilities.__file__).parent / "spinn_utilities.cfg"),
            str(Path(spinn_machine.__file__).parent / "spinn_machine.cfg"),
            str(Path(spinnman.__file__).parent / "spinnman.cfg"),
            str(Path(pacman.__file__).parent / "pacman.cfg"),
            str(Path(spinn_front_end_common.__file__).parent / "interface" / "spinnaker.cfg"),
            str(Path(spynnaker.__file__).parent / "pyNN" / "spynnaker.cfg")]


# -- the small network, mapped once ----------------------------------------------
@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """50 sources -> 100 cells (unsorted FromList), 25 -> 10 STDP, 10 <-> 10 inhibitory."""
    root = tmp_path_factory.mktemp("spinnaker")
    cwd, fake_home, fake_xdg = root / "cwd", root / "fake_home", root / "fake_xdg"
    for folder in (cwd, fake_home, fake_xdg):
        folder.mkdir()
    (fake_home / ".spynnaker.cfg").write_text(POISON_CFG)
    (fake_xdg / ".spynnaker.cfg").write_text(POISON_CFG)
    poisoned = {p: (p.read_bytes(), p.stat().st_mtime_ns)
                for p in (fake_home / ".spynnaker.cfg", fake_xdg / ".spynnaker.cfg")}
    old_cwd = os.getcwd()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(fake_home))
        mp.setenv("XDG_CONFIG_HOME", str(fake_xdg))
        mp.delenv("XDG_CONFIG_DIRS", raising=False)
        os.chdir(cwd)
        backend = SpiNNakerBackend(virtual_board=5, work_dir=root / "work")
        try:
            rng = np.random.default_rng(1)
            backend.setup(timestep_ms=1.0, seed=1)
            env_after_setup = {k: os.environ.get(k) for k in ("HOME", "XDG_CONFIG_HOME")}
            src = backend.spike_source([np.array([1.0 + i % 30]) for i in range(50)], "src")
            exc = backend.population(100, {}, "exc")
            pairs = np.array([(i, j) for i in range(50) for j in range(100)])
            pairs = pairs[rng.permutation(len(pairs))[:1200]]  # unsorted on purpose
            c_exc = Connections.build(pairs[:, 0], pairs[:, 1],
                                      rng.uniform(0.01, 1.5, len(pairs)), 1.0)
            p_exc = backend.connect(src, exc, c_exc, label="src->exc")

            src2 = backend.spike_source([np.array([2.0, 7.0])] * 25, "src2")
            out = backend.population(10, {}, "out")
            pre, post = (a.ravel() for a in np.meshgrid(np.arange(25), np.arange(10),
                                                        indexing="ij"))
            c_stdp = Connections.build(pre, post, rng.uniform(0.05, 0.8, pre.size), 1.0)
            p_stdp = backend.connect(src2, out, c_stdp, label="src2->out",
                                     stdp=STDPRule(20.0, 20.0, 0.01, 0.012, 0.0, 1.0,
                                                   "multiplicative"))
            pre, post = (a.ravel() for a in np.meshgrid(np.arange(10), np.arange(10),
                                                        indexing="ij"))
            keep = pre != post
            c_inh = Connections.build(pre[keep], post[keep],
                                      rng.uniform(0.1, 0.6, keep.sum()), 1.0)
            p_inh = backend.connect(out, out, c_inh, receptor="inhibitory", label="out-|out")
            # a population told its largest input per step, as training's kernels are
            bounded = backend.population(10, {}, "bounded", max_input_na=(3.0, 0.5))
            c_bounded = Connections.build(pre.ravel(), post.ravel(),
                                          rng.uniform(0.05, 0.8, 100), 1.0)
            p_bounded = backend.connect(out, bounded, c_bounded, label="out->bounded",
                                        stdp=STDPRule(20.0, 20.0, 0.01, 0.012, 0.0, 1.0,
                                                   "multiplicative"))
            backend.record(exc)
            backend.record(out)

            populations = {"src": src, "exc": exc, "src2": [src2], "out": out}
            with pytest.raises(RuntimeFailure, match="call run"):
                backend.resource_report(populations)  # nothing mapped yet

            t0 = time.perf_counter()
            backend.run(100.0)
            map_s = time.perf_counter() - t0
            from spinn_utilities.config_holder import get_config_bool, get_config_str_or_none
            used_cfg = (get_config_bool("Machine", "virtual_board"),
                        get_config_str_or_none("Machine", "machine_name"))
            report = backend.resource_report(populations)
            yield {
                "backend": backend, "root": root, "cwd": cwd, "map_s": map_s,
                "report": report, "populations": populations, "used_cfg": used_cfg,
                "env_after_setup": env_after_setup, "poisoned": poisoned,
                "env": {"HOME": str(fake_home), "XDG_CONFIG_HOME": str(fake_xdg)},
                "projections": [(p_exc, c_exc), (p_stdp, c_stdp), (p_inh, c_inh)],
                "bounded": (p_bounded, c_bounded, (3.0, 0.5)),
            }
        finally:
            backend.end()
            os.chdir(old_cwd)


def test_small_net_maps_on_virtual_board(mapped):
    report = mapped["report"]
    print(f"\nmapping (sim.run on virtual SpiNN-5) took {mapped['map_s']:.2f} s")
    print(format_resource_report(report))
    rows = {row["label"]: row for row in report["rows"]}
    assert list(rows) == ["src", "exc", "src2", "out"]
    for label, pops in mapped["populations"].items():
        pops = pops if isinstance(pops, list) else [pops]
        assert rows[label]["neurons"] == sum(p.size for p in pops)
        assert rows[label]["cores"] > 0
        assert rows[label]["chips"] > 0
        assert rows[label]["sdram_bytes"] > 0
    total = report["total"]
    assert sum(r["cores"] for r in report["rows"]) == total["cores"]
    assert sum(r["sdram_bytes"] for r in report["rows"]) == total["sdram_bytes"]
    assert total["neurons"] == 185
    # sources and "out" (self-projection) send spikes, "exc" sends nowhere
    assert rows["exc"]["routing_entries"] == 0
    assert all(rows[k]["routing_entries"] > 0 for k in ("src", "src2", "out"))
    machine = report["machine"]
    assert machine["chips_available"] == 48
    assert machine["cores_placed"] > total["cores"]  # + sPyNNaker's system cores
    assert mapped["map_s"] < 60


def test_nothing_written_to_cwd_and_reports_in_work_dir(mapped):
    assert list(mapped["cwd"].iterdir()) == []
    backend = mapped["backend"]
    runs = list(backend.reports_dir.glob("*/run_1"))
    assert runs, f"no sPyNNaker run folder under {backend.reports_dir}"
    assert backend.reports_dir.is_relative_to(mapped["root"])


def test_user_configs_neither_read_nor_touched(mapped):
    # a poisoned ~/.spynnaker.cfg and $XDG_CONFIG_HOME/.spynnaker.cfg were present:
    # read, they would have asked for hardware (or raised TwoUserConfigsException)
    assert mapped["used_cfg"] == (True, None)
    for path, (content, mtime) in mapped["poisoned"].items():
        assert path.read_bytes() == content
        assert path.stat().st_mtime_ns == mtime
    assert mapped["env_after_setup"] == mapped["env"]  # restored right after sim.setup
    assert not (Path(mapped["env"]["HOME"]) / "reports").exists()


def test_weights_read_back_are_spinnaker_quantised(mapped):
    backend = mapped["backend"]
    for projection, conns in mapped["projections"]:
        got = backend.weights(projection)
        assert got.shape == (projection.pre.size, projection.post.size)
        read = got[conns.pre, conns.post]
        q = backend.weight_quantisation(projection)
        expect = quantise_weights_like_spinnaker(conns.weight,
                                                 ring_buffer_shift=q["ring_buffer_shift"])
        np.testing.assert_array_equal(read, expect)  # bit-exact
        assert np.max(np.abs(read - conns.weight)) <= q["weight_step"] / 2
        assert np.isnan(got).sum() == got.size - len(conns)


def test_ring_buffer_shift_rule_matches_spinnaker(mapped):
    """Our shift formula (equal delays) against PopulationVertex.get_ring_buffer_shifts."""
    backend = mapped["backend"]
    (p_exc, c_exc), (p_stdp, c_stdp), (p_inh, c_inh) = mapped["projections"]

    def fan_in(c):
        return int(np.bincount(c.post).max())

    cases = [
        (p_exc, [(c_exc.weight.max(), fan_in(c_exc), 1)]),
        (p_stdp, [(max(c_stdp.weight.max(), 1.0), fan_in(c_stdp), 1)]),  # STDP: w_max 1.0
        (p_inh, [(c_inh.weight.max(), fan_in(c_inh), 1)]),
    ]
    for projection, stats in cases:
        q = backend.weight_quantisation(projection)
        shift = ring_buffer_left_shift(max_summed_weight_equal_delays(stats))
        assert shift == q["ring_buffer_shift"]
        assert spinnaker_weight_scale(shift) == q["weight_scale"]
        np.testing.assert_array_equal(
            backend.quantised(projection, c_exc.weight),
            quantise_weights_like_spinnaker(c_exc.weight,
                                            max_summed_weight=max_summed_weight_equal_delays(
                                                stats)))


def test_max_input_sets_the_plastic_weight_grid(mapped):
    """A population given ``max_input_na`` (training's kernel population) gets its
    ring-buffer shifts from it, and plastic_weights_on_board /
    plastic_weight_step_on_board are then exactly what the board stores."""
    backend = mapped["backend"]
    projection, conns, max_input_na = mapped["bounded"]
    vertex = projection._projection_edge.post_vertex
    assert list(vertex.get_ring_buffer_shifts()) == [2, 0]  # 3.0 nA < 2**2, 0.5 nA < 2**0
    q = backend.weight_quantisation(projection)
    assert q["weight_step"] == plastic_weight_step_on_board(max_input_na[0]) == 2.0 ** -13
    read = backend.weights(projection)[conns.pre, conns.post]
    np.testing.assert_array_equal(read, plastic_weights_on_board(conns.weight, max_input_na[0]))
    # sPyNNaker's own bound (10 inputs at w_max = 1 nA) would be 4x coarser
    assert plastic_weight_step_on_board(10 * 1.0) == 4 * q["weight_step"]


def test_quantisation_matches_spinnakers_own_encoder(mapped):
    """Encode with SynapseDynamicsStatic.get_static_synaptic_data, decode like synapse_io."""
    from spynnaker.pyNN.models.neural_projections.connectors import AbstractConnector
    from spynnaker.pyNN.models.neuron.synapse_dynamics import SynapseDynamicsStatic

    rng = np.random.default_rng(7)
    dynamics = SynapseDynamicsStatic(weight=0.0, delay=1.0)
    for shift in (0, 1, 3, 5, 8, 12):
        scale = spinnaker_weight_scale(shift)
        top = 2.0 ** shift
        w = np.concatenate([
            rng.uniform(0, top, 400),
            (np.arange(50) + 0.5) / scale,  # exact ties: round half to even
            [0.0, 1 / scale, top - 1 / scale, top * (1 - 1e-9)],
        ])
        conns = np.zeros(w.size, dtype=AbstractConnector.NUMPY_SYNAPSES_DTYPE)
        conns["source"] = 0
        conns["target"] = np.arange(w.size) % 256
        conns["weight"] = w * scale  # synapse_io.get_synapses scales first
        conns["delay"] = 1
        ff_data, ff_size = dynamics.get_static_synaptic_data(
            conns, np.zeros(w.size, dtype=np.uint32), 1, 2, w.size, 256)
        back = dynamics.read_static_synaptic_data(2, ff_size, ff_data, 256)
        spinnaker = back["weight"] / scale  # synapse_io._rescale_connections
        ours = quantise_weights_like_spinnaker(w, ring_buffer_shift=shift)
        np.testing.assert_array_equal(ours, spinnaker)


def test_spikes_empty_on_virtual_board(mapped):
    backend = mapped["backend"]
    exc = mapped["populations"]["exc"]
    index, times = backend.spikes(exc)
    assert index.shape == times.shape == (0,)


def test_connector_sorts_by_pre_then_post(mapped):
    backend = mapped["backend"]
    conn = np.array([[3, 1, 0.1, 1], [0, 5, 0.2, 1], [3, 0, 0.3, 1], [0, 2, 0.4, 1]], float)
    connector = backend.connector(conn)
    np.testing.assert_array_equal(connector.conn_list[:, :2], [[0, 2], [0, 5], [3, 0], [3, 1]])
    assert backend.dendritic_delay_fraction == 1.0
    assert backend.inhibitory_weight_sign == 1.0


# -- machine choice and config -------------------------------------------------------
@pytest.mark.parametrize("kwargs, expect", [
    ({"virtual_board": 3}, {"virtual_board": "True", "version": "3"}),
    ({"virtual_board": 5}, {"virtual_board": "True", "version": "5"}),
    ({"host": "10.11.192.1"}, {"machine_name": "10.11.192.1", "version": "5"}),
    ({"spalloc_server": "https://spinnaker.example.org/spalloc/"},
     {"spalloc_server": "https://spinnaker.example.org/spalloc/", "version": "5"}),
])
def test_config_for_each_machine(tmp_path, kwargs, expect):
    from spinn_utilities.conf_loader import _check_config, load_defaults

    path = write_spynnaker_config(tmp_path / "cfg", reports_dir=tmp_path / "out", **kwargs)
    assert path == tmp_path / "cfg" / ".spynnaker.cfg"
    assert path.stat().st_mode & 0o077 == 0
    cfg = configparser.RawConfigParser()
    cfg.read(path)
    assert dict(cfg["Machine"]) == expect
    assert cfg["Reports"]["default_report_file_path"] == str((tmp_path / "out").resolve())
    assert cfg["Mode"]["mode"] == "Production"
    # every option we write is a real sPyNNaker option (strict check raises otherwise)
    _check_config(str(path), load_defaults(_default_cfgs()), True)


@pytest.mark.parametrize("kwargs", [
    {},
    {"virtual_board": 5, "host": "10.0.0.1"},
    {"virtual_board": 4},
    {"virtual_board": True},
    {"host": "999.1.2.3"},
    {"host": "10.0.0"},
    {"host": "fe80::1"},
    {"host": "not a host"},
    {"spalloc_server": "ftp://server/"},
    {"spalloc_server": "http://"},
    {"spalloc_server": "http://server:99999/"},
])
def test_config_refuses_bad_machine_choices(tmp_path, kwargs):
    with pytest.raises(UsageError):
        write_spynnaker_config(tmp_path, **kwargs)
    assert not (tmp_path / ".spynnaker.cfg").exists()


def test_private_config_isolates_and_restores_env(tmp_path, monkeypatch):
    fake_home = tmp_path / "home"
    fake_home.mkdir()
    (fake_home / ".spynnaker.cfg").write_text(POISON_CFG)
    before = (fake_home / ".spynnaker.cfg").read_bytes()
    monkeypatch.setenv("HOME", str(fake_home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_DIRS", "/etc/xdg")
    write_spynnaker_config(tmp_path / "cfg", virtual_board=5)
    with private_config(tmp_path / "cfg") as cfg:
        from spinn_utilities.conf_loader import _config_locations

        found = [p for p in _config_locations("spynnaker.cfg") if os.path.isfile(p)]
        assert found == [str(cfg)]  # sPyNNaker's own search finds only ours
        assert os.path.expanduser("~") != str(fake_home)
    assert os.environ["HOME"] == str(fake_home)
    assert "XDG_CONFIG_HOME" not in os.environ
    assert os.environ["XDG_CONFIG_DIRS"] == "/etc/xdg"
    assert (fake_home / ".spynnaker.cfg").read_bytes() == before
    with pytest.raises(UsageError, match="write_spynnaker_config"), \
            private_config(tmp_path / "empty"):
        pass


# -- failing fast on a board that is not there ---------------------------------------
def test_bad_ip_refused_fast_with_one_line(tmp_path):
    t0 = time.perf_counter()
    backend = SpiNNakerBackend(host="192.0.2.1", work_dir=tmp_path)  # TEST-NET-1
    with pytest.raises(RuntimeFailure) as err:
        backend.setup(1.0, 0)
    elapsed = time.perf_counter() - t0
    message = str(err.value)
    print(f"\n{elapsed:.2f} s: {message}")
    assert elapsed < 10
    assert "\n" not in message
    assert message.startswith("SpiNNaker board at 192.0.2.1 not reachable")
    with pytest.raises(UsageError):
        SpiNNakerBackend(host="192.0.2.300", work_dir=tmp_path)


def test_scp_ping_bytes_match_spinnman_and_reach_a_fake_scamp():
    from spinnman.messages.scp.impl.get_version import GetVersion

    request = GetVersion(0, 0, 0)
    request.sdp_header.update_for_send(0, 0)
    request.scp_request_header.sequence = 1234
    assert scp_version_request(1234) == b"\x00\x00" + request.bytestring

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", SCP_SCAMP_PORT))
    except OSError:
        sock.close()
        pytest.skip(f"UDP port {SCP_SCAMP_PORT} busy")

    def answer():
        data, peer = sock.recvfrom(512)
        sock.sendto(data[:10] + b"\x80\x00" + data[12:14], peer)  # RC_OK + sequence

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        assert "answered SCP" in check_reachable("127.0.0.1", timeout_s=2)
    finally:
        thread.join(3)
        sock.close()


def test_unreachable_spalloc_fails_fast():
    with socket.socket() as listener:  # a port nobody listens on once closed
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(RuntimeFailure, match="spalloc server at 127.0.0.1"):
        check_reachable(spalloc_server=f"http://127.0.0.1:{port}/", timeout_s=2)
    assert time.perf_counter() - t0 < 5


def test_silent_board_times_out_within_timeout():
    """A host that swallows the SCP packet (no reply, no ICMP) fails after timeout_s."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", SCP_SCAMP_PORT))
    except OSError:
        sock.close()
        pytest.skip(f"UDP port {SCP_SCAMP_PORT} busy")
    try:
        t0 = time.perf_counter()
        with pytest.raises(RuntimeFailure, match="no SCP reply on UDP 17893 within 1 s"):
            check_reachable("127.0.0.1", timeout_s=1)
        assert 0.9 < time.perf_counter() - t0 < 3
    finally:
        sock.close()


def test_additive_stdp_steps_are_fractions_of_w_max_on_spinnaker(mapped):
    """sPyNNaker writes the additive A± as nA; the backend pre-multiplies by w_max so a
    pair moves a weight by A·w_max, as in PyNN, NEST and Brian2."""
    backend = mapped["backend"]
    rule = STDPRule(20.0, 20.0, 0.01, 0.012, 0.0, 2.5, weight_dependence="additive")
    one = Connections.build(np.array([0]), np.array([0]), 0.5, 1.0)
    dynamics = backend.synapse(one, rule)
    assert dynamics.weight_dependence.A_plus == pytest.approx(0.01 * 2.5)
    assert dynamics.weight_dependence.A_minus == pytest.approx(0.012 * 2.5)
    assert dynamics.weight_dependence.w_max == 2.5
    soft = STDPRule(20.0, 20.0, 0.01, 0.012, 0.0, 2.5, weight_dependence="multiplicative")
    assert backend.synapse(one, soft).weight_dependence.A_plus == pytest.approx(0.01)
    # the plastic projection of the mapped network went through the same path
    assert spinnaker_stdp_amplitudes(rule).a_plus == pytest.approx(0.025)
