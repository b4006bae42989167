"""Parameters, SVM readout stored as arrays, and the model directory."""

import json
import math

import numpy as np
import pytest

from spinnconv.checkpoint import FORMAT_VERSION, ModelDir, read_npz, write_npz
from spinnconv.config import build_model, resolve_parameters
from spinnconv.errors import CheckpointError, UsageError
from spinnconv.model import Classifier
from spinnconv.readout import SpikeCountSVM, features_from_counts


def test_defaults_fit_both_datasets():
    for dataset, shape in (("digits", (8, 8)), ("mnist", (28, 28))):
        params = resolve_parameters(dataset)
        model = build_model(params, shape)
        assert model.n_conv_layers >= 1 and model.classifier is not None


def test_dict_parameters_merge_key_by_key():
    params = resolve_parameters("digits", {"neuron": {"tau_m": 15.0}, "seed": 3})
    assert params["neuron"]["tau_m"] == 15.0 and params["neuron"]["v_thresh"] == -55.0
    assert params["seed"] == 3


@pytest.mark.parametrize("overrides,message", [
    ({"no_such_name": 1}, "unknown parameter 'no_such_name'"),
    ({"neuron": {"tau_x": 1.0}}, "unknown parameter 'neuron.tau_x'"),
    ({"presentation_ms": -5.0}, "must be > 0"),
    ({"rest_ms": -1.0}, "must be >= 0"),
    ({"rest_ms": math.nan}, "must be finite"),
    ({"train_patches": 10.5}, "must be an integer"),
    ({"dog": "yes"}, "true or false"),
    ({"code": "morse"}, "must be one of"),
    ({"neuron": {"v_thresh": -70.0}}, "above 'neuron.v_reset'"),
    ({"architecture": [{"kind": "conv", "n_kernels": 4, "kernel_shape": [12, 12]},
                       {"kind": "classifier"}]}, "larger than its padded input"),
    ({"architecture": [{"kind": "conv", "n_kernels": 4, "stride": 0}, {"kind": "classifier"}]},
     "stride"),
    ({"architecture": [{"kind": "conv", "n_kernels": 4}, {"kind": "pool"},
                       {"kind": "classifier", "grid": 2, "windows": [[2, 1]]}]}, "grid or windows"),
    ({"architecture": [{"kind": "conv", "n_kernels": 4}, {"kind": "pool"},
                       {"kind": "classifier", "windows": [2, 1]}]},
     "list of \\[window, stride\\] pairs"),
    ({"architecture": [{"kind": "conv", "n_kernels": 4}, {"kind": "pool"},
                       {"kind": "classifier", "windows": [[1, 1], [9, 1]]}]}, "window 9 is larger"),
])
def test_bad_parameters_are_refused(overrides, message):
    with pytest.raises(UsageError, match=message):
        params = resolve_parameters("digits", overrides)
        build_model(params, (8, 8))


def test_svm_survives_a_round_trip_through_arrays(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.poisson(3.0, size=(200, 12)).astype(np.float32)
    labels = (features[:, 0] + features[:, 1] > features[:, 2] * 2).astype(int) + \
        (features[:, 3] > 4).astype(int)
    svm = SpikeCountSVM(c=0.5).fit(features, labels)
    write_npz(tmp_path / "svm.npz", svm.to_arrays())
    again = SpikeCountSVM.from_arrays(read_npz(tmp_path / "svm.npz"))
    np.testing.assert_array_equal(again.predict(features), svm.predict(features))
    np.testing.assert_allclose(again.decision_function(features), svm.decision_function(features))
    assert svm.score(features, labels) > 0.7


def test_grid_features_sum_each_map_over_cells():
    counts = np.arange(2 * 4 * 4 * 3, dtype=float).reshape(2, 3 * 4 * 4)  # C=3, H=W=4
    features = features_from_counts(counts, (4, 4, 3), Classifier(grid=2))
    maps = counts.reshape(2, 3, 4, 4)
    assert features.shape == (2, 3 * 4)
    assert features[1, 0] == maps[1, 0, :2, :2].sum()
    assert features[1, 3] == maps[1, 0, 2:, 2:].sum()
    assert features[0, 4] == maps[0, 1, :2, :2].sum()
    np.testing.assert_array_equal(features_from_counts(counts, (4, 4, 3), Classifier()), counts)


def test_window_features_are_a_pyramid_of_overlapping_window_sums():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 6, size=(5, 3 * 7 * 7)).astype(np.uint16)  # C=3, H=W=7
    classifier = Classifier(windows=[[3, 2], [7, 1]])
    assert classifier.output_shape((7, 7, 3)) == (1, 9 + 1, 3)
    features = features_from_counts(counts, (7, 7, 3), classifier, block_images=2)
    maps = counts.reshape(5, 3, 7, 7).astype(float)
    expected = [[cell for c in range(3) for cell in
                 [maps[n, c, i:i + 3, j:j + 3].sum() for i in (0, 2, 4) for j in (0, 2, 4)]
                 + [maps[n, c].sum()]] for n in range(5)]
    np.testing.assert_array_equal(features, np.array(expected, dtype=np.float32))
    # window = stride = H / g is the g × g grid
    six = counts[:, :3 * 36]
    np.testing.assert_array_equal(
        features_from_counts(six, (6, 6, 3), Classifier(windows=[[3, 3]])),
        features_from_counts(six, (6, 6, 3), Classifier(grid=2)))


def _model_and_params(seed=0):
    params = resolve_parameters("digits", {"seed": seed})
    return build_model(params, (8, 8)), params


def test_model_dir_refuses_other_architecture_and_newer_format(tmp_path):
    model, params = _model_and_params()
    directory = ModelDir(tmp_path / "m")
    manifest = directory.start(model, params, "digits", "nest")
    assert manifest["format_version"] == FORMAT_VERSION
    assert not directory.path.exists()  # nothing is written before the first commit
    manifest = directory.commit(manifest)
    assert directory.start(model, params, "digits", "nest")["trained"] == manifest["trained"]
    other_params = resolve_parameters("mnist")
    other = build_model(other_params, (28, 28))
    with pytest.raises(UsageError, match="different architecture"):
        directory.start(other, params, "digits", "nest")
    with pytest.raises(UsageError, match="other parameters"):
        directory.start(model, _model_and_params(seed=5)[1], "digits", "nest")
    data = json.loads(directory.manifest_path.read_text())
    data["format_version"] = FORMAT_VERSION + 1
    directory.manifest_path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="newer spinnconv"):
        directory.manifest()


def layer_arrays(value: float = 0.5, n_kernels: int = 16) -> dict:
    """Arrays of a trained digits conv layer 1 (16 kernels 3×3×2)."""
    return {"kernels": np.full((n_kernels, 3, 3, 2), value), "weight_na": np.asarray(2.0),
            "convergence": np.asarray([0.1, 0.05])}


def svm_arrays(model) -> dict:
    from spinnconv.checkpoint import _expected_feature_count

    n = _expected_feature_count(model)
    return {"scaler_mean": np.zeros(n), "scaler_scale": np.ones(n), "scaler_var": np.ones(n),
            "coef": np.zeros((10, n)), "intercept": np.zeros(10), "classes": np.arange(10),
            "c": np.asarray(0.01), "transform": np.asarray("sqrt"), "n_train": np.asarray(100)}


def test_saving_a_layer_invalidates_later_stages(tmp_path):
    model, params = _model_and_params()
    directory = ModelDir(tmp_path / "m")
    manifest = directory.start(model, params, "digits", "nest")
    manifest = directory.save_layer(manifest, 1, layer_arrays(1.0))
    manifest = directory.save_svm(manifest, svm_arrays(model))
    assert manifest["trained"] == {"layers": [1], "svm": True}
    manifest = directory.save_layer(manifest, 1, layer_arrays(0.0))
    assert manifest["trained"] == {"layers": [1], "svm": False}
    assert json.loads(directory.manifest_path.read_text())["trained"]["svm"] is False
    assert not any(p.name.endswith(".tmp") for p in directory.path.iterdir())
    np.testing.assert_array_equal(directory.load_layer(1)["kernels"], 0.0)


def test_object_arrays_are_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, payload=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        read_npz(path)


def test_write_to_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write"):
        write_npz(blocker / "sub" / "a.npz", {"a": np.zeros(2)})
