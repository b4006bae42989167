"""The stage-vote readout: one SVM per stage, weights chosen on held-out training rows."""

import numpy as np
import pytest

from spinnconv.readout import SpikeCountSVM, StageVoteSVM, readout_from_arrays


def _counts(rng, labels, n_features, informative):
    """Poisson counts whose rate depends on the label in the first ``informative``
    columns (none: pure noise)."""
    rates = np.ones((len(labels), n_features))
    for k in range(informative):
        rates[:, k] += 2.0 * (labels == k % 3)
    return rng.poisson(rates).astype(np.float32)


def test_a_noise_stage_gets_no_weight_and_costs_nothing():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    stage1 = _counts(rng, labels, 12, informative=6)
    noise = _counts(rng, labels, 40, informative=0)
    vote = StageVoteSVM(stage_sizes=(12, 40), c=0.1).fit(np.hstack([stage1, noise]), labels)
    assert vote.stage_weights_.tolist() == [1.0, 0.0]
    # the weight-0 stage keeps its SVM of the holdout split (its own accuracy), unfitted again
    from sklearn.model_selection import train_test_split
    fit_rows, _ = train_test_split(np.arange(600), test_size=0.2, random_state=0,
                                   stratify=labels)
    np.testing.assert_array_equal(
        vote.stage_svms_[1].to_arrays()["coef"],
        SpikeCountSVM(c=0.1).fit(noise[fit_rows], labels[fit_rows]).to_arrays()["coef"])
    assert vote.holdout_accuracy_["vote"] == vote.holdout_accuracy_["stage 1"]
    alone = SpikeCountSVM(c=0.1).fit(stage1, labels)
    test_labels = rng.integers(0, 3, 300)
    test = np.hstack([_counts(rng, test_labels, 12, 6), _counts(rng, test_labels, 40, 0)])
    np.testing.assert_array_equal(vote.predict(test), alone.predict(test[:, :12]))


def test_complementary_stages_both_vote_and_beat_either_alone():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 1500)

    def stages(y):  # each stage sees the label through its own noise
        return np.hstack([_counts(rng, y, 4, informative=2), _counts(rng, y, 4, informative=2)])

    vote = StageVoteSVM(stage_sizes=(4, 4), c=0.1).fit(stages(labels), labels)
    assert vote.stage_weights_[1] > 0
    held = vote.holdout_accuracy_
    assert held["vote"] > max(held["stage 1"], held["stage 2"])
    test_labels = rng.integers(0, 3, 3000)
    test = stages(test_labels)
    alone = [np.mean(SpikeCountSVM(c=0.1).fit(stages(labels)[:, s], labels)
                     .predict(test[:, s]) == test_labels) for s in (slice(0, 4), slice(4, 8))]
    assert np.mean(vote.predict(test) == test_labels) > max(alone)


def test_arrays_round_trip_predicts_the_same():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 400)
    features = np.hstack([_counts(rng, labels, 8, 4), _counts(rng, labels, 6, 3)])
    vote = StageVoteSVM(stage_sizes=(8, 6), c=0.05).fit(features, labels)
    again = readout_from_arrays(vote.to_arrays())
    assert isinstance(again, StageVoteSVM)
    np.testing.assert_array_equal(again.stage_weights_, vote.stage_weights_)
    np.testing.assert_allclose(again.decision_function(features),
                               vote.decision_function(features), rtol=1e-6)
    assert again.holdout_accuracy_ == vote.holdout_accuracy_
    for mine, theirs in zip(again.stage_predictions(features), vote.stage_predictions(features),
                            strict=True):
        np.testing.assert_array_equal(mine, theirs)
    single = SpikeCountSVM(c=0.05).fit(features, labels)
    assert isinstance(readout_from_arrays(single.to_arrays()), SpikeCountSVM)


def test_stage_sizes_must_cover_the_features():
    with pytest.raises(ValueError, match="do not add up"):
        StageVoteSVM(stage_sizes=(3, 3)).fit(np.ones((20, 7)), np.arange(20) % 2)


def test_two_classes_vote_like_scikit_learn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    features = np.hstack([_counts(rng, labels, 6, 3), _counts(rng, labels, 5, 2)])
    vote = StageVoteSVM(stage_sizes=(6, 5), c=0.1).fit(features, labels)
    scores = vote.decision_function(features)
    assert scores.shape == (300,)
    np.testing.assert_array_equal(vote.predict(features), vote.classes_[(scores > 0).astype(int)])
    assert np.mean(vote.predict(features) == labels) > 0.8
