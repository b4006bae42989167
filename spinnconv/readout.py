"""SVM readout: spike-count features -> a scikit-learn ``Pipeline`` (scaler + LinearSVC).

Arrays in, arrays out; the fitted pipeline is stored as plain arrays (no pickle)
by :meth:`SpikeCountSVM.to_arrays` and rebuilt by :meth:`SpikeCountSVM.from_arrays`.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json

import numpy as np
from joblib import parallel_config
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.multiclass import check_classification_targets

try:  # LinearSVC.fit's solver, which also takes float32 features
    from sklearn.svm._base import _fit_liblinear
except ImportError:  # pragma: no cover - another scikit-learn layout: LinearSVC.fit
    _fit_liblinear = None

from .model import Classifier, SequentialModel


def features_from_counts(counts: np.ndarray, shape: tuple[int, int, int],
                         classifier: Classifier, block_images: int = 4096) -> np.ndarray:
    """Features of ``classifier`` (float32) from spike counts ``(n_images, H*W*C)``.

    Counts are summed per feature map over the classifier's grid cells or windows
    (see :class:`~spinnconv.model.Classifier`), ordered map by map; without either,
    one feature per neuron. Works through ``block_images`` images at a time.
    """
    if classifier.grid is None and classifier.windows is None:
        return counts.astype(np.float32)
    height, width, channels = shape
    n_features = int(np.prod(classifier.output_shape(shape)))
    features = np.empty((counts.shape[0], n_features), dtype=np.float32)
    for start in range(0, counts.shape[0], block_images):
        maps = counts[start:start + block_images].reshape(-1, channels, height, width)
        features[start:start + len(maps)] = _cell_sums(maps, classifier).reshape(len(maps), -1)
    return features


def readout_features(counts: np.ndarray, model: SequentialModel) -> np.ndarray:
    """Features of ``model``'s classifier from the counts of its readout layers.

    ``counts`` ``(n_images, sum of neurons)``: the spike counts of
    ``model.readout_positions()`` side by side, in that order. With
    ``layers = "all"`` each stage gets the classifier scaled to its map
    (:meth:`~spinnconv.model.Classifier.scaled_to`) and the features are
    concatenated stage by stage.
    """
    shapes = model.readout_shapes()
    classifier = model.classifier or Classifier()
    sizes = [int(np.prod(shape)) for shape in shapes]
    if counts.shape[1] != sum(sizes):
        raise ValueError(f"counts have {counts.shape[1]} columns, the readout layers "
                         f"{sum(sizes)} neurons")
    if not classifier.reads_all_layers:
        return features_from_counts(counts, shapes[-1], classifier)
    edges = np.cumsum([0, *sizes])
    return np.concatenate([
        features_from_counts(counts[:, edges[k]:edges[k + 1]], shape,
                             classifier.scaled_to(shapes[0], shape))
        for k, shape in enumerate(shapes)], axis=1)


def readout_estimator(model: SequentialModel, params: dict) -> SpikeCountSVM | StageVoteSVM:
    """The unfitted readout of ``model``: a vote of per-stage SVMs when its classifier
    reads every stage and does not concatenate them, else one SVM."""
    classifier = model.classifier or Classifier()
    if classifier.votes_by_stage and len(model.readout_shapes()) > 1:
        return StageVoteSVM(stage_sizes=tuple(model.readout_stage_features()), c=params["svm_c"],
                            transform=params["svm_feature_transform"],
                            random_state=int(params["seed"]))
    return SpikeCountSVM(c=params["svm_c"], transform=params["svm_feature_transform"])


def _cell_sums(maps: np.ndarray, classifier: Classifier) -> np.ndarray:
    """``(n, C, cells)`` sums of ``maps`` ``(n, C, H, W)`` per grid cell or window."""
    n, channels, height, width = maps.shape
    if classifier.grid is not None:
        rows = np.array_split(np.arange(height), classifier.grid)
        cols = np.array_split(np.arange(width), classifier.grid)
        return np.stack([maps[:, :, r][:, :, :, c].sum(axis=(2, 3), dtype=np.float32)
                         for r in rows for c in cols], axis=2)
    # integral image: the sum over any window is four lookups
    integral = np.zeros((n, channels, height + 1, width + 1), dtype=np.float32)
    integral[:, :, 1:, 1:] = maps.cumsum(axis=2, dtype=np.float32).cumsum(axis=3)
    sums = []
    for window, stride in classifier.windows:
        top = np.arange(0, height - window + 1, stride)[:, None]
        left = np.arange(0, width - window + 1, stride)[None, :]
        bottom, right = top + window, left + window
        sums.append((integral[:, :, bottom, right] - integral[:, :, top, right]
                     - integral[:, :, bottom, left] + integral[:, :, top, left])
                    .reshape(n, channels, -1))
    return np.concatenate(sums, axis=2)


def _fit_linear_svc(svm: LinearSVC, features: np.ndarray, labels: np.ndarray) -> None:
    """``svm.fit(features, labels)`` with one liblinear call for all classes, on float32
    features as they are (``LinearSVC.fit`` would first copy them to float64; the
    problem liblinear solves is the same, its copy of the values is float64 either
    way)."""
    if _fit_liblinear is None or features.dtype != np.float32:
        svm.fit(features, labels)
        return
    check_classification_targets(labels)
    features = np.ascontiguousarray(features)
    svm.classes_ = np.unique(labels)
    svm.coef_, svm.intercept_, n_iter = _fit_liblinear(
        features, labels, svm.C, svm.fit_intercept, svm.intercept_scaling, svm.class_weight,
        svm.penalty, svm.dual, svm.verbose, svm.max_iter, svm.tol, svm.random_state,
        svm.multi_class, svm.loss)
    svm.n_features_in_ = features.shape[1]
    svm.n_iter_ = int(np.max(n_iter))


def release_freed_memory() -> None:
    """Give memory this process has freed back to the system (glibc's ``malloc_trim``:
    freed small blocks, such as those of Python lists, otherwise stay resident);
    a no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


#: Element-wise transforms of spike counts before scaling (``sqrt`` stabilises the
#: variance of Poisson-like counts).
TRANSFORMS = {"none": None, "sqrt": np.sqrt, "log1p": np.log1p}


class SpikeCountSVM(ClassifierMixin, BaseEstimator):
    """Transformed, standardised features -> a linear SVM (``LinearSVC``'s model: L2
    penalty, squared hinge, one-vs-rest); a scikit-learn estimator.

    ``fit`` solves the classes' binary problems with liblinear's dual coordinate
    descent (fast when images far outnumber features) and keeps the result as a
    fitted ``LinearSVC``. liblinear works on its own copy of the data (16 bytes per
    feature value): with ``n_jobs = 1`` one copy serves all classes, solved one
    after the other; ``n_jobs > 1`` solves that many classes at a time in threads,
    each with its own copy (faster, ``n_jobs`` times the memory). ``tol`` is
    liblinear's stopping tolerance (on MNIST features 1e-4 gives the same test
    predictions in 1.5 times the time).
    """

    def __init__(self, c: float = 1.0, transform: str = "sqrt", max_iter: int = 5000,
                 random_state: int = 0, tol: float = 1e-2, n_jobs: int = 1):
        self.c = c
        self.transform = transform
        self.max_iter = max_iter
        self.random_state = random_state
        self.tol = tol
        self.n_jobs = n_jobs

    def _pipeline(self) -> Pipeline:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; choose one of: "
                             + ", ".join(TRANSFORMS))
        return Pipeline([("transform", FunctionTransformer(TRANSFORMS[self.transform])),
                         ("scale", StandardScaler()),
                         ("svm", LinearSVC(C=self.c, max_iter=self.max_iter, dual=True,
                                           tol=self.tol, random_state=self.random_state))])

    def fit(self, features: np.ndarray, labels: np.ndarray) -> SpikeCountSVM:
        pipeline = self._pipeline()
        transform, scaler, svm = (step for _, step in pipeline.steps)
        transformed = transform.fit_transform(features)
        # scaled in place unless that would change the caller's array
        scaled = scaler.fit(transformed).transform(
            transformed, copy=np.may_share_memory(transformed, features))
        del transformed
        release_freed_memory()  # before liblinear's copy: the largest allocation
        if self.n_jobs in (None, 1):
            _fit_linear_svc(svm, scaled, labels)
        else:
            one_vs_rest = OneVsRestClassifier(clone(svm), n_jobs=self.n_jobs)
            with parallel_config(backend="threading"):  # liblinear releases the GIL
                one_vs_rest.fit(scaled.astype(np.float64, copy=False), labels)
            svm.coef_ = np.vstack([binary.coef_ for binary in one_vs_rest.estimators_])
            svm.intercept_ = np.concatenate([binary.intercept_
                                             for binary in one_vs_rest.estimators_])
            svm.classes_ = one_vs_rest.classes_
            svm.n_features_in_ = svm.coef_.shape[1]
            svm.n_iter_ = max(binary.n_iter_ for binary in one_vs_rest.estimators_)
        self.pipeline_ = pipeline
        self.classes_ = svm.classes_
        return self

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return self.pipeline_.decision_function(features)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.pipeline_.predict(features)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to predict, as NumPy arrays."""
        scaler = self.pipeline_.named_steps["scale"]
        svm = self.pipeline_.named_steps["svm"]
        return {"scaler_mean": scaler.mean_, "scaler_scale": scaler.scale_,
                "scaler_var": scaler.var_, "coef": svm.coef_, "intercept": svm.intercept_,
                "classes": svm.classes_, "c": np.array(self.c),
                "transform": np.array(self.transform)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SpikeCountSVM:
        """Rebuild a fitted estimator from :meth:`to_arrays` output."""
        model = cls(c=float(arrays["c"]), transform=str(arrays["transform"]))
        pipeline = model._pipeline()
        pipeline.named_steps["transform"].fit(np.zeros((1, np.asarray(arrays["coef"]).shape[1])))
        scaler = pipeline.named_steps["scale"]
        scaler.mean_ = np.asarray(arrays["scaler_mean"])
        scaler.scale_ = np.asarray(arrays["scaler_scale"])
        scaler.var_ = np.asarray(arrays["scaler_var"])
        scaler.n_features_in_ = scaler.mean_.size
        scaler.n_samples_seen_ = 1
        svm = pipeline.named_steps["svm"]
        svm.coef_ = np.asarray(arrays["coef"])
        svm.intercept_ = np.asarray(arrays["intercept"])
        svm.classes_ = np.asarray(arrays["classes"])
        svm.n_features_in_ = svm.coef_.shape[1]
        model.pipeline_ = pipeline
        model.classes_ = svm.classes_
        return model


#: Weights a later stage's decision values may get in :class:`StageVoteSVM`, relative
#: to the first stage's 1 (0: the stage is left out).
STAGE_WEIGHT_GRID = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0)


class StageVoteSVM(ClassifierMixin, BaseEstimator):
    """One :class:`SpikeCountSVM` per stage (a block of feature columns, the stages'
    features side by side), their decision values summed with per-stage weights; a
    scikit-learn estimator.

    ``fit`` holds out ``holdout`` of the training images (stratified, seeded), fits
    each stage's SVM on the rest and scores every weighting of ``STAGE_WEIGHT_GRID``
    on the held-out images (the first stage weighs 1; ties go to the weights closest
    to all 1). A weighting other than the first stage alone must beat it there by
    more than chance (net images gained > 2 sd of a paired sign count). Then the SVM
    of every stage that votes is fitted again on all the images. A stage that does not
    help on held-out training images gets weight 0, so the vote never reads out worse
    there than the first stage alone; it keeps the SVM fitted without the held-out
    images, which still gives that stage's own accuracy. Fitted: ``stage_svms_``,
    ``stage_weights_``, ``holdout_accuracy_`` (``{"stage 1": ..., "vote": ...}``).
    """

    def __init__(self, stage_sizes: tuple[int, ...] = (), c: float = 1.0,
                 transform: str = "sqrt", holdout: float = 0.2, random_state: int = 0,
                 tol: float = 1e-2, n_jobs: int = 1):
        self.stage_sizes = stage_sizes
        self.c = c
        self.transform = transform
        self.holdout = holdout
        self.random_state = random_state
        self.tol = tol
        self.n_jobs = n_jobs

    def _blocks(self, n_columns: int) -> list[slice]:
        edges = np.cumsum([0, *self.stage_sizes])
        if len(self.stage_sizes) == 0 or edges[-1] != n_columns:
            raise ValueError(f"stage sizes {tuple(self.stage_sizes)} do not add up to the "
                             f"{n_columns} feature columns")
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def _svm(self) -> SpikeCountSVM:
        return SpikeCountSVM(c=self.c, transform=self.transform, tol=self.tol,
                             random_state=self.random_state, n_jobs=self.n_jobs)

    def fit(self, features: np.ndarray, labels: np.ndarray) -> StageVoteSVM:
        blocks = self._blocks(features.shape[1])
        labels = np.asarray(labels)
        _, counts = np.unique(labels, return_counts=True)
        fit_rows, held_rows = train_test_split(
            np.arange(len(labels)), test_size=self.holdout, random_state=self.random_state,
            stratify=labels if counts.min() >= 2 else None)  # a class of one image: random
        held_labels = labels[held_rows]
        decisions, classes, held_out_svms = [], None, []
        for block in blocks:
            svm = self._svm().fit(features[fit_rows, block], labels[fit_rows])
            classes = svm.classes_ if classes is None else classes
            decisions.append(_class_scores(svm, features[held_rows, block]))
            held_out_svms.append(svm)
        accuracy = {f"stage {k + 1}": float(np.mean(classes[d.argmax(1)] == held_labels))
                    for k, d in enumerate(decisions)}
        first = classes[decisions[0].argmax(1)] == held_labels
        best = (float(first.mean()), 0.0, (1.0,) + (0.0,) * (len(blocks) - 1))
        for later in itertools.product(STAGE_WEIGHT_GRID, repeat=len(blocks) - 1):
            weights = (1.0, *later)
            vote = sum(w * d for w, d in zip(weights, decisions, strict=True))
            right = classes[vote.argmax(1)] == held_labels
            # a weighting must beat the first stage alone by more than chance: its net
            # gain in held-out images over twice the sd of a paired sign count
            gained, lost = int(np.sum(right & ~first)), int(np.sum(first & ~right))
            if gained - lost <= 2.0 * np.sqrt(gained + lost):
                continue
            score = float(right.mean())
            distance = sum(abs(np.log2(w)) if w > 0 else 10.0 for w in later)
            if (score, -distance) > (best[0], -best[1]):
                best = (score, distance, weights)
        accuracy["vote"] = best[0]
        self.stage_weights_ = np.asarray(best[2])
        self.holdout_accuracy_ = accuracy
        # the stages that vote are fitted again on all the images; a stage of weight 0
        # keeps its SVM of the holdout split (it does not vote, but its own accuracy can
        # be reported), which saves its second fit
        self.stage_svms_ = [self._svm().fit(features[:, block], labels) if weight > 0
                            else svm for block, weight, svm
                            in zip(blocks, self.stage_weights_, held_out_svms, strict=True)]
        self.classes_ = self.stage_svms_[0].classes_
        return self

    def _vote(self, features: np.ndarray) -> np.ndarray:
        """``(n, n_classes)`` weighted sum of the stages' class scores."""
        blocks = self._blocks(features.shape[1])
        return sum(weight * _class_scores(svm, features[:, block])
                   for block, weight, svm in zip(blocks, self.stage_weights_, self.stage_svms_,
                                                 strict=True) if weight > 0)

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """As scikit-learn's: ``(n, n_classes)``, or ``(n,)`` for two classes."""
        vote = self._vote(features)
        return vote[:, 1] if len(self.classes_) == 2 else vote

    def stage_predictions(self, features: np.ndarray) -> list[np.ndarray]:
        """Each stage's own SVM's labels (the readout of that stage alone)."""
        return [svm.predict(features[:, block]) for block, svm
                in zip(self._blocks(features.shape[1]), self.stage_svms_, strict=True)]

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.classes_[self._vote(features).argmax(axis=1)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to predict, as NumPy arrays (each stage's under
        ``stage<k>_``)."""
        arrays = {"stage_sizes": np.asarray(self.stage_sizes),
                  "stage_weights": self.stage_weights_, "c": np.array(self.c),
                  "transform": np.array(self.transform), "classes": self.classes_,
                  "holdout_accuracy_json": np.array(json.dumps(self.holdout_accuracy_))}
        for k, svm in enumerate(self.stage_svms_, start=1):
            arrays.update({f"stage{k}_{key}": value for key, value in svm.to_arrays().items()})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> StageVoteSVM:
        """Rebuild a fitted estimator from :meth:`to_arrays` output."""
        model = cls(stage_sizes=tuple(int(s) for s in np.asarray(arrays["stage_sizes"])),
                    c=float(arrays["c"]), transform=str(arrays["transform"]))
        model.stage_weights_ = np.asarray(arrays["stage_weights"], dtype=np.float64)
        model.holdout_accuracy_ = json.loads(str(arrays["holdout_accuracy_json"]))
        model.stage_svms_ = []
        for k in range(1, len(model.stage_sizes) + 1):
            prefix = f"stage{k}_"
            stage = {key[len(prefix):]: value for key, value in arrays.items()
                     if key.startswith(prefix)}
            model.stage_svms_.append(SpikeCountSVM.from_arrays(stage))
        model.classes_ = np.asarray(arrays["classes"])
        return model


def _class_scores(svm: SpikeCountSVM, features: np.ndarray) -> np.ndarray:
    """``(n, n_classes)`` decision values of ``svm`` (two classes: ``-d`` and ``d``)."""
    scores = svm.decision_function(features)
    return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


def readout_from_arrays(arrays: dict[str, np.ndarray]) -> SpikeCountSVM | StageVoteSVM:
    """The fitted readout ``svm.npz`` holds: a stage vote or one SVM."""
    if "stage_sizes" in arrays:
        return StageVoteSVM.from_arrays(arrays)
    return SpikeCountSVM.from_arrays(arrays)
