"""Connection lists for convolution, pooling and winner-take-all, in pure NumPy.

Every function returns parallel index arrays (and weights where they vary);
backends turn them into PyNN projections. Neuron indices follow the one layout
of :mod:`spinnconv.spikes`: ``c*H*W + y*W + x`` within a layer of shape
``(H, W, C)``. Kernels are arrays of shape ``(n_kernels, kh, kw, C)`` and act as
a cross-correlation (``scipy.signal.correlate`` convention)::

    out[y, x, n] = sum_{dy, dx, c} in[y*s + dy - p, x*s + dx - p, c] * K[n, dy, dx, c]

summed over *all* input channels. Positions that fall into the zero padding
get no synapse.

Inside a training patch of shape ``(kh, kw, C)`` the same channel-major layout
gives source ``c*kh*kw + dy*kw + dx``; :func:`kernels_from_patch_weights`
converts the patch network's weight matrix into kernels.
"""

from __future__ import annotations

import numpy as np

from .spikes import neuron_index

Shape = tuple[int, int, int]


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """``(size + 2*padding - kernel) // stride + 1``; <= 0 means it does not fit."""
    return (size + 2 * padding - kernel) // stride + 1


def _window_offsets(in_shape: Shape, kernel_shape, stride: int, padding: int):
    """Input coordinates of every (output position, kernel element) pair.

    Returns ``(out_h, out_w, y, x, valid)`` where ``y``/``x`` have shape
    ``(out_h, out_w, kh, kw)``.
    """
    height, width, _ = in_shape
    kh, kw = kernel_shape
    out_h = output_size(height, kh, stride, padding)
    out_w = output_size(width, kw, stride, padding)
    oy = np.arange(out_h)[:, None, None, None]
    ox = np.arange(out_w)[None, :, None, None]
    dy = np.arange(kh)[None, None, :, None]
    dx = np.arange(kw)[None, None, None, :]
    y = oy * stride + dy - padding
    x = ox * stride + dx - padding
    y, x = np.broadcast_arrays(y, x)
    valid = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    return out_h, out_w, y, x, valid


def conv_connections(in_shape: Shape, kernels: np.ndarray, stride: int = 1, padding: int = 0,
                     min_weight: float = 0.0):
    """Convolution synapses ``(pre, post, weight)`` from ``kernels`` ``(n, kh, kw, C)``.

    Synapses whose weight is ``<= min_weight`` are left out (a zero weight does
    nothing but cost simulation time).
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    n_kernels, kh, kw, channels = kernels.shape
    if channels != in_shape[2]:
        raise ValueError(f"kernels have {channels} channels, input has {in_shape[2]}")
    out_h, out_w, y, x, valid = _window_offsets(in_shape, (kh, kw), stride, padding)
    out_shape = (out_h, out_w, n_kernels)
    # axes: (n, oy, ox, dy, dx, c)
    c = np.arange(channels)
    pre = neuron_index(in_shape, y[..., None], x[..., None], c)[None]
    oy = np.arange(out_h)[:, None, None, None, None]
    ox = np.arange(out_w)[None, :, None, None, None]
    post = neuron_index(out_shape, oy, ox, np.arange(n_kernels)[:, None, None, None, None, None])
    weight = kernels[:, None, None, :, :, :]
    shape = (n_kernels, out_h, out_w, kh, kw, channels)
    pre, post, weight = (np.broadcast_to(a, shape) for a in (pre, post, weight))
    keep = np.broadcast_to(valid[None, ..., None], shape) & (weight > min_weight)
    return pre[keep].astype(np.int64), post[keep].astype(np.int64), weight[keep].copy()


def conv_synapse_count(in_shape: Shape, kernel_shape, stride: int, padding: int,
                       n_kernels: int) -> int:
    """Number of synapses of a dense conv layer (padding positions excluded)."""
    _, _, _, _, valid = _window_offsets(in_shape, kernel_shape, stride, padding)
    return int(valid.sum()) * in_shape[2] * n_kernels


def pool_connections(in_shape: Shape, pool_shape, stride: int):
    """Pooling synapses ``(pre, post)``: each map pooled separately."""
    channels = in_shape[2]
    out_h, out_w, y, x, valid = _window_offsets(in_shape, pool_shape, stride, 0)
    out_shape = (out_h, out_w, channels)
    c = np.arange(channels)[:, None, None, None, None]
    pre = neuron_index(in_shape, y[None], x[None], c)
    oy = np.arange(out_h)[:, None, None, None]
    ox = np.arange(out_w)[None, :, None, None]
    post = neuron_index(out_shape, oy[None], ox[None], c)
    shape = (channels,) + y.shape
    pre, post = (np.broadcast_to(a, shape) for a in (pre, post))
    keep = np.broadcast_to(valid[None], shape)
    return pre[keep].astype(np.int64), post[keep].astype(np.int64)


def pool_synapse_count(in_shape: Shape, pool_shape, stride: int) -> int:
    """Number of synapses of a pooling layer."""
    _, _, _, _, valid = _window_offsets(in_shape, pool_shape, stride, 0)
    return int(valid.sum()) * in_shape[2]


def lateral_inhibition_connections(shape: Shape):
    """Winner-take-all between feature maps at the same position: ``(pre, post)``.

    Every neuron ``(y, x, c)`` inhibits ``(y, x, c')`` for all ``c' != c``.
    """
    height, width, channels = shape
    position = np.arange(height * width)
    c_pre, c_post = np.nonzero(~np.eye(channels, dtype=bool))
    pre = c_pre[None, :] * height * width + position[:, None]
    post = c_post[None, :] * height * width + position[:, None]
    return pre.ravel().astype(np.int64), post.ravel().astype(np.int64)


def all_to_all_inhibition(n: int):
    """``(pre, post)`` for every ordered pair ``i != j`` of ``n`` neurons."""
    pre, post = np.nonzero(~np.eye(n, dtype=bool))
    return pre.astype(np.int64), post.astype(np.int64)


def patch_sources(in_shape: Shape, kernel_shape, stride: int, padding: int) -> np.ndarray:
    """Input neuron of every patch element, ``(n_positions, kh*kw*C)``; -1 = padding.

    Position ``k = oy*out_w + ox``; element ``c*kh*kw + dy*kw + dx``.
    """
    channels = in_shape[2]
    out_h, out_w, y, x, valid = _window_offsets(in_shape, kernel_shape, stride, padding)
    c = np.arange(channels)[:, None, None]
    index = neuron_index(in_shape, y[:, :, None], x[:, :, None], c)  # (oh, ow, C, kh, kw)
    index = np.where(valid[:, :, None], index, -1)
    return index.reshape(out_h * out_w, -1).astype(np.int64)


def kernels_from_patch_weights(weights: np.ndarray, kernel_shape, channels: int) -> np.ndarray:
    """Patch-network weights ``(kh*kw*C, n_kernels)`` -> kernels ``(n, kh, kw, C)``."""
    kh, kw = kernel_shape
    n_kernels = weights.shape[1]
    return np.asarray(weights).T.reshape(n_kernels, channels, kh, kw).transpose(0, 2, 3, 1).copy()


def patch_weights_from_kernels(kernels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`kernels_from_patch_weights`."""
    n_kernels = kernels.shape[0]
    return np.asarray(kernels).transpose(0, 3, 1, 2).reshape(n_kernels, -1).T.copy()
