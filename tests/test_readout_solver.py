"""The SVM readout's fit (dual coordinate descent, one-vs-rest in threads) finds the
model of a plain primal ``LinearSVC`` fit."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

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


def _stock_pipeline(c: float, transform=np.sqrt):
    """What SpikeCountSVM fits, as plain scikit-learn (LinearSVC's own one-vs-rest)."""
    return make_pipeline(FunctionTransformer(transform), StandardScaler(),
                         LinearSVC(C=c, dual=True, tol=SpikeCountSVM().tol, max_iter=5000,
                                   random_state=0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_copy_fit_is_linear_svc_on_the_same_features(dtype):
    """n_jobs = 1 (one liblinear call for all classes) fits exactly the stock
    LinearSVC pipeline, float32 features taken as they are."""
    features, labels = _spike_counts(200, 4, 40, seed=7)
    features = features.astype(dtype)
    svm = SpikeCountSVM(c=0.01, n_jobs=1).fit(features, labels)
    reference = _stock_pipeline(0.01).fit(features, labels)
    np.testing.assert_array_equal(svm.pipeline_[-1].coef_, reference[-1].coef_)
    np.testing.assert_array_equal(svm.pipeline_[-1].intercept_, reference[-1].intercept_)
    np.testing.assert_array_equal(svm.classes_, reference.classes_)
    assert svm.pipeline_[-1].n_iter_ == reference[-1].n_iter_
    np.testing.assert_array_equal(svm.predict(features), reference.predict(features))


def test_threads_and_one_copy_agree():
    """n_jobs = 2 (classes in threads, a copy each) and n_jobs = 1 solve the same
    problems to the solver's tolerance: the same predictions on held-out images."""
    features, labels = _spike_counts(300, 5, 50, seed=11)
    fit, test = slice(0, 1000), slice(1000, None)
    one = SpikeCountSVM(c=0.01, n_jobs=1).fit(features[fit], labels[fit])
    threads = SpikeCountSVM(c=0.01, n_jobs=2).fit(features[fit], labels[fit])
    scale = np.abs(one.pipeline_[-1].coef_).max()
    np.testing.assert_allclose(threads.pipeline_[-1].coef_, one.pipeline_[-1].coef_,
                               rtol=0, atol=2e-3 * scale)
    agree = np.mean(threads.predict(features[test]) == one.predict(features[test]))
    assert agree >= 0.995
    assert one.score(features[test], labels[test]) > 0.9


def test_fit_leaves_the_features_as_they_were():
    """No transform: the scaler would work in place on the caller's array; it must not."""
    features, labels = _spike_counts(100, 3, 20, seed=5)
    before = features.copy()
    SpikeCountSVM(c=0.1, transform="none").fit(features, labels)
    np.testing.assert_array_equal(features, before)
    SpikeCountSVM(c=0.1, transform="sqrt").fit(features, labels)
    np.testing.assert_array_equal(features, before)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_holds_one_copy_of_the_data():
    """The fit's peak memory above what it started with, by default: one liblinear
    copy (16 bytes per value) and the scaled float32 features, not one copy per
    class or thread (as n_jobs = 2 has)."""
    import os

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux's resettable peak memory")
    # in a newly spawned interpreter: the peak of a long test session depends on what
    # earlier tests left resident
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        peaks, copy_mb = pool.submit(_fit_peaks_mb).result()
    assert peaks[None] < 1.5 * copy_mb, peaks
    assert peaks[2] > 1.8 * copy_mb, peaks  # the measurement sees a second copy


def _fit_peaks_mb() -> tuple[dict, float]:
    """Peak memory above the start of each fit (MB), by ``n_jobs``; one copy's size."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from spinnconv.pipeline import peak_memory_mb, reset_peak_memory

    warnings.simplefilter("ignore", ConvergenceWarning)
    features, labels = _spike_counts(4000, 5, 200, seed=1)  # 20000 × 200 float32
    copy_mb = features.size * 16 / 2**20  # 61 MB
    peaks = {}
    for n_jobs in (None, 2):
        reset_peak_memory()
        start_mb = _rss_mb()
        options = {"n_jobs": n_jobs} if n_jobs else {}
        SpikeCountSVM(c=0.01, max_iter=50, **options).fit(features, labels)
        peaks[n_jobs] = peak_memory_mb() - start_mb
    return peaks, copy_mb
