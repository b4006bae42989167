"""Deploying the default networks with sPyNNaker on virtual boards (no hardware needed).

Every sPyNNaker run writes its config and reports under ``tmp_path`` and runs
with an empty current directory that must stay empty. Mapping the MNIST net
with FromList takes ~40 s (sPyNNaker expands 1.6 M synapses on the host); the
whole file takes about two minutes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("spynnaker")

from spinnconv import connectivity as cn
from spinnconv import network
from spinnconv.backends.spinnaker import (
    SpiNNakerBackend,
    build_native_network,
    deploy,
    format_report,
    native_atoms_per_core,
    native_problems,
    probe_spike_times,
    spinnaker_quantisation,
    spinnaker_weight_quantiser,
    translate_spinnaker_error,
)
from spinnconv.config import build_model, resolve_parameters
from spinnconv.errors import RuntimeFailure, UsageError
from spinnconv.model import ConvLayer, PoolLayer, SequentialModel

IMAGE_SHAPES = {"digits": (8, 8), "mnist": (28, 28)}
ROW_KEYS = ("populations", "neurons", "cores", "chips", "sdram_bytes")


def random_kernels(model: SequentialModel, seed: int = 0, top: float = 1.5,
                   sparsity: float = 0.2) -> dict[int, np.ndarray]:
    """Kernels of the right shapes for every conv layer; ``sparsity`` of them are zero."""
    rng = np.random.default_rng(seed)
    kernels = {}
    for position in model.conv_layer_positions:
        layer = model.layers[position]
        shape = (layer.n_kernels, *layer.kernel_shape, model.input_shape_of(position)[2])
        kernels[position] = rng.uniform(0.0, top, shape) * (rng.random(shape) >= sparsity)
    return kernels


def default_net(dataset: str, seed: int = 0, overrides: dict | None = None):
    params = resolve_parameters(dataset, overrides)
    model = build_model(params, IMAGE_SHAPES[dataset])
    return model, random_kernels(model, seed), params


@pytest.fixture(scope="module")
def empty_cwd(tmp_path_factory):
    """Run everything from an empty directory, which must stay empty."""
    cwd = tmp_path_factory.mktemp("cwd")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        yield cwd
    finally:
        os.chdir(old)


def timed_deploy(*args, **kwargs) -> dict:
    started = time.perf_counter()
    report = deploy(*args, **kwargs)
    print(f"\n{format_report(report)}\n(deploy wall time {time.perf_counter() - started:.1f} s)")
    return report


def check_rows(report: dict, model: SequentialModel) -> None:
    """Row labels and neurons follow the model; every number positive; totals add up."""
    rows = report["rows"]
    upto = len(model.spiking_layers)
    assert [row["layer"] for row in rows] == (
        ["input"] + [f"layer{p + 1}_{model.layers[p].kind}" for p in range(upto)])
    shapes = [model.input_shape] + [model.output_shape_of(p) for p in range(upto)]
    for row, shape in zip(rows, shapes, strict=True):
        assert row["neurons"] == int(np.prod(shape))
        for key in ROW_KEYS:
            assert row[key] > 0, (row["layer"], key, row[key])
    total = report["total"]
    for key in ("cores", "sdram_bytes", "neurons", "routing_entries", "populations"):
        assert sum(row[key] for row in rows) == total[key]
    assert max(row["chips"] for row in rows) <= total["chips"] <= sum(r["chips"] for r in rows)
    machine = report["machine"]
    assert machine["cores_placed"] > total["cores"]  # plus sPyNNaker's system cores
    assert total["cores"] <= machine["cores_available"]
    assert report["seconds"] > 0


# -- the default digits net ------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_reports(tmp_path_factory, empty_cwd):
    model, kernels, params = default_net("digits")
    root = tmp_path_factory.mktemp("digits")
    machine = {"virtual_board": 5}
    reports = {mode: timed_deploy(model, kernels, params, machine, root / mode, mode)
               for mode in ("fromlist", "native", "auto")}
    return model, reports, root


def test_digits_fromlist_maps_on_virtual_board(digits_reports):
    model, reports, _ = digits_reports
    report = reports["fromlist"]
    assert report["conv_mode"] == report["requested_mode"] == "fromlist"
    check_rows(report, model)
    assert [row["populations"] for row in report["rows"]] == [1, 1, 1]
    assert report["machine"]["chips_available"] == 48
    assert report["machine"]["description"] == "virtual SpiNN-5 x1"
    # conv (lateral inhibition) and input send spikes, the last layer does not
    rows = {row["layer"]: row for row in report["rows"]}
    assert rows["layer2_pool"]["routing_entries"] == 0
    assert rows["input"]["routing_entries"] > 0 and rows["layer1_conv"]["routing_entries"] > 0


def test_digits_native_maps_with_one_population_per_map(digits_reports):
    model, reports, _ = digits_reports
    report = reports["native"]
    assert report["conv_mode"] == "native"
    check_rows(report, model)
    # 2 input channels, 16 conv maps, 16 pooled maps
    assert [row["populations"] for row in report["rows"]] == [2, 16, 16]
    assert [r["neurons"] for r in report["rows"]] == \
        [r["neurons"] for r in reports["fromlist"]["rows"]]
    assert any("kernels flipped" in note for note in report["notes"])
    assert any("layer1_conv 240" in note for note in report["notes"])  # 16 * 15 projections


def test_digits_auto_picks_the_mapping_with_fewer_cores(digits_reports):
    _, reports, _ = digits_reports
    auto = reports["auto"]
    assert auto["requested_mode"] == "auto"
    candidates = auto["candidates"]
    assert candidates["fromlist"]["fits"] and candidates["native"]["fits"]
    for mode in ("fromlist", "native"):  # mapping is deterministic
        assert candidates[mode]["cores"] == reports[mode]["total"]["cores"]
        assert candidates[mode]["sdram_bytes"] == reports[mode]["total"]["sdram_bytes"]
    fewer = min(("fromlist", "native"), key=lambda m: (candidates[m]["cores"], m != "fromlist"))
    assert auto["conv_mode"] == fewer
    assert auto["total"]["cores"] == min(c["cores"] for c in candidates.values())
    text = format_report(auto)
    assert "candidate fromlist" in text and "candidate native" in text


def test_reports_in_work_dir_and_cwd_untouched(digits_reports, empty_cwd):
    _, reports, root = digits_reports
    assert list(empty_cwd.iterdir()) == []
    for mode in ("fromlist", "native"):
        work = Path(reports[mode]["work_dir"])
        assert work.is_relative_to(root)
        assert list(work.glob("reports/*/run_1")), f"no sPyNNaker run folder in {work}"
        assert (work / "config" / ".spynnaker.cfg").is_file()
        assert (work / "spynnaker_progress.log").is_file()  # progress bars kept out of stderr


def test_format_report_is_an_aligned_table(digits_reports):
    _, reports, _ = digits_reports
    report = reports["fromlist"]
    lines = format_report(report).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("layer"))
    table = lines[header:header + len(report["rows"]) + 4]  # header, rule, rows, rule, total
    assert len({len(line) for line in table}) == 1, table
    assert table[1].strip("-") == "" and table[-2].strip("-") == ""
    assert table[-1].startswith("total")
    for line, row in zip(table[2:-2], report["rows"], strict=True):
        assert line.split()[0] == row["layer"]
        assert f"{row['cores']:,}" in line.split()


# -- the default MNIST net -------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_auto(tmp_path_factory, empty_cwd):
    model, kernels, params = default_net("mnist")
    report = timed_deploy(model, kernels, params, {"virtual_board": 5},
                          tmp_path_factory.mktemp("mnist"), "auto")
    return model, report


def test_mnist_maps_with_fromlist_and_native(mnist_auto):
    model, report = mnist_auto
    candidates = report["candidates"]
    assert candidates["fromlist"]["fits"] and candidates["native"]["fits"]
    fromlist = candidates["fromlist"]["report"]
    native = candidates["native"]["report"]
    check_rows(fromlist, model)
    check_rows(native, model)
    n_spiking = len(model.spiking_layers)
    assert [row["populations"] for row in fromlist["rows"]] == [1] * (1 + n_spiking)
    # native: one Grid2D population per feature map (and per input channel)
    assert [row["populations"] for row in native["rows"]] == [
        shape[2] for shape in model.shapes[:1 + n_spiking]]
    # 17,280 conv neurons: FromList packs 256 per core, native 24x8 rectangles per map
    assert fromlist["rows"][1]["cores"] == 68
    assert native["rows"][1]["cores"] == 30 * 3
    assert report["conv_mode"] == min(candidates, key=lambda m: (candidates[m]["cores"],
                                                                 m != "fromlist"))


# -- failures --------------------------------------------------------------------------------------
def test_net_that_does_not_fit_fails_with_one_line_naming_the_layer(tmp_path, empty_cwd):
    model, kernels, params = default_net("mnist")
    started = time.perf_counter()
    with pytest.raises(RuntimeFailure) as err:
        deploy(model, kernels, params, {"virtual_board": 3}, tmp_path, "fromlist")
    message = str(err.value)
    print(f"\n{time.perf_counter() - started:.1f} s: {message}")
    assert "\n" not in message
    assert "failed at layer1_conv:" in message
    assert "does not fit" in message and "PacmanPlaceException" in message
    assert "virtual SpiNN-3" in message
    from spinn_utilities.data import UtilsDataView

    assert UtilsDataView.is_shutdown()  # sPyNNaker is not left running


def test_delay_out_of_range_names_the_layer(tmp_path, empty_cwd):
    model, kernels, params = default_net("digits", overrides={"synapse_delay_ms": 400.0})
    with pytest.raises(RuntimeFailure) as err:
        deploy(model, kernels, params, {"virtual_board": 5}, tmp_path, "fromlist")
    message = str(err.value)
    assert "\n" not in message
    assert "failed at layer1_conv: delay out of range" in message
    assert "DelayExtensionException" in message


def test_native_refuses_what_it_cannot_express_and_auto_falls_back(tmp_path, empty_cwd):
    model = SequentialModel((8, 8, 2))
    model.add(ConvLayer(4, (3, 3), padding=1))
    model.add(PoolLayer((3, 3), stride=2))  # overlapping windows: not native
    params = resolve_parameters("digits")
    kernels = random_kernels(model, seed=2)
    expect = ("layer2_pool: native pooling needs a square window equal to the stride, "
              "pool is 3x3 stride 2")
    assert native_problems(model) == [expect]
    with pytest.raises(RuntimeFailure, match="failed at layer2_pool: not expressible natively"):
        deploy(model, kernels, params, {"virtual_board": 5}, tmp_path / "n", "native")
    assert not (tmp_path / "n" / "native").exists()  # refused before sPyNNaker started
    report = deploy(model, kernels, params, {"virtual_board": 5}, tmp_path / "a", "auto")
    assert report["conv_mode"] == "fromlist"
    assert not report["candidates"]["native"]["fits"]
    assert "layer2_pool" in report["candidates"]["native"]["error"]


def test_native_problems_for_kernels_and_strides():
    model = SequentialModel((9, 9, 1))
    model.add(ConvLayer(2, (3, 2)))
    assert "square kernels" in native_problems(model)[0]
    model = SequentialModel((9, 9, 1))
    model.add(ConvLayer(2, (3, 3), stride=2))  # ours 4x4, sPyNNaker's (9-2)//2 = 3x3
    assert "makes a 3x3 output" in native_problems(model)[0]
    model = SequentialModel((8, 8, 1))
    model.add(ConvLayer(2, (3, 3), stride=2))  # both 3x3
    model.add(PoolLayer((2, 2)))
    assert native_problems(model) == []


@pytest.mark.parametrize("make, kind, layer", [
    (lambda: __import__("pacman.exceptions", fromlist=["x"]).PacmanPlaceException(
        " No more chips to start with for layer3_conv Out of 4 0 already full"),
     "does not fit", "layer3_conv"),
    (lambda: __import__("pacman.exceptions", fromlist=["x"]).MinimisationFailedError(
        "The routing table 0:1 with 1100 entries is too big"), "routing tables", None),
    (lambda: __import__("spynnaker.pyNN.exceptions", fromlist=["x"]).SynapseRowTooBigException(
        256, "The connection between input and layer1_conv has more synapses (300) than can"),
     "synaptic row is too long", "layer1_conv"),
    (lambda: NotImplementedError("All delays must be dendritic!"), "not supported", None),
])
def test_translation_of_spinnaker_exceptions(make, kind, layer):
    layers = ["input", "layer1_conv", "layer2_pool", "layer3_conv"]
    message = translate_spinnaker_error(make(), layers, building="layer2_pool_lateral",
                                        context="fromlist, virtual SpiNN-5 x1")
    assert "\n" not in message
    assert kind in message
    assert f"failed at {layer or 'layer2_pool'}:" in message
    fixes = {"does not fit": "n_boards", "routing tables": "conv_mode 'native'",
             "synaptic row is too long": "fewer kernels"}
    if kind in fixes:  # the line ends with what to change
        assert message.rsplit("]", 1)[1].startswith("; ") and fixes[kind] in message


def test_unreachable_board_fails_fast_with_one_line(tmp_path):
    model, kernels, params = default_net("digits")
    started = time.perf_counter()
    with pytest.raises(RuntimeFailure, match="SpiNNaker board at 192.0.2.1 not reachable"):
        deploy(model, kernels, params, {"host": "192.0.2.1", "reachable_timeout_s": 1.0},
               tmp_path, "fromlist")  # TEST-NET-1: nothing answers
    assert time.perf_counter() - started < 10


def test_usage_errors_before_spinnaker_starts(tmp_path):
    model, kernels, params = default_net("digits")
    machine = {"virtual_board": 5}
    with pytest.raises(UsageError, match="conv_mode"):
        deploy(model, kernels, params, machine, tmp_path, "dense")
    with pytest.raises(UsageError, match="expected"):
        deploy(model, {0: kernels[0][:, :2]}, params, machine, tmp_path)
    with pytest.raises(UsageError, match="unknown machine option"):
        deploy(model, kernels, params, {"virtual_board": 5, "boards": 2}, tmp_path)
    with pytest.raises(UsageError, match="virtual board"):
        deploy(model, kernels, params, {"virtual_board": 4}, tmp_path)
    assert not list(tmp_path.iterdir())


def test_native_atoms_per_core_divides_the_map():
    for (width, height, cap), cores in {(24, 24, 256): 3, (28, 28, 256): 4, (8, 8, 256): 1,
                                       (12, 12, 256): 1, (7, 5, 10): 5}.items():
        w, h = native_atoms_per_core(width, height, cap)
        assert width % w == 0 and height % h == 0 and w * h <= cap
        assert (width // w) * (height // h) == cores
    assert native_atoms_per_core(28, 28, 256) == (14, 14)  # the squarest of the fewest


# -- weights as the board uses them -------------------------------------------------------------
class RecordingBackend(SpiNNakerBackend):
    """Keeps every projection with its connection list, by label."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.projections = {}

    def connect(self, pre, post, connections, receptor="excitatory", stdp=None, label=""):
        projection = super().connect(pre, post, connections, receptor=receptor, stdp=stdp,
                                     label=label)
        self.projections[label] = (projection, connections)
        return projection


def kernel_index_of_synapses(model, position, conns):
    """For each synapse of a conv feed-forward list, the flat index into its kernels."""
    layer = model.layers[position]
    shape = (layer.n_kernels, *layer.kernel_shape, model.input_shape_of(position)[2])
    index = np.arange(1, int(np.prod(shape)) + 1, dtype=np.float64).reshape(shape)
    pre, post, flat = cn.conv_connections(model.input_shape_of(position), index, layer.stride,
                                          layer.padding)
    lookup = {(a, b): int(f) - 1 for a, b, f in zip(pre, post, flat, strict=True)}
    return np.array([lookup[(a, b)] for a, b in zip(conns.pre, conns.post, strict=True)])


def test_quantiser_matches_virtual_board_readback(tmp_path, empty_cwd):
    model, kernels, params = default_net("digits", seed=3)
    kernels[0][0, 0, 0, 0] = 1e-5  # below half a weight step: stored as 0
    backend = RecordingBackend(virtual_board=5, work_dir=tmp_path)
    backend.setup(params["timestep_ms"], params["seed"])
    try:
        upto = len(model.spiking_layers)
        network.build_network(backend, model, kernels, params,
                              probe_spike_times(int(np.prod(model.input_shape))), upto)
        backend.run(10.0)
        table = spinnaker_quantisation(model, kernels, params)
        quantised = spinnaker_weight_quantiser(model, kernels, params)
        assert set(quantised) == set(kernels)
        for entry in table:
            label = entry["layer"]
            projection, conns = backend.projections[f"{label}_feedforward"]
            info = backend.weight_quantisation(projection)
            assert entry["excitatory_shift"] == info["ring_buffer_shift"]
            read = backend.weights(projection)[conns.pre, conns.post]
            if entry["kind"] == "conv":
                flat = kernel_index_of_synapses(model, entry["position"], conns)
                expect = quantised[entry["position"]].ravel()[flat]
                np.testing.assert_array_equal(read, expect)  # bit-exact
                assert np.max(np.abs(read - conns.weight)) <= info["weight_step"] / 2
                lateral, lateral_conns = backend.projections[f"{label}_lateral"]
                assert entry["inhibitory_shift"] == \
                    backend.weight_quantisation(lateral)["ring_buffer_shift"]
                np.testing.assert_array_equal(
                    backend.weights(lateral)[lateral_conns.pre, lateral_conns.post],
                    entry["lateral_inhibition_na"])
            else:
                np.testing.assert_array_equal(read, entry["pool_weight_na"])
        assert quantised[0][0, 0, 0, 0] == 0.0
    finally:
        backend.end()


def test_quantiser_shifts_match_spinnaker_for_mnist(tmp_path, empty_cwd):
    """Ring-buffer shifts of every MNIST population/receptor (no run needed)."""
    model, kernels, params = default_net("mnist", seed=4)
    backend = RecordingBackend(virtual_board=5, work_dir=tmp_path)
    backend.setup(params["timestep_ms"], params["seed"])
    try:
        network.build_network(backend, model, kernels, params,
                              probe_spike_times(int(np.prod(model.input_shape))),
                              len(model.spiking_layers))
        for entry in spinnaker_quantisation(model, kernels, params):
            projection, _ = backend.projections[f"{entry['layer']}_feedforward"]
            assert entry["excitatory_shift"] == \
                backend.weight_quantisation(projection)["ring_buffer_shift"]
            if f"{entry['layer']}_lateral" in backend.projections:
                projection, _ = backend.projections[f"{entry['layer']}_lateral"]
                assert entry["inhibitory_shift"] == \
                    backend.weight_quantisation(projection)["ring_buffer_shift"]
    finally:
        backend.end()


def test_native_quantiser_matches_spinnakers_kernel_encoder(tmp_path, empty_cwd):
    """Native shifts per map population and the int16 kernels sPyNNaker would write."""
    model, kernels, params = default_net("digits", seed=5)
    backend = SpiNNakerBackend(virtual_board=5, work_dir=tmp_path)
    backend.setup(params["timestep_ms"], params["seed"])
    try:
        groups, _ = build_native_network(backend, model, kernels, params,
                                         probe_spike_times(int(np.prod(model.input_shape))),
                                         len(model.spiking_layers))
        for entry in spinnaker_quantisation(model, kernels, params, conv_mode="native"):
            for n, population in enumerate(groups[entry["layer"]]):
                vertex = population._vertex
                shifts = vertex.get_ring_buffer_shifts()
                exc = entry["excitatory_shift"]
                assert shifts[0] == (exc[n] if isinstance(exc, list) else exc)
                assert shifts[1] == entry["inhibitory_shift"]
                scales = vertex.get_weight_scales(shifts)
                for projection in vertex.incoming_projections:
                    connector = projection._synapse_information.connector
                    encoded = connector.get_encoded_kernel_weights(
                        projection._projection_edge, scales).astype(np.float64)
                    signed = connector.kernel_weights.ravel()
                    decoded = np.where(signed < 0, encoded / scales[1], encoded / scales[0])
                    label = projection.label
                    if entry["kind"] == "pool":
                        expect = [entry["pool_weight_na"]]
                    elif "_lateral_" in label:
                        expect = [-entry["lateral_inhibition_na"]]
                    else:
                        c = int(label.rsplit("_c", 1)[1].split("_m")[0])
                        # sPyNNaker convolves: the kernel went in flipped
                        expect = entry["kernels"][n, ::-1, ::-1, c].ravel()
                    np.testing.assert_array_equal(decoded, expect)
    finally:
        backend.end()


def test_deploy_asks_the_machine_once_for_both_mappings(tmp_path, empty_cwd, monkeypatch):
    import importlib

    # the package's ``deploy`` is the function; the module is in sys.modules
    backend_module = importlib.import_module("spinnconv.backends.spinnaker.backend")
    deploy_module = importlib.import_module("spinnconv.backends.spinnaker.deploy")

    calls = []

    def counting(where):
        def check(host=None, spalloc_server=None, timeout_s=3.0):
            calls.append((where, host, spalloc_server))
        return check

    monkeypatch.setattr(deploy_module, "check_machine_reachable", counting("deploy"))
    monkeypatch.setattr(backend_module, "check_machine_reachable", counting("setup"))
    model = SequentialModel((8, 8, 1))
    model.add(ConvLayer(2, (3, 3)))
    params = resolve_parameters("digits")
    report = deploy(model, random_kernels(model, seed=1), params, {"virtual_board": 5},
                    tmp_path, "auto")
    assert all(c["fits"] for c in report["candidates"].values())
    assert calls == [("deploy", None, None)]
