"""Image to spike encoding: DoG ON/OFF, latency and rate codes, ``encode``."""

import numpy as np
import pytest

from spinnconv import encoding as en
from spinnconv.errors import UsageError
from spinnconv.spikes import LayerSpikes, neuron_coordinates, neuron_index

PARAMS = {
    "dog": True,
    "dog_size": 5,
    "dog_sigma_center": 1.0,
    "dog_sigma_surround": 2.0,
    "code": "latency",
    "presentation_ms": 20.0,
    "timestep_ms": 1.0,
    "latency_threshold": 0.0,
    "max_rate_hz": 100.0,
}


def _dot(size=11, value=1.0):
    image = np.zeros((1, size, size))
    image[0, size // 2, size // 2] = value
    return image


def _on_grid(times, timestep_ms):
    steps = times / timestep_ms
    return np.allclose(steps, np.round(steps), atol=1e-9)


# ---------------------------------------------------------------- DoG

def test_dog_kernel_is_zero_mean_and_symmetric():
    kernel = en.dog_kernel(7, 1.0, 2.0)
    assert kernel.shape == (7, 7)
    assert abs(kernel.sum()) < 1e-12
    assert kernel[3, 3] == kernel.max() > 0
    np.testing.assert_allclose(kernel, kernel.T)
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1])


def test_dog_bright_dot_gives_on_centre_and_off_ring():
    out = en.dog_filter(_dot(), 7, 1.0, 2.0)
    assert out.shape == (1, 11, 11, 2)
    assert out.dtype == np.float32
    on, off = out[0, ..., 0], out[0, ..., 1]
    assert np.unravel_index(on.argmax(), on.shape) == (5, 5)
    assert on[5, 5] == 1.0  # normalised: the maximum over both channels is 1
    assert off[5, 5] == 0.0
    assert off[5, 8] > 0 and off[2, 5] > 0  # surround ring, 3 pixels away
    assert on[5, 8] == 0.0
    assert off.max() < 1.0
    # the ring is isotropic: same response at the four compass points
    np.testing.assert_allclose([off[5, 8], off[5, 2], off[8, 5], off[2, 5]], off[5, 8])
    assert np.all((on == 0) | (off == 0))  # ON and OFF never both active


def test_dog_dark_dot_swaps_channels_and_zero_padding():
    image = 1.0 - _dot()
    out = en.dog_filter(image, 7, 1.0, 2.0)
    assert out[0, 5, 5, 1] > 0 and out[0, 5, 5, 0] == 0.0  # OFF at the dark dot
    # zero padding: a bright image has an edge response at its border
    flat = en.dog_filter(np.ones((1, 11, 11)), 5, 1.0, 2.0)
    assert flat[0, 0, 0, 0] > 0
    np.testing.assert_allclose(flat[0, 5, 5], 0.0, atol=1e-6)


def test_dog_normalises_each_image_and_keeps_blank_images_zero():
    batch = np.concatenate([_dot(value=1.0), _dot(value=0.2), np.zeros((1, 11, 11))])
    out = en.dog_filter(batch, 5, 1.0, 2.0)
    np.testing.assert_allclose(out.reshape(3, -1).max(axis=1), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    assert np.all(out >= 0)


@pytest.mark.parametrize("size, sc, ss", [(4, 1.0, 2.0), (0, 1.0, 2.0), (5, 2.0, 1.0),
                                          (5, 0.0, 1.0), (5, 1.0, 1.0), (5, 1.0, np.nan)])
def test_dog_rejects_bad_parameters(size, sc, ss):
    with pytest.raises(UsageError):
        en.dog_filter(_dot(), size, sc, ss)


def test_dog_rejects_wrong_rank():
    with pytest.raises(UsageError, match="shape"):
        en.dog_filter(np.zeros((11, 11)), 5, 1.0, 2.0)


def test_to_unit_range():
    raw = np.array([[[0, 128], [255, 3]]], dtype=np.uint8)
    out = en.to_unit_range(raw)
    assert out.shape == (1, 2, 2, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, :, 0], raw[0] / 255.0)
    floats = en.to_unit_range(np.array([[[0.0, 4.0], [2.0, 1.0]]]))
    np.testing.assert_allclose(floats[0, :, :, 0], [[0, 1], [0.5, 0.25]])
    np.testing.assert_array_equal(en.to_unit_range(np.zeros((2, 3, 3))), 0.0)
    with pytest.raises(UsageError):
        en.to_unit_range(np.zeros((3, 3)))
    with pytest.raises(UsageError):
        en.to_unit_range(-np.ones((1, 2, 2)))


# ---------------------------------------------------------------- latency

def test_latency_one_spike_per_value_above_threshold_on_grid():
    rng = np.random.default_rng(0)
    intensity = rng.random((3, 4, 5, 2))
    intensity[intensity < 0.3] = 0.0
    intensity[0, 0, 0, 0] = 1.0
    spikes = en.latency_code(intensity, 50.0, 0.5, threshold=0.1)
    assert isinstance(spikes, LayerSpikes)
    assert spikes.shape == (4, 5, 2) and spikes.n_images == 3
    counts = spikes.counts().reshape(3, 2, 4, 5).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(counts, (intensity > 0.1).astype(np.float32))
    assert spikes.time_ms.min() == 0.0
    assert spikes.time_ms.max() <= 50.0 - 0.5
    assert _on_grid(spikes.time_ms, 0.5)
    # brighter fires earlier (or in the same step)
    y, x, c = neuron_coordinates(spikes.shape, spikes.neuron)
    value = intensity[spikes.image, y, x, c]
    order = np.argsort(-value, kind="stable")
    for img in range(3):
        mine = order[spikes.image[order] == img]
        assert np.all(np.diff(spikes.time_ms[mine]) >= 0)


def test_latency_times_and_index_layout_for_two_channels():
    intensity = np.zeros((1, 2, 3, 2))
    intensity[0, 1, 2, 0] = 1.0    # fires at 0
    intensity[0, 0, 1, 1] = 0.5    # (1 - 0.5) * 9 = 4.5 -> 4
    intensity[0, 1, 0, 1] = 0.01   # 0.99 * 9 = 8.91 -> 8
    spikes = en.latency_code(intensity, 10.0, 1.0)
    shape = (2, 3, 2)
    expected_neurons = neuron_index(shape, [1, 0, 1], [2, 1, 0], [0, 1, 1])
    np.testing.assert_array_equal(spikes.neuron, expected_neurons)
    np.testing.assert_array_equal(spikes.neuron, [1 * 3 + 2, 6 + 0 * 3 + 1, 6 + 1 * 3 + 0])
    np.testing.assert_array_equal(spikes.time_ms, [0.0, 4.0, 8.0])


def test_latency_grid_rounding_is_robust_to_float_error():
    # (1 - 0.9) * 10 is 0.99999... in floating point; it must land on step 1
    spikes = en.latency_code(np.full((1, 1, 1, 1), 0.9), 11.0, 1.0)
    np.testing.assert_array_equal(spikes.time_ms, [1.0])
    # a window that is not a multiple of the step: all times stay inside it
    spikes = en.latency_code(np.linspace(0.01, 1, 50).reshape(1, 5, 10, 1), 10.0, 3.0)
    assert spikes.time_ms.max() <= 7.0 and _on_grid(spikes.time_ms, 3.0)


def test_latency_rejects_out_of_range_intensity_and_bad_timing():
    with pytest.raises(UsageError):
        en.latency_code(np.full((1, 1, 1, 1), 1.5), 10.0, 1.0)
    with pytest.raises(UsageError):
        en.latency_code(np.full((1, 1, 1), 0.5), 10.0, 1.0)
    with pytest.raises(UsageError):
        en.latency_code(np.full((1, 1, 1, 1), 0.5), 10.0, 20.0)


# ---------------------------------------------------------------- rate

def test_rate_deterministic_counts_match_formula():
    values = np.array([0.0, 0.05, 0.25, 0.5, 0.74, 1.0])
    intensity = values.reshape(1, 1, 6, 1)
    spikes = en.rate_code(intensity, 100.0, 200.0, 1.0)
    expected = np.floor(values * 200.0 * 100.0 / 1000.0 + 0.5)
    np.testing.assert_array_equal(spikes.counts()[0], expected)
    for neuron in range(6):
        times = spikes.time_ms[spikes.neuron == neuron]
        if times.size:
            assert times[0] == 0.0
            assert np.all(np.diff(times) > 0)  # distinct and sorted
            assert times[-1] < 100.0
            assert _on_grid(times, 1.0)
    # evenly spread: 10 spikes in 100 ms are 10 ms apart
    np.testing.assert_array_equal(spikes.time_ms[spikes.neuron == 3], np.arange(0, 100, 10))


def test_rate_deterministic_is_capped_at_one_spike_per_step():
    spikes = en.rate_code(np.ones((2, 2, 2, 1)), 10.0, 5000.0, 1.0)
    np.testing.assert_array_equal(spikes.counts(), 10.0)
    assert _on_grid(spikes.time_ms, 1.0) and spikes.time_ms.max() == 9.0


def test_rate_bernoulli_reproducible_and_mean_rate():
    intensity = np.full((4, 10, 10, 2), 0.5)
    a = en.rate_code(intensity, 200.0, 100.0, 1.0, rng=np.random.default_rng(7))
    b = en.rate_code(intensity, 200.0, 100.0, 1.0, rng=np.random.default_rng(7))
    c = en.rate_code(intensity, 200.0, 100.0, 1.0, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a.neuron, b.neuron)
    np.testing.assert_array_equal(a.time_ms, b.time_ms)
    assert not np.array_equal(a.time_ms, c.time_ms) or not np.array_equal(a.neuron, c.neuron)
    # expected 0.5 * 100 Hz * 0.2 s = 10 spikes per neuron; 800 neurons
    mean = a.n_spikes / 800
    assert abs(mean - 10.0) < 0.5
    assert _on_grid(a.time_ms, 1.0) and a.time_ms.min() >= 0 and a.time_ms.max() < 200.0
    # at most one spike per neuron per step
    key = (a.image * a.n_neurons + a.neuron) * 1000 + a.time_ms.astype(np.int64)
    assert np.unique(key).size == key.size
    # zero intensity never fires
    zero = en.rate_code(np.zeros((1, 3, 3, 1)), 200.0, 100.0, 1.0,
                        rng=np.random.default_rng(0))
    assert zero.n_spikes == 0


def test_rate_rejects_bad_arguments():
    intensity = np.full((1, 1, 1, 1), 0.5)
    with pytest.raises(UsageError):
        en.rate_code(intensity, 0.0, 100.0, 1.0)
    with pytest.raises(UsageError):
        en.rate_code(intensity, 10.0, -1.0, 1.0)
    with pytest.raises(UsageError):
        en.rate_code(intensity, 10.0, 100.0, 1.0, rng=42)


# ---------------------------------------------------------------- encode

@pytest.mark.parametrize("dog, channels", [(True, 2), (False, 1)])
@pytest.mark.parametrize("code", ["latency", "rate"])
def test_encode_shapes(dog, channels, code):
    images = (np.random.default_rng(1).random((3, 8, 8)) * 255).astype(np.uint8)
    params = dict(PARAMS, dog=dog, code=code)
    spikes = en.encode(images, params)
    assert spikes.shape == (8, 8, channels) == en.encoded_shape((8, 8), params)
    assert spikes.n_images == 3
    assert spikes.n_spikes > 0
    assert spikes.neuron.max() < 8 * 8 * channels
    assert spikes.time_ms.min() >= 0 and spikes.time_ms.max() < params["presentation_ms"]


def test_encode_without_dog_uint8_and_float_agree():
    images = (np.random.default_rng(2).random((2, 6, 6)) * 255).astype(np.uint8)
    params = dict(PARAMS, dog=False)
    # float input above 1 is scaled by each image's own maximum: give both a 255 pixel
    images[:, 0, 0] = 255
    a = en.encode(images, params)
    b = en.encode(images.astype(np.float64), params)
    np.testing.assert_array_equal(a.neuron, b.neuron)
    np.testing.assert_array_equal(a.time_ms, b.time_ms)


@pytest.mark.parametrize("change", [
    {"code": "phase"},
    {"presentation_ms": 0.0},
    {"presentation_ms": -5.0},
    {"timestep_ms": 0.0},
    {"timestep_ms": 50.0},
    {"timestep_ms": float("nan")},
    {"presentation_ms": float("inf")},
    {"dog_size": 4},
    {"dog_sigma_center": 3.0},
    {"dog": "yes"},
    {"max_rate_hz": -1.0},
])
def test_encode_usage_errors(change):
    with pytest.raises(UsageError) as info:
        en.encode(np.zeros((1, 8, 8)), dict(PARAMS, **change))
    assert "\n" not in str(info.value)


def test_encode_missing_key_and_bad_images():
    params = dict(PARAMS)
    del params["code"]
    with pytest.raises(UsageError, match="code"):
        en.encode(np.zeros((1, 8, 8)), params)
    with pytest.raises(UsageError):
        en.encode(np.zeros((8, 8)), PARAMS)
    images = np.zeros((1, 8, 8))
    images[0, 0, 0] = np.nan
    with pytest.raises(UsageError):
        en.encode(images, PARAMS)
    with pytest.raises(UsageError, match="unknown code"):
        en.encoded_shape((8, 8), dict(PARAMS, code="phase"))


def test_encode_empty_batch():
    spikes = en.encode(np.zeros((0, 8, 8), dtype=np.uint8), PARAMS)
    assert spikes.n_images == 0 and spikes.n_spikes == 0


def test_rate_code_events_in_from_arrays_order():
    """The deterministic rate code hands out its events sorted by (image, time,
    neuron), exactly as LayerSpikes.from_arrays sorts the same events."""
    rng = np.random.default_rng(7)
    images = rng.random((6, 9, 9)) * (rng.random((6, 9, 9)) < 0.6)
    spikes = en.encode(images, {**PARAMS, "code": "rate", "max_rate_hz": 500.0})
    assert spikes.n_spikes > 200
    shuffle = rng.permutation(spikes.n_spikes)
    resorted = LayerSpikes.from_arrays(spikes.shape, spikes.n_images, spikes.image[shuffle],
                                       spikes.neuron[shuffle], spikes.time_ms[shuffle])
    for name in ("image", "neuron", "time_ms"):
        np.testing.assert_array_equal(getattr(spikes, name), getattr(resorted, name))
        assert getattr(spikes, name).dtype == getattr(resorted, name).dtype
