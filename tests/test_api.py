"""spinnconv.STDPConvNet: validation at the edge, fit/transform/predict on NEST, the
same kernels and accuracy as the CLI, model dirs shared with main.py, to_pynn."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, accuracy_of, run_cli
from sklearn.exceptions import NotFittedError

from spinnconv import Classifier, ConvLayer, PoolLayer, SequentialModel, STDPConvNet
from spinnconv.checkpoint import ModelDir
from spinnconv.datasets import load_digits_dataset

SMALL = {"train_patches": 300}  # a few seconds of STDP on NEST
N_TRAIN, N_TEST = 150, 60


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset().subset(N_TRAIN, N_TEST)


@pytest.fixture(scope="module")
def fitted(digits):
    pytest.importorskip("pyNN.nest")
    return STDPConvNet(backend="nest", params=SMALL, seed=1, quiet=True).fit(
        digits.train_images, digits.train_labels)


def quickstart_snippet() -> tuple[str, str]:
    """The README's first ```python block, else docs/quickstart.py (and which it was)."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^```python\n(.*?)^```", readme, flags=re.DOTALL | re.MULTILINE)
    if match:
        return match.group(1), "README.md"
    return (REPO / "docs" / "quickstart.py").read_text(), "docs/quickstart.py"


# -- validation (no simulator runs) ----------------------------------------------------
@pytest.mark.parametrize("images, message", [
    (np.zeros((4, 8)), r"shape \(N, H, W\) or \(N, H, W, 1\)"),
    (np.zeros((4, 8, 8, 3)), r"3 channels: convert to one"),
    (np.zeros((4, 8, 8), dtype=np.int64), "uint8 .* or float"),
    (np.full((4, 8, 8), np.nan), "finite and >= 0"),
    (-np.ones((4, 8, 8)), "finite and >= 0"),
    (np.zeros((0, 8, 8)), "empty"),
    (np.zeros((4, 10, 12)), r"no default architecture for 10×12 .*model=SequentialModel"),
])
def test_bad_images_are_one_value_error(images, message):
    with pytest.raises(ValueError, match=message):
        STDPConvNet().fit(images, np.arange(len(images)) % 2)


def test_bad_options_and_labels_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="unknown parameter 'trian_patches' in params"):
        STDPConvNet(params={"trian_patches": 3})
    with pytest.raises(ValueError, match="'svm_c' must be > 0"):
        STDPConvNet(params={"svm_c": 0})
    with pytest.raises(ValueError, match="unknown backend 'neuron'"):
        STDPConvNet(backend="neuron")
    with pytest.raises(ValueError, match=r"seed as STDPConvNet\(seed=...\)"):
        STDPConvNet(params={"seed": 4})
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        STDPConvNet(jobs=0)
    with pytest.raises(ValueError, match="--emulate-spinnaker needs timestep_ms = 1.0"):
        STDPConvNet(emulate_spinnaker=True, params={"timestep_ms": 0.5})
    model = SequentialModel((8, 8, 2)).add(ConvLayer(4, (3, 3))).add(Classifier())
    with pytest.raises(ValueError, match="model=... or as params"):
        STDPConvNet(model=model, params={"architecture": []})
    with pytest.raises(ValueError, match="model input has 2 channels but the encoding gives 1"):
        STDPConvNet(model=model, params={"dog": False})
    images = np.zeros((6, 8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"one label per image \(6,\)"):
        STDPConvNet().fit(images, [0, 1])
    with pytest.raises(ValueError, match="one class only"):
        STDPConvNet().fit(images, np.zeros(6))
    net = STDPConvNet()
    with pytest.raises(NotFittedError, match="call fit"):
        net.predict(images)
    with pytest.raises(NotFittedError, match="pass model=... or call fit"):
        net.summary()
    with pytest.raises(NotFittedError):
        net.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()
    lines = []
    STDPConvNet(model=model).summary(print_fn=lines.append)
    assert "Conv 4×3×3" in lines[0] and "6×6×4" in lines[0]


# -- fitting and inference on NEST -------------------------------------------------------
def test_fit_returns_self_with_fitted_attributes(fitted, digits):
    assert isinstance(fitted, STDPConvNet)
    assert fitted.kernels_[1].shape == (16, 3, 3, 2)  # the digits default architecture
    assert fitted.kernels_[1].min() >= 0 and fitted.kernels_[1].max() <= 1
    assert fitted.weights_na_[1] > 0
    diagnostics = fitted.layer_diagnostics_[1]
    assert diagnostics["n_patches"] == SMALL["train_patches"]
    assert len(diagnostics["convergence"]) == SMALL["train_patches"] // 100
    assert sum(diagnostics["wins"]) > 0
    np.testing.assert_array_equal(fitted.classes_, np.arange(10))
    assert fitted.n_train_ == N_TRAIN and fitted.train_accuracy_ > 0.8
    assert fitted.model_.output_shape == (4, 4, 16)
    predicted = fitted.predict(digits.test_images)
    assert predicted.shape == (N_TEST,)
    accuracy = fitted.score(digits.test_images, digits.test_labels)
    assert accuracy == pytest.approx(np.mean(predicted == digits.test_labels))
    assert accuracy > 0.6  # 150 training images, 300 patches
    with pytest.raises(ValueError, match="images are 28×28 but the network takes 8×8"):
        fitted.predict(np.zeros((2, 28, 28), dtype=np.uint8))


def test_transform_gives_the_readout_features_and_layer_counts(fitted, digits):
    images = digits.test_images[:12]
    features = fitted.transform(images)
    counts = fitted.transform(images, layer=1)
    assert features.dtype == np.float32 and features.shape == (12, 4 * 4 * 16)
    # the digits classifier reads one feature per pool neuron: the counts themselves
    np.testing.assert_array_equal(features, counts)
    assert features.sum() > 0 and np.all(features == np.round(features))
    # (N, H, W, 1) is the same image; uint8 (0..255) goes in as well
    np.testing.assert_array_equal(fitted.transform(images[..., None]), features)
    as_uint8 = np.round(images * 255).astype(np.uint8)
    assert np.mean(fitted.transform(as_uint8) == features) > 0.95
    with pytest.raises(ValueError, match=r"layer 2 does not exist: .* conv layers 1..1"):
        fitted.transform(images, layer=2)


def test_save_load_round_trip_and_refit_layer(fitted, digits, tmp_path):
    path = fitted.save(tmp_path / "model")
    manifest = ModelDir(path).manifest()
    assert sorted(manifest["files"]) == ["layer1", "svm"]
    assert sorted(p.name for p in path.glob("*.npz")) == sorted(
        entry["name"] for entry in manifest["files"].values())
    loaded = STDPConvNet.load(path, quiet=True)
    assert loaded.backend == "nest" and loaded.seed == 1
    assert loaded.model_ == fitted.model_ and loaded.params_ == fitted.params_
    np.testing.assert_array_equal(loaded.kernels_[1], fitted.kernels_[1])
    images = digits.test_images[:20]
    np.testing.assert_array_equal(loaded.predict(images), fitted.predict(images))
    # saving again into the same dir is fine; another model is refused, nothing overwritten
    loaded.save(path)
    other = STDPConvNet(backend="nest", params={**SMALL, "svm_c": 1.0}, seed=1, quiet=True)
    other.fit_layer(1, digits.train_images)
    before = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="other parameters"):
        other.save(path)
    assert {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()} == before
    # refitting a layer forgets the SVM trained on the old kernels
    loaded.fit_layer(1, digits.train_images)
    assert not hasattr(loaded, "svm_")
    with pytest.raises(NotFittedError, match="fitted SVM"):
        loaded.predict(images)



def test_fit_readout_scores_the_validation_split_that_save_and_main_py_keep(digits, tmp_path):
    """fit_readout(validation=...) scores held-out images as score() does; save() keeps
    that accuracy in svm.npz, which load() and main.py --mode testing read back."""
    images, labels = digits.train_images, digits.train_labels
    fit, held_out = slice(0, 100), slice(100, None)
    net = STDPConvNet(backend="batched", params=SMALL, seed=1, quiet=True)
    net.fit_layer(1, images[fit])
    net.fit_readout(images[fit], labels[fit])
    assert net.validation_accuracy_ is None and net.n_validation_ == 0
    with pytest.raises(ValueError, match=r"validation must be a pair \(images, labels\)"):
        net.fit_readout(images[fit], labels[fit], validation=images[held_out])
    net.fit_readout(images[fit], labels[fit], validation=(images[held_out], labels[held_out]))
    assert net.n_validation_ == N_TRAIN - 100
    assert net.validation_accuracy_ == net.score(images[held_out], labels[held_out]) > 0.3
    loaded = STDPConvNet.load(net.save(tmp_path / "m"), quiet=True)
    assert (loaded.validation_accuracy_, loaded.n_validation_) == (net.validation_accuracy_,
                                                                   N_TRAIN - 100)
    result = run_cli("--mode", "testing", "--model-dir", str(tmp_path / "m"), "--test-examples",
                     "20", "--no-plots", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert (results["validation_accuracy"], results["n_validation"]) == (
        net.validation_accuracy_, N_TRAIN - 100)
    assert f"validation accuracy: {net.validation_accuracy_:.4f}" in result.stdout

def test_custom_model_of_any_size_is_the_one_trained(digits, tmp_path, capsys):
    if importlib.util.find_spec("nest") is None:  # not imported here: the API mutes its banner
        pytest.skip("NEST is not installed")
    images = np.pad(digits.train_images, ((0, 0), (1, 1), (1, 1)))  # 10×10
    model = (SequentialModel((10, 10, 2)).add(ConvLayer(4, (3, 3), padding=1))
             .add(ConvLayer(6, (3, 3))).add(PoolLayer((2, 2))).add(Classifier(grid=2)))
    net = STDPConvNet(model=model, backend="nest", params={"train_patches": 200}, quiet=True)
    with pytest.raises(NotFittedError, match=r"conv layer 1 fitted first: call fit_layer\(1"):
        net.fit_layer(2, images)
    net.fit(images, digits.train_labels)
    assert capsys.readouterr().out == ""  # quiet: no messages, no progress bars
    assert net.model_ is model
    assert net.kernels_[1].shape == (4, 3, 3, 2) and net.kernels_[2].shape == (6, 3, 3, 4)
    assert net.layer_diagnostics_[2]["n_patches"] == 200  # layer 2 learned on layer 1's spikes
    # two conv layers: the classifier reads both stages, its grid scaled to each map
    assert net.transform(images[:5]).shape == (5, 2 * 2 * 4 + 1 * 1 * 6)
    assert net.transform(images[:5], layer=1).shape == (5, 10 * 10 * 4)
    assert net.transform(images[:5], layer=2).shape == (5, 4 * 4 * 6)
    assert [entry["n_kernels"] for entry in net.params_["architecture"][:2]] == [4, 6]
    manifest = json.loads((net.save(tmp_path / "m") / "manifest.json").read_text())
    assert SequentialModel.from_dict(manifest["model"]) == model
    assert STDPConvNet.load(tmp_path / "m").model_ == model


# -- the same network as the CLI --------------------------------------------------------
def test_same_seed_as_cli_and_model_dirs_work_both_ways(digits, tmp_path):
    pytest.importorskip("pyNN.nest")
    params_file = tmp_path / "small.json"
    params_file.write_text(json.dumps(SMALL))
    common = ["--dataset", "digits", "--backend", "nest", "--seed", "2", "--params",
              str(params_file), "--train-examples", str(N_TRAIN), "--test-examples",
              str(N_TEST), "--no-plots", "--quiet"]
    cli_dir = tmp_path / "cli"
    result = run_cli("--mode", "all", "--model-dir", str(cli_dir), *common)
    assert result.returncode == 0, result.stderr[-3000:]
    cli_accuracy = accuracy_of(result)

    net = STDPConvNet(backend="nest", params=SMALL, seed=2, quiet=True)
    net.fit(digits.train_images, digits.train_labels)
    np.testing.assert_array_equal(net.kernels_[1], ModelDir(cli_dir).load_layer(1)["kernels"])
    accuracy = net.score(digits.test_images, digits.test_labels)
    assert accuracy == pytest.approx(cli_accuracy, abs=1e-4)

    # a dir the API saved is tested by main.py ...
    api_dir = net.save(tmp_path / "api")
    result = run_cli("--mode", "testing", "--model-dir", str(api_dir), *common)
    assert result.returncode == 0, result.stderr[-3000:]
    assert accuracy_of(result) == pytest.approx(accuracy, abs=1e-4)
    # ... and a dir main.py trained is loaded by the API
    loaded = STDPConvNet.load(cli_dir, quiet=True)
    assert loaded.score(digits.test_images, digits.test_labels) == pytest.approx(cli_accuracy,
                                                                                abs=1e-4)


# -- PyNN objects ------------------------------------------------------------------------
def counts_on_plain_pynn(sim, net: STDPConvNet, images: np.ndarray):
    """Spike counts per image of the last layer, with PyNN calls only; and the network."""
    sim.setup(timestep=1.0)
    network = net.to_pynn(sim, images=images)
    pool = network.populations["layer2_pool"]
    pool.record("spikes")
    sim.run(network.duration_ms)
    trains = pool.get_data("spikes").segments[-1].spiketrains
    counts = np.zeros((len(images), pool.size), dtype=np.float32)
    schedule = network.schedule
    for train in trains:
        times = train.rescale("ms").magnitude
        image = np.floor((times - schedule.onset_ms) / schedule.period_ms).astype(int)
        np.add.at(counts, (image, np.full(len(times), train.annotations["source_index"])), 1)
    sim.end()
    return counts, network


def test_to_pynn_on_plain_pynn_nest_gives_the_transform_counts(fitted, digits):
    sim = pytest.importorskip("pyNN.nest")
    images = digits.test_images[:15]
    expected = fitted.transform(images, layer=1)
    counts, network = counts_on_plain_pynn(sim, fitted, images)
    assert list(network.populations) == ["input", "layer1_conv", "layer2_pool"]
    conv, pool = network.populations["layer1_conv"], network.populations["layer2_pool"]
    assert counts.sum() > 0
    np.testing.assert_array_equal(counts, expected)
    # the connection lists are the projections' synapses
    lists = fitted.connection_lists(sim)
    assert set(lists) == {"layer1_conv", "layer2_pool"}
    assert set(lists["layer1_conv"]) == {"feedforward", "lateral"}
    for label, kinds in lists.items():
        for kind, array in kinds.items():
            assert array.shape[1] == 4
            assert len(array) == network.projections[label][kind].size()
    assert (lists["layer1_conv"]["lateral"][:, 2] < 0).all()  # inhibitory, PyNN's sign
    assert conv.size == 8 * 8 * 16 and pool.size == 4 * 4 * 16


@pytest.mark.slow
def test_to_pynn_on_plain_pynn_brian2_gives_the_transform_counts(digits):
    sim = pytest.importorskip("pyNN.brian2")
    net = STDPConvNet(backend="brian2", params={"train_patches": 200}, seed=1, quiet=True)
    net.fit_layer(1, digits.train_images[:200])  # kernels are all to_pynn needs
    images = digits.test_images[:8]
    counts, network = counts_on_plain_pynn(sim, net, images)
    assert counts.sum() > 0
    np.testing.assert_array_equal(counts, net.transform(images, layer=1))
    del network  # pyNN.brian2 drops its recorders (and our groups) only at the next setup
    sim.setup(timestep=1.0)
    sim.end()
    gc.collect()


# -- the quickstart -----------------------------------------------------------------------
@pytest.mark.slow
def test_quickstart_snippet_runs(tmp_path):
    code, source = quickstart_snippet()
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=1200, check=False, env=environment)
    assert result.returncode == 0, (source, result.stderr[-3000:])
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", result.stdout).group(1))
    assert accuracy >= 0.9
    assert "Conv 16×3×3" in result.stdout  # the summary
    # the saved model dir is main.py's
    cli = run_cli("--mode", "testing", "--model-dir", str(tmp_path / "model-digits"),
                  "--no-plots", "--quiet")
    assert accuracy_of(cli) == pytest.approx(accuracy, abs=1e-4)


TWO_CONV = {"train_patches": 200, "architecture": [
    {"kind": "conv", "n_kernels": 8, "kernel_shape": [3, 3], "padding": 1},
    {"kind": "pool", "pool_shape": [2, 2]},
    {"kind": "conv", "n_kernels": 8, "kernel_shape": [3, 3], "padding": 1},
    {"kind": "classifier"}]}


def test_layer_transform_counts_equal_the_recorded_simulation_on_batched(digits):
    """transform(layer=n) counts spikes in blocks (count_spikes); a simulation that
    records every spike of layers 1..n gives the same counts, neuron by neuron."""
    from spinnconv import pipeline
    from spinnconv.encoding import encode

    images = digits.train_images[:80]
    net = STDPConvNet(backend="batched", params=TWO_CONV, seed=2, quiet=True)
    net.fit_layer(1, images).fit_layer(2, images)
    assert [row["phase"] for row in net.phases_][:2] == ["layer 1 STDP",
                                                         "layer 2 input (layers 1..2)"]
    run = net._run()
    for layer, upto, shape in ((1, 2, (4, 4, 8)), (2, 3, (4, 4, 8))):
        counts = net.transform(digits.test_images[:25], layer=layer)
        recorded = pipeline.simulate(run, net.model_, net._kernels(run, layer),
                                     encode(digits.test_images[:25], net.params_), upto=upto,
                                     description="recorded")
        assert counts.dtype == np.float32 and counts.shape == (25, int(np.prod(shape)))
        assert counts.sum() > 0
        np.testing.assert_array_equal(counts, recorded.counts(dtype=np.float32))
    assert net.phases_ and all(row["seconds"] >= 0 for row in net.phases_)
