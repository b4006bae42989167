"""The same seed gives the same parameters, kernels and accuracy as a stored reference.

``tests/data/reference_digits_batched.npz`` and ``reference_parameters.json`` were
written by this module (``python tests/test_reference_run.py --write``); a change
that alters the defaults, the training or the readout shows up here as a difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from spinnconv import STDPConvNet
from spinnconv.config import resolve_parameters
from spinnconv.datasets import load_digits_dataset

DATA = Path(__file__).resolve().parent / "data"
REFERENCE_RUN = DATA / "reference_digits_batched.npz"
REFERENCE_PARAMETERS = DATA / "reference_parameters.json"
#: Small enough for a second of the batched engine (after numba's cache is warm).
SETTING = {"train_patches": 300, "diagnostics_images": 0}
N_TRAIN, N_TEST, SEED = 120, 60, 3
#: (dataset, image shape or None): every source of default values.
PARAMETER_CASES = [("digits", None), ("mnist", None), ("events", None), ("idx", (8, 8)),
                   ("npz", (28, 28)), ("folder", (16, 12)), ("events", (34, 34))]


def reference_run() -> dict[str, np.ndarray]:
    """Kernels, weights, features and accuracies of a small digits run (batched)."""
    data = load_digits_dataset().subset(N_TRAIN, N_TEST)
    net = STDPConvNet(backend="batched", params=SETTING, seed=SEED, quiet=True)
    net.fit(data.train_images, data.train_labels)
    return {"kernels_layer1": net.kernels_[1], "weight_na_layer1": np.asarray(net.weights_na_[1]),
            "features": net.transform(data.test_images[:10]),
            "predicted": net.predict(data.test_images),
            "accuracy": np.asarray(net.score(data.test_images, data.test_labels)),
            "train_accuracy": np.asarray(net.train_accuracy_)}


def reference_parameters() -> dict[str, dict]:
    """The resolved parameters of every case of ``PARAMETER_CASES``."""
    return {f"{dataset} {shape}": resolve_parameters(dataset, image_shape=shape)
            for dataset, shape in PARAMETER_CASES}


def test_default_parameters_match_the_reference():
    stored = json.loads(REFERENCE_PARAMETERS.read_text())
    resolved = json.loads(json.dumps(reference_parameters()))  # tuples as lists
    assert resolved.keys() == stored.keys()
    for case, params in resolved.items():
        assert params == stored[case], case


def test_same_seed_same_kernels_and_accuracy_as_the_reference():
    stored = np.load(REFERENCE_RUN)
    run = reference_run()
    assert set(run) == set(stored.files)
    np.testing.assert_allclose(run["kernels_layer1"], stored["kernels_layer1"], rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(run["weight_na_layer1"], stored["weight_na_layer1"], rtol=1e-9)
    np.testing.assert_allclose(run["features"], stored["features"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(run["predicted"], stored["predicted"])
    assert float(run["accuracy"]) == pytest.approx(float(stored["accuracy"]), abs=1e-12)
    assert float(run["train_accuracy"]) == pytest.approx(float(stored["train_accuracy"]),
                                                         abs=1e-12)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_reference_run.py --write  (overwrites the reference)")
    DATA.mkdir(exist_ok=True)
    np.savez(REFERENCE_RUN, **reference_run())
    REFERENCE_PARAMETERS.write_text(json.dumps(reference_parameters(), indent=1,
                                               sort_keys=True) + "\n")
    print(f"written {REFERENCE_RUN} and {REFERENCE_PARAMETERS}")
