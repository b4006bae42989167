"""Spike containers, the schedule, patch sampling, calibration and STDP on a real backend."""

import numpy as np
import pytest

from spinnconv import connectivity as cn
from spinnconv.backends import get_backend
from spinnconv.config import resolve_parameters
from spinnconv.model import ConvLayer
from spinnconv.spikes import LayerSpikes, Schedule
from spinnconv.training import (
    calibrate_weight_na,
    rescale_kernels,
    sample_patches,
    train_conv_layer,
)


def random_spikes(rng, shape=(6, 6, 2), n_images=5, per_image=40, window_ms=20.0):
    n = int(np.prod(shape))
    image = np.repeat(np.arange(n_images), per_image)
    neuron = rng.integers(0, n, size=image.size)
    time_ms = rng.integers(0, int(window_ms), size=image.size).astype(float)
    # one spike per (image, neuron, time)
    key = np.unique(np.column_stack([image, neuron, time_ms]), axis=0)
    return LayerSpikes.from_arrays(shape, n_images, key[:, 0], key[:, 1], key[:, 2])


def test_schedule_round_trip_through_absolute_times():
    rng = np.random.default_rng(0)
    spikes = random_spikes(rng)
    schedule = Schedule(presentation_ms=20.0, rest_ms=15.0, onset_ms=2.0)
    per_neuron = spikes.to_source_times(schedule)
    assert len(per_neuron) == spikes.n_neurons
    assert all(np.all(np.diff(t) > 0) for t in per_neuron)
    assert min(t.min() for t in per_neuron if t.size) >= schedule.onset_ms
    neuron = np.concatenate([np.full(t.size, k) for k, t in enumerate(per_neuron)])
    times = np.concatenate(per_neuron)
    again = LayerSpikes.from_recording(spikes.shape, spikes.n_images, neuron, times, schedule)
    np.testing.assert_array_equal(again.image, spikes.image)
    np.testing.assert_array_equal(again.neuron, spikes.neuron)
    np.testing.assert_allclose(again.time_ms, spikes.time_ms)
    np.testing.assert_array_equal(again.counts(), spikes.counts())


def test_counts_and_select():
    rng = np.random.default_rng(1)
    spikes = random_spikes(rng)
    counts = spikes.counts()
    assert counts.shape == (5, 72) and counts.sum() == spikes.n_spikes
    subset = spikes.select([3, 1])
    np.testing.assert_array_equal(subset.counts(), counts[[3, 1]])


def test_sampled_patches_are_windows_of_their_image():
    rng = np.random.default_rng(2)
    spikes = random_spikes(rng, n_images=4, per_image=60)
    layer = ConvLayer(3, (3, 3), stride=1, padding=1)
    patches = sample_patches(spikes, layer, 30, np.random.default_rng(0), min_spikes=2)
    assert patches.shape == (3, 3, 2) and patches.n_images == 30
    counts = patches.counts()
    assert np.all(counts.sum(axis=1) >= 2)
    # every patch must equal some window of some image
    sources = cn.patch_sources(spikes.shape, (3, 3), 1, 1)
    image_counts = np.concatenate([spikes.counts(), np.zeros((4, 1))], axis=1)
    windows = image_counts[:, sources].reshape(-1, sources.shape[1])
    for row in counts:
        assert np.any(np.all(windows == row, axis=1))


def test_calibrated_weight_scales_inversely_with_input():
    rng = np.random.default_rng(3)
    spikes = random_spikes(rng, n_images=6, per_image=80)
    layer = ConvLayer(4, (3, 3))
    kernels = rng.random((4, 3, 3, 2))
    params = resolve_parameters("digits")
    weight = calibrate_weight_na(spikes.counts(), spikes.shape, layer, kernels, params)
    doubled = calibrate_weight_na(2 * spikes.counts(), spikes.shape, layer, kernels, params)
    assert weight > 0 and doubled == pytest.approx(weight / 2)


def _patterned_patches(n_patches=300):
    """Two alternating 3×3 patterns (a vertical and a horizontal bar) as rate-coded spikes."""
    vertical = np.zeros((3, 3))
    vertical[:, 1] = 1
    horizontal = vertical.T
    neurons = [np.flatnonzero(p.ravel()) for p in (vertical, horizontal)]
    image, neuron, time_ms = [], [], []
    for k in range(n_patches):
        for n in neurons[k % 2]:
            for t in range(0, 20, 3):
                image.append(k)
                neuron.append(n)
                time_ms.append(float(t))
    return LayerSpikes.from_arrays((3, 3, 1), n_patches, image, neuron, time_ms)


@pytest.mark.parametrize("backend_name", ["nest", "brian2"])
def test_stdp_patch_network_learns_and_is_deterministic(backend_name, request):
    pytest.importorskip("pyNN." + backend_name)
    if backend_name == "brian2":
        request.getfixturevalue("brian2_numpy_target")
    params = resolve_parameters("digits", {"train_chunk_patches": 50})
    patches = _patterned_patches()
    results = [train_conv_layer(get_backend(backend_name), patches, 2, params,
                                np.random.default_rng(7), quiet=True) for _ in range(2)]
    first, second = results
    np.testing.assert_array_equal(first.kernels, second.kernels)  # same seed -> same kernels
    kernels = first.kernels.reshape(2, 9)
    assert np.all(kernels >= 0) and np.all(kernels <= 1)
    assert first.wins.sum() > 0 and len(first.convergence) == 6
    assert _each_kernel_prefers_a_bar(kernels)


def _each_kernel_prefers_a_bar(kernels: np.ndarray) -> bool:
    """Weights on one of the two bars exceed the off-bar weights, for every kernel."""
    on_bar = [np.flatnonzero(p) for p in (np.eye(3)[:, [1]].repeat(3, 1).ravel(),
                                          np.eye(3)[[1]].repeat(3, 0).ravel())]
    preference = np.array([[k[idx].mean() for idx in on_bar] for k in kernels])
    off_bar = np.setdiff1d(np.arange(9), np.union1d(*on_bar))
    return bool(np.all(preference.max(axis=1) > kernels[:, off_bar].mean(axis=1) + 0.1))


def test_every_chunk_starts_a_fresh_network_from_the_rescaled_weights():
    """Each chunk of patches runs on a freshly built patch network (a board cannot
    change the weights of a running network): it starts from the previous chunk's
    weights as read back and rescaled, with the thresholds homeostasis moved, and
    the kernel population is told its largest input per step."""
    pytest.importorskip("pyNN.nest")
    params = resolve_parameters("digits", {"train_chunk_patches": 50})
    patches = _patterned_patches()
    backend = get_backend("nest")
    starts, reads, thresholds, bounds = [], [], [], []
    connect, weights = backend.connect, backend.weights
    population, set_parameters = backend.population, backend.set_parameters

    def spy_connect(pre, post, connections, receptor="excitatory", stdp=None, label=""):
        if stdp is not None:
            dense = np.zeros((9, 2))
            dense[connections.pre, connections.post] = connections.weight
            starts.append(dense)
        return connect(pre, post, connections, receptor, stdp, label)

    def spy_weights(projection):
        reads.append(weights(projection))
        return reads[-1]

    def spy_population(n, cell_params, label, max_input_na=None):
        bounds.append(max_input_na)
        return population(n, cell_params, label, max_input_na)

    def spy_set(pop, **values):
        thresholds.append(np.array(values["v_thresh"], dtype=float))
        return set_parameters(pop, **values)

    backend.connect, backend.weights = spy_connect, spy_weights
    backend.population, backend.set_parameters = spy_population, spy_set
    trained = train_conv_layer(backend, patches, 2, params, np.random.default_rng(7),
                               quiet=True)
    assert len(starts) == len(reads) == len(bounds) == 6 == len(trained.convergence)
    w_max = trained.w_max_na
    for start, read in zip(starts[1:], reads[:-1], strict=True):
        np.testing.assert_allclose(start, rescale_kernels(read / w_max, params["kernel_l1"])
                                   * w_max, rtol=1e-12, atol=1e-12)
    assert not np.allclose(starts[1], starts[0])  # it learned in between
    # the bars have 3 neurons, each spiking at most once per step
    assert bounds == [(3 * w_max, params["patch_inhibition_na"])] * 6
    assert len(thresholds) >= 4  # homeostasis moved them for the later chunks
    np.testing.assert_allclose(thresholds[-1], trained.thresholds_mv)
    assert trained.v_trace_mv.size > 0
    assert _each_kernel_prefers_a_bar(trained.kernels.reshape(2, 9))


def test_max_spikes_within_a_window():
    spikes = LayerSpikes.from_arrays((2, 2, 1), 2, [0, 0, 0, 0, 1, 1, 1],
                                     [0, 1, 2, 3, 0, 1, 2], [0.0, 0.0, 0.5, 1.0, 3.0, 3.0, 3.0])
    assert spikes.max_spikes_within(1.0) == 3  # [0, 1) of image 0; image 1's 3 at 3 ms
    assert spikes.max_spikes_within(1.5) == 4
    assert spikes.max_spikes_within(0.1) == 3
    # images never add up, whatever their times
    assert spikes.select([0]).max_spikes_within(100.0) == 4
    assert LayerSpikes.from_arrays((1, 1, 1), 1, [], [], []).max_spikes_within(1.0) == 0
    with pytest.raises(ValueError, match="window_ms"):
        spikes.max_spikes_within(0.0)


def test_board_weights_are_applied_to_start_and_read_back():
    """--emulate-spinnaker passes the board's 16-bit rounding: applied to the weights
    the network starts from and to every read-back, for the population's largest
    input per step."""
    pytest.importorskip("pyNN.nest")
    params = resolve_parameters("digits", {"train_chunk_patches": 50})
    seen = []

    def coarse(weights_na, max_input_na):
        seen.append(max_input_na)
        step = max_input_na / 64
        return np.round(np.nan_to_num(weights_na) / step) * step

    trained = train_conv_layer(get_backend("nest"), _patterned_patches(), 2, params,
                               np.random.default_rng(7), quiet=True, board_weights=coarse)
    assert seen == [3 * trained.w_max_na] * (1 + 6 + 5)  # each start, each read-back
    assert len(trained.convergence) == 6


def test_emulated_training_on_brian2_uses_the_board_rule_and_step(brian2_numpy_target):
    """--emulate-spinnaker training on brian2: every chunk's patch network gets
    sPyNNaker's STDP rule with the board's 16-bit step for this w_max and fan-in,
    and the bars are still learned."""
    from spinnconv.backends.spinnaker import board_training_options, plastic_weight_step_on_board

    params = resolve_parameters("digits", {"train_chunk_patches": 50})
    backend = get_backend("brian2")
    board = board_training_options()
    rules, connect = [], backend.connect

    def spy(pre, post, connections, receptor="excitatory", stdp=None, label=""):
        projection = connect(pre, post, connections, receptor, stdp, label)
        if stdp is not None:
            rules.append((stdp, type(projection.synapse_type).__name__))
        return projection

    backend.connect = spy
    trained = train_conv_layer(backend, _patterned_patches(), 2, params,
                               np.random.default_rng(7), quiet=True, **board)
    assert len(rules) == 6  # a fresh patch network per chunk
    step = plastic_weight_step_on_board(3 * trained.w_max_na)  # 3 spikes per step
    assert all(rule.spinnaker_weight_step_na == step for rule, _ in rules)
    assert {name for _, name in rules} == {"DendriticSTDPMechanism"}
    assert trained.wins.sum() > 0
    assert _each_kernel_prefers_a_bar(trained.kernels.reshape(2, 9))
