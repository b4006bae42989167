"""The SVM readout's fit (dual coordinate descent, one-vs-rest in threads) finds the
model of a plain primal ``LinearSVC`` fit."""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from spinnconv.readout import SpikeCountSVM


def _spike_counts(n_per_class: int, n_classes: int, n_features: int, seed: int):
    """Poisson counts whose mean pattern depends on the class, shuffled."""
    rng = np.random.default_rng(seed)
    patterns = rng.gamma(2.0, 1.0, size=(n_classes, n_features))
    labels = rng.permutation(np.repeat(np.arange(n_classes), n_per_class))
    return rng.poisson(patterns[labels]).astype(np.float32), labels


@pytest.mark.parametrize("n_classes", [2, 4])
def test_fit_finds_the_primal_linear_svc_model(n_classes):
    features, labels = _spike_counts(250, n_classes, 60, seed=n_classes)
    fit, test = slice(0, 150 * n_classes), slice(150 * n_classes, None)
    c = 0.01
    svm = SpikeCountSVM(c=c, transform="sqrt").fit(features[fit], labels[fit])
    reference = make_pipeline(FunctionTransformer(np.sqrt), StandardScaler(),
                              LinearSVC(C=c, dual=False, tol=1e-8, max_iter=100_000)
                              ).fit(features[fit], labels[fit])
    coef, expected = svm.pipeline_.named_steps["svm"].coef_, reference[-1].coef_
    assert coef.shape == expected.shape == (1 if n_classes == 2 else n_classes, 60)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(coef, expected, rtol=0, atol=1e-3 * scale)
    np.testing.assert_allclose(svm.pipeline_.named_steps["svm"].intercept_,
                               reference[-1].intercept_, rtol=0, atol=1e-3 * scale)
    decision, expected_decision = (svm.decision_function(features[test]),
                                   reference.decision_function(features[test]))
    np.testing.assert_allclose(decision, expected_decision, rtol=0, atol=1e-2)
    np.testing.assert_array_equal(svm.predict(features[test]), reference.predict(features[test]))
    assert svm.score(features[test], labels[test]) > 0.95  # separable: the test means something
