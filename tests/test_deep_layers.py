"""Deeper layers: firing-fraction calibration, the NumPy layer model, the readout over
every stage, per-layer parameters and diagnostics."""

import json

import numpy as np
import pytest
from conftest import run_cli

from spinnconv import plots
from spinnconv.checkpoint import ModelDir
from spinnconv.config import build_model, resolve_parameters
from spinnconv.errors import UsageError
from spinnconv.model import Classifier, ConvLayer, PoolLayer, SequentialModel
from spinnconv.pipeline import layer_diagnostics_of, per_layer, stage_model, train_patches_of
from spinnconv.readout import features_from_counts, readout_features
from spinnconv.spikes import LayerSpikes
from spinnconv.training import (
    calibrate_weight_na,
    calibrate_weight_to_firing,
    conv_layer_counts,
    firing_fraction,
)


def random_spikes(shape, n_images, per_image, seed=0, presentation_ms=20):
    rng = np.random.default_rng(seed)
    n = rng.poisson(per_image, n_images)
    image = np.repeat(np.arange(n_images), n)
    neuron = rng.integers(0, int(np.prod(shape)), n.sum())
    time_ms = rng.integers(0, presentation_ms, n.sum()).astype(float)
    return LayerSpikes.from_arrays(shape, n_images, image, neuron, time_ms)


@pytest.fixture
def params():
    return resolve_parameters("mnist")


def sparse_kernels(n, kh, kw, channels, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, kh, kw, channels)) * (rng.uniform(size=(n, kh, kw, channels))
                                                       < 0.3)


@pytest.mark.parametrize("target", [0.02, 0.05, 0.15])
def test_calibration_hits_the_target_firing_fraction(params, target):
    spikes = random_spikes((8, 8, 6), 60, 80)
    layer = ConvLayer(12, (3, 3))
    kernels = sparse_kernels(12, 3, 3, 6)
    start = calibrate_weight_na(spikes.counts(), spikes.shape, layer, kernels, params)
    weight, achieved = calibrate_weight_to_firing(spikes, layer, kernels, params, target, start)
    assert abs(achieved - target) <= 0.1 * target
    measured = firing_fraction(conv_layer_counts(spikes, layer, kernels, weight, params))
    assert measured == pytest.approx(achieved)
    # more firing needs more weight
    if target > 0.02:
        lower, _ = calibrate_weight_to_firing(spikes, layer, kernels, params, target / 3, start)
        assert lower < weight


def test_calibration_refuses_a_target_outside_0_1(params):
    spikes = random_spikes((5, 5, 2), 4, 20)
    with pytest.raises(ValueError, match="target firing fraction"):
        calibrate_weight_to_firing(spikes, ConvLayer(2, (3, 3)), sparse_kernels(2, 3, 3, 2),
                                   params, 1.0, 1.0)


def test_layer_model_single_neuron_by_hand(params):
    """Simultaneous input spikes: one neuron, 1×1 kernel. The membrane after the
    spikes arrive peaks at n·w·(the PSP peak of 1 nA); it fires iff that reaches
    threshold, and with the WTA off it fires again only if the drive lasts."""
    params = {**params, "lateral_inhibition_na": 0.0}
    neuron = params["neuron"]
    tau_m, tau_s, cm = neuron["tau_m"], neuron["tau_syn_E"], neuron["cm"]
    t = np.arange(0, 60, params["timestep_ms"])
    psp_mv = tau_s * tau_m / (cm * (tau_m - tau_s)) * (np.exp(-t / tau_m) - np.exp(-t / tau_s))
    gap_mv = neuron["v_thresh"] - neuron["v_rest"]
    layer = ConvLayer(1, (1, 1))
    kernels = np.ones((1, 1, 1, 1))
    spikes = LayerSpikes.from_arrays((1, 1, 1), 2, [0] * 4 + [1] * 4, [0] * 8, [0.0] * 8)
    just_below = 0.99 * gap_mv / (4 * psp_mv.max())
    assert conv_layer_counts(spikes, layer, kernels, just_below, params).sum() == 0
    assert conv_layer_counts(spikes, layer, kernels, 1.02 * gap_mv / (4 * psp_mv.max()),
                             params).tolist() == [[1], [1]]


def test_lateral_inhibition_silences_the_losers(params):
    """Two identical kernels at one position: without the WTA both fire as often; with
    a strong WTA the spikes of one delay the other."""
    spikes = random_spikes((3, 3, 1), 20, 40, seed=3)
    layer = ConvLayer(2, (3, 3))
    kernels = np.ones((2, 3, 3, 1))
    weight = 0.8
    free = conv_layer_counts(spikes, layer, kernels, weight,
                             {**params, "lateral_inhibition_na": 0.0})
    assert free.sum() > 0 and np.array_equal(free[:, 0], free[:, 1])
    inhibited = conv_layer_counts(spikes, layer, kernels, weight,
                                  {**params, "lateral_inhibition_na": 50.0})
    assert inhibited.sum() < free.sum()
    no_wta = conv_layer_counts(spikes, ConvLayer(2, (3, 3), lateral_inhibition=False),
                               kernels, weight, {**params, "lateral_inhibition_na": 50.0})
    assert np.array_equal(no_wta, free)


def test_layer_model_matches_nest(params):
    """The NumPy model and NEST agree spike count for spike count on most neurons."""
    pytest.importorskip("pyNN.nest")
    from spinnconv.backends import get_backend
    from spinnconv.network import run_images

    spikes = random_spikes((6, 6, 2), 12, 60, seed=4)
    layer = ConvLayer(4, (3, 3))
    kernels = sparse_kernels(4, 3, 3, 2, seed=5)
    weight = calibrate_weight_na(spikes.counts(), spikes.shape, layer, kernels, params)
    model = SequentialModel(spikes.shape).add(layer)
    simulated = run_images(get_backend("nest"), model, {0: kernels * weight}, params, spikes,
                           quiet=True).counts()
    predicted = conv_layer_counts(spikes, layer, kernels, weight, params)
    assert simulated.sum() > 20
    assert np.mean(simulated == predicted) >= 0.95
    assert predicted.sum() == pytest.approx(simulated.sum(), rel=0.1)


def two_stage_model(readout_layers="all", windows=((6, 2), (3, 3))):
    model = SequentialModel((28, 28, 2))
    model.add(ConvLayer(30, (5, 5))).add(PoolLayer((2, 2)))
    model.add(ConvLayer(64, (3, 3))).add(PoolLayer((2, 2)))
    model.add(Classifier(windows=windows, layers=readout_layers))
    return model


def test_readout_over_every_stage_has_the_right_features():
    model = two_stage_model()
    assert model.readout_positions() == [1, 3]
    assert model.readout_shapes() == [(12, 12, 30), (5, 5, 64)]
    # stage 1: 6/2 -> 16 windows, 3/3 -> 16; stage 2 (5/12 of the size): 2/1 -> 16, 1/1 -> 25
    assert model.classifier.scaled_to((12, 12, 30), (5, 5, 64)).windows == ((2, 1), (1, 1))
    assert model.n_readout_features() == 30 * 32 + 64 * 41
    rng = np.random.default_rng(0)
    first = rng.poisson(1.0, (3, 12 * 12 * 30)).astype(np.uint16)
    second = rng.poisson(1.0, (3, 5 * 5 * 64)).astype(np.uint16)
    features = readout_features(np.concatenate([first, second], axis=1), model)
    assert features.shape == (3, model.n_readout_features())
    np.testing.assert_array_equal(
        features[:, :960], features_from_counts(first, (12, 12, 30),
                                                Classifier(windows=[[6, 2], [3, 3]])))
    np.testing.assert_array_equal(
        features[:, 960:], features_from_counts(second, (5, 5, 64),
                                                Classifier(windows=[[2, 1], [1, 1]])))
    # map by map: 16 windows 2/1, then every spike of the map once in the 25 windows 1/1
    assert features[:, 960:].reshape(3, 64, 41)[:, :, 16:].sum() == second.sum()
    with pytest.raises(ValueError, match="columns"):
        readout_features(first, model)


def test_readout_of_the_last_layer_is_unchanged():
    model = two_stage_model(readout_layers="last", windows=[[2, 1]])
    assert model.readout_positions() == [3]
    counts = np.ones((2, 5 * 5 * 64), dtype=np.uint16)
    np.testing.assert_array_equal(readout_features(counts, model),
                                  features_from_counts(counts, (5, 5, 64), model.classifier))


def test_a_deep_classifier_that_does_not_say_reads_every_stage():
    model = two_stage_model(readout_layers=None)
    assert model.readout_positions() == [1, 3]
    assert model.to_dict()["layers"][-1]["layers"] == "all"  # the manifest says so
    assert model == two_stage_model("all")


def test_every_stage_model_round_trips_and_refuses_bad_values():
    model = two_stage_model()
    assert SequentialModel.from_dict(model.to_dict()) == model
    assert model.shapes[-1] == (1, model.n_readout_features(), 1)
    with pytest.raises(UsageError, match="'last' or 'all'"):
        Classifier(layers="first")


def test_stage_model_is_a_conv_layer_and_its_pools():
    model = two_stage_model()
    stage = stage_model(model, 2)
    assert stage.input_shape == (12, 12, 30)
    assert [layer.kind for layer in stage.layers] == ["conv", "pool"]
    assert stage.output_shape == (5, 5, 64)


def test_per_layer_parameters(params):
    assert per_layer([], 2, 7) == 7
    assert per_layer([None, 0.05], 1) is None
    assert per_layer([None, 0.05], 3) == 0.05
    assert per_layer(params["target_firing_fraction"], 2) is None  # percentile by default
    assert [train_patches_of(params, n) for n in (1, 2, 3)] == [3000, 9000, 9000]
    assert train_patches_of({**params, "train_patches": 100}, 2) == 300
    assert train_patches_of({**params, "train_patches_factor_by_layer": []}, 2) == 3000
    for bad in ({"target_firing_fraction": [1.5]}, {"target_firing_fraction": [True]},
                {"train_patches_factor_by_layer": [0]},
                {"train_patches_factor_by_layer": 3}):
        with pytest.raises(UsageError):
            resolve_parameters("mnist", bad)
    spec = resolve_parameters("mnist", {"architecture": [
        {"kind": "conv", "n_kernels": 4, "kernel_shape": [5, 5]},
        {"kind": "pool", "pool_shape": [2, 2]},
        {"kind": "classifier", "grid": 3, "layers": "all"}]})
    assert build_model(spec, (28, 28)).n_readout_features() == 4 * 9


def test_plot_layer_diagnostics(tmp_path):
    path = plots.plot_layer_diagnostics(
        {"layer 1": {"readout_accuracy": 0.95, "firing_fraction": 0.08,
                     "target_firing_fraction": None},
         "layer 2": {"readout_accuracy": None, "firing_fraction": 0.05,
                     "target_firing_fraction": 0.05}}, tmp_path / "layers.png")
    assert path.stat().st_size > 5000
    with pytest.raises(ValueError, match="empty"):
        plots.plot_layer_diagnostics({}, tmp_path / "x.png")


@pytest.mark.slow
def test_two_layers_on_digits_record_diagnostics(tmp_path):
    """Layer-wise calibration and diagnostics end to end (nest, digits)."""
    pytest.importorskip("pyNN.nest")
    params = tmp_path / "params.json"
    params.write_text(json.dumps({
        "train_patches": 400, "diagnostics_images": 300, "calibration_images": 100,
        "target_firing_fraction": [None, 0.08],
        "architecture": [
            {"kind": "conv", "n_kernels": 8, "kernel_shape": [3, 3], "padding": 1},
            {"kind": "pool", "pool_shape": [2, 2]},
            {"kind": "conv", "n_kernels": 16, "kernel_shape": [3, 3], "padding": 1},
            {"kind": "pool", "pool_shape": [2, 2]},
            {"kind": "classifier", "grid": 2, "layers": "all"}]}))
    model_dir = tmp_path / "model"
    for layer in ("1", "2"):
        result = run_cli("--mode", "training", "--layer", layer, "--dataset", "digits",
                         "--backend", "nest", "--params", str(params), "--model-dir",
                         str(model_dir), "--train-examples", "400")
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"layer {layer} diagnostics: firing fraction" in result.stdout
    manifest = json.loads((model_dir / "manifest.json").read_text())
    second = manifest["diagnostics"]["2"]
    assert second["calibration_rule"] == "firing_fraction"
    assert second["target_firing_fraction"] == 0.08
    assert abs(second["predicted_firing_fraction"] - 0.08) <= 0.008
    assert 0.02 < second["firing_fraction"] < 0.3  # neither silent nor saturated
    assert 0.1 <= second["readout_accuracy"] <= 1.0
    assert manifest["diagnostics"]["1"]["calibration_rule"] == "percentile"
    assert manifest["diagnostics"]["1"]["readout_accuracy"] > 0.5
    arrays = ModelDir(model_dir).load_layer(2)
    assert layer_diagnostics_of(arrays) == second  # stored with the layer as well
    assert float(arrays["weight_na"]) == pytest.approx(second["weight_na"])
    assert (model_dir / "figures" / "layers.png").is_file()


def test_layer_training_overrides_one_layer_only(params):
    from spinnconv.pipeline import layer_params

    merged = resolve_parameters("mnist", {"layer_training": [
        {}, {"kernel_l1": 0.1, "stdp": {"a_plus": 0.05}, "patch_neuron": {"tau_refrac": 30.0}}]})
    first, second, third = (layer_params(merged, n) for n in (1, 2, 3))
    assert first["kernel_l1"] == params["kernel_l1"] and "patch_neuron" not in first
    assert second["kernel_l1"] == 0.1 and third["kernel_l1"] == 0.1  # deeper: last entry
    assert second["stdp"] == {**params["stdp"], "a_plus": 0.05}  # merged key by key
    assert second["neuron"] == params["neuron"]  # inference neurons untouched
    assert second["patch_neuron"] == {"tau_refrac": 30.0}
    for bad, message in (([{"svm_c": 1.0}], "cannot be set per layer"),
                         ([{"kernel_l1": -1}], "entry 1: parameter 'kernel_l1' must be > 0"),
                         ([{}, {"stdp": {"x": 1}}], "unknown parameter 'stdp.x'"),
                         ([{"patch_neuron": {"tau_refrac": -2.0}}], "neuron.tau_refrac"),
                         ([3], "must be an object")):
        with pytest.raises(UsageError, match=message):
            resolve_parameters("mnist", {"layer_training": bad})


#: A small two-conv-layer digits net whose readout takes both stages.
TWO_LAYERS_READ_OUT_TOGETHER = [
    {"kind": "conv", "n_kernels": 6, "kernel_shape": [3, 3], "padding": 1},
    {"kind": "pool", "pool_shape": [2, 2]},
    {"kind": "conv", "n_kernels": 8, "kernel_shape": [3, 3], "padding": 1},
    {"kind": "pool", "pool_shape": [2, 2]},
    {"kind": "classifier", "layers": "all"}]


def test_layer_training_reaches_the_second_layer_on_batched():
    from spinnconv import STDPConvNet
    from spinnconv.datasets import load_digits_dataset

    data = load_digits_dataset().subset(150, 30)
    net = STDPConvNet(backend="batched", seed=1, quiet=True, params={
        "train_patches": 300, "diagnostics_images": 0,
        "layer_training": [{}, {"kernel_l1": 0.1}],
        "architecture": TWO_LAYERS_READ_OUT_TOGETHER})
    net.fit(data.train_images, data.train_labels)
    assert net.kernels_[1].mean() == pytest.approx(0.35, abs=0.02)  # the global kernel_l1
    assert net.kernels_[2].mean() == pytest.approx(0.1, abs=0.01)   # layer 2's own


@pytest.mark.parametrize("combine", ["vote", "concatenate"])
def test_a_readout_over_every_stage_is_saved_and_tested(tmp_path, combine):
    """A model dir whose SVM reads every stage passes the integrity check and tests."""
    from spinnconv import STDPConvNet
    from spinnconv.datasets import load_digits_dataset

    data = load_digits_dataset().subset(150, 40)
    architecture = [*TWO_LAYERS_READ_OUT_TOGETHER[:-1],
                    {**TWO_LAYERS_READ_OUT_TOGETHER[-1], "combine": combine}]
    net = STDPConvNet(backend="batched", seed=2, quiet=True, params={
        "train_patches": 300, "diagnostics_images": 0, "architecture": architecture})
    net.fit(data.train_images, data.train_labels)
    arrays = net.svm_.to_arrays()
    if combine == "vote":  # one SVM per stage
        assert arrays["stage_sizes"].tolist() == [6 * 4 * 4, 8 * 2 * 2]
        assert arrays["stage1_coef"].shape[1] == 6 * 4 * 4
        assert set(net.svm_.holdout_accuracy_) == {"stage 1", "stage 2", "vote"}
    else:
        assert arrays["coef"].shape[1] == 6 * 4 * 4 + 8 * 2 * 2  # both stages
    loaded = STDPConvNet.load(net.save(tmp_path / "model"))
    assert loaded.score(data.test_images, data.test_labels) == \
        net.score(data.test_images, data.test_labels)
    result = run_cli("--mode", "testing", "--model-dir", str(tmp_path / "model"), "--quiet",
                     "--no-plots")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accuracy: " in result.stdout
