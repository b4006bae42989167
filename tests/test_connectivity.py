"""Connection lists against scipy.signal.correlate, and the index layout."""

import numpy as np
import pytest
from scipy.signal import correlate

from spinnconv import connectivity as cn
from spinnconv.model import ConvLayer, PoolLayer
from spinnconv.spikes import neuron_coordinates, neuron_index


def _apply(pre, post, weight, x_flat, n_out):
    """Run a connection list as a linear map: out[post] += w * in[pre]."""
    out = np.zeros(n_out)
    np.add.at(out, post, weight * x_flat[pre])
    return out


def _flatten(image):
    """(H, W, C) -> channel-major vector."""
    return image.transpose(2, 0, 1).ravel()


def _reference_conv(image, kernels, stride, padding):
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    maps = [correlate(padded, k, mode="valid")[..., 0] for k in kernels]  # sums over C
    full = np.stack(maps, axis=-1)
    return full[::stride, ::stride]


@pytest.mark.parametrize("seed", range(12))
def test_conv_matches_scipy_correlate(seed):
    rng = np.random.default_rng(seed)
    channels = int(rng.integers(1, 4))
    kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
    stride = int(rng.integers(1, 4))
    padding = int(rng.integers(0, 3))
    height = int(rng.integers(max(kh, 3), 12))
    width = int(rng.integers(max(kw, 3), 12))
    n_kernels = int(rng.integers(1, 5))
    image = rng.random((height, width, channels))
    kernels = rng.random((n_kernels, kh, kw, channels)) + 0.01
    layer = ConvLayer(n_kernels, (kh, kw), stride, padding)
    out_shape = layer.output_shape((height, width, channels))

    pre, post, weight = cn.conv_connections((height, width, channels), kernels, stride, padding)
    got = _apply(pre, post, weight, _flatten(image), int(np.prod(out_shape)))
    expected = _reference_conv(image, kernels, stride, padding)
    assert expected.shape == out_shape
    np.testing.assert_allclose(got, _flatten(expected), rtol=1e-12, atol=1e-12)
    assert len(pre) == cn.conv_synapse_count((height, width, channels), (kh, kw), stride,
                                             padding, n_kernels)
    # no duplicate synapses
    assert np.unique(pre * 10**6 + post).size == pre.size


def test_conv_drops_zero_weights():
    kernels = np.zeros((2, 3, 3, 1))
    kernels[0, 1, 1, 0] = 1.0
    pre, _, weight = cn.conv_connections((5, 5, 1), kernels)
    assert len(pre) == 9 and np.all(weight == 1.0)


def test_pool_is_windowed_sum_per_map():
    rng = np.random.default_rng(1)
    image = rng.random((6, 7, 3))
    layer = PoolLayer((2, 2))
    out_shape = layer.output_shape(image.shape)
    pre, post = cn.pool_connections(image.shape, (2, 2), 2)
    got = _apply(pre, post, np.ones(len(pre)), _flatten(image), int(np.prod(out_shape)))
    expected = image[:6, :6].reshape(3, 2, 3, 2, 3).sum(axis=(1, 3))
    np.testing.assert_allclose(got, _flatten(expected))


def test_lateral_inhibition_same_position_other_maps():
    shape = (3, 4, 5)
    pre, post = cn.lateral_inhibition_connections(shape)
    assert len(pre) == 3 * 4 * 5 * 4
    y0, x0, c0 = neuron_coordinates(shape, pre)
    y1, x1, c1 = neuron_coordinates(shape, post)
    assert np.all(y0 == y1) and np.all(x0 == x1) and np.all(c0 != c1)


def test_all_to_all_inhibition():
    pre, post = cn.all_to_all_inhibition(4)
    assert len(pre) == 12 and np.all(pre != post)


def test_index_layout_is_channel_major():
    shape = (4, 5, 3)
    y, x, c = np.meshgrid(range(4), range(5), range(3), indexing="ij")
    index = neuron_index(shape, y, x, c)
    assert sorted(index.ravel()) == list(range(60))
    # feature map c is a contiguous slice
    assert set(index[..., 1].ravel()) == set(range(20, 40))
    np.testing.assert_array_equal(np.stack(neuron_coordinates(shape, index)), np.stack([y, x, c]))


def test_patch_sources_and_kernel_round_trip():
    rng = np.random.default_rng(3)
    in_shape = (6, 6, 2)
    kernels = rng.random((4, 3, 3, 2))
    weights = cn.patch_weights_from_kernels(kernels)
    assert weights.shape == (18, 4)
    np.testing.assert_array_equal(cn.kernels_from_patch_weights(weights, (3, 3), 2), kernels)
    # a patch network applied to every window equals the convolution
    sources = cn.patch_sources(in_shape, (3, 3), 1, 1)
    image = rng.random(in_shape)
    flat = np.append(_flatten(image), 0.0)  # index -1 -> padding zero
    patches = flat[sources]
    got = patches @ weights  # (positions, n)
    expected = _reference_conv(image, kernels, 1, 1)
    np.testing.assert_allclose(got, expected.reshape(-1, 4))
