"""First stage of the pipeline: images to input spikes.

Images ``(N, H, W)`` are optionally filtered by a difference-of-Gaussians (DoG)
into ON and OFF channels ``(N, H, W, 2)``, or simply scaled to ``[0, 1]`` as a
single channel ``(N, H, W, 1)``. The intensities are then turned into spikes
by a latency code (one spike per pixel, brighter is earlier), a rate code
(spike count proportional to intensity) or a Poisson code (the rate code's
probabilities drawn per time step, seeded). The result is a
:class:`~spinnconv.spikes.LayerSpikes` whose neuron index follows the
channel-major layout ``c*H*W + y*W + x``; spike times are relative to the
start of each image's window and lie on the ``timestep_ms`` grid in
``[0, presentation_ms)``.

No simulator is imported here: everything is NumPy / SciPy.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
from scipy import ndimage

from .errors import UsageError
from .spikes import LayerSpikes, neuron_index

__all__ = [
    "CODES",
    "PARAM_KEYS",
    "dog_filter",
    "dog_kernel",
    "encode",
    "encoded_shape",
    "input_spikes",
    "latency_code",
    "poisson_code",
    "rate_code",
    "to_unit_range",
]

CODES = ("latency", "rate", "poisson")
PARAM_KEYS = (
    "dog",
    "dog_size",
    "dog_sigma_center",
    "dog_sigma_surround",
    "code",
    "presentation_ms",
    "timestep_ms",
    "latency_threshold",
    "max_rate_hz",
)

# Tolerance (in time steps) for float round-off when flooring onto the grid.
_GRID_EPS = 1e-9
# Largest boolean block drawn at once by the Bernoulli rate code.
_BERNOULLI_BLOCK = 1 << 23


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------

def _real(name: str, value) -> float:
    """``value`` as a finite float, else ``UsageError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.number)):
        raise UsageError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise UsageError(f"{name} must be finite, got {value}")
    return value


def _integer(name: str, value) -> int:
    """``value`` as an int (no bools, no fractional floats)."""
    if isinstance(value, bool):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, (Integral, np.integer)):
        return int(value)
    if isinstance(value, (Real, np.floating)) and float(value).is_integer():
        return int(value)
    raise UsageError(f"{name} must be an integer, got {value!r}")


def _check_timing(presentation_ms, timestep_ms) -> tuple[float, float]:
    presentation_ms = _real("presentation_ms", presentation_ms)
    timestep_ms = _real("timestep_ms", timestep_ms)
    if presentation_ms <= 0:
        raise UsageError(f"presentation_ms must be > 0, got {presentation_ms}")
    if timestep_ms <= 0:
        raise UsageError(f"timestep_ms must be > 0, got {timestep_ms}")
    if timestep_ms > presentation_ms:
        raise UsageError(f"timestep_ms ({timestep_ms}) must be <= presentation_ms "
                         f"({presentation_ms})")
    return presentation_ms, timestep_ms


def _n_slots(presentation_ms: float, timestep_ms: float) -> int:
    """Number of grid times ``k * timestep_ms`` lying in ``[0, presentation_ms)``."""
    return max(1, math.ceil(presentation_ms / timestep_ms - _GRID_EPS))


def _numeric_array(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == np.bool_):
        raise UsageError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise UsageError(f"{name} must be real-valued, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise UsageError(f"{name} contains NaN or infinite values")
    return array


def _check_intensity(intensity) -> np.ndarray:
    array = _numeric_array("intensity", intensity)
    if array.ndim != 4:
        raise UsageError(f"intensity must have shape (N, H, W, C), got {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 1):
        raise UsageError(f"intensity values must lie in [0, 1], got "
                         f"[{array.min()}, {array.max()}]")
    return array.astype(np.float64, copy=False)


# --------------------------------------------------------------------------
# images to intensities
# --------------------------------------------------------------------------

def dog_kernel(size: int, sigma_center: float, sigma_surround: float) -> np.ndarray:
    """Zero-mean ``size x size`` difference-of-Gaussians kernel (float64).

    Centre Gaussian normalised to sum 1 minus surround Gaussian normalised to
    sum 1; sigmas in pixels.
    """
    size = _integer("dog_size", size)
    sigma_center = _real("dog_sigma_center", sigma_center)
    sigma_surround = _real("dog_sigma_surround", sigma_surround)
    if size < 1 or size % 2 == 0:
        raise UsageError(f"dog_size must be an odd integer >= 1, got {size}")
    if not 0 < sigma_center < sigma_surround:
        raise UsageError(f"DoG sigmas must satisfy 0 < sigma_center < sigma_surround, "
                         f"got {sigma_center} and {sigma_surround}")
    offset = np.arange(size, dtype=np.float64) - size // 2
    radius2 = offset[:, None] ** 2 + offset[None, :] ** 2
    center = np.exp(-radius2 / (2.0 * sigma_center ** 2))
    surround = np.exp(-radius2 / (2.0 * sigma_surround ** 2))
    return center / center.sum() - surround / surround.sum()


def dog_filter(images, size: int, sigma_center: float,
               sigma_surround: float) -> np.ndarray:
    """ON/OFF difference-of-Gaussians filtering of a batch of images.

    Parameters
    ----------
    images : array ``(N, H, W)``, values in [0, 1].
    size : odd kernel width in pixels (>= 1).
    sigma_center, sigma_surround : Gaussian widths in pixels,
        ``0 < sigma_center < sigma_surround``.

    Returns
    -------
    ``(N, H, W, 2)`` float32: channel 0 = ON = max(DoG, 0), channel 1 = OFF =
    max(-DoG, 0), with zero padding at the borders, each image scaled so that
    its maximum over both channels is 1 (all-zero images stay 0).
    """
    kernel = dog_kernel(size, sigma_center, sigma_surround)
    array = _numeric_array("images", images)
    if array.ndim != 3:
        raise UsageError(f"images must have shape (N, H, W), got {array.shape}")
    dog = ndimage.correlate(array.astype(np.float64), kernel[None, :, :],
                            mode="constant", cval=0.0)
    out = np.stack([np.maximum(dog, 0.0), np.maximum(-dog, 0.0)], axis=-1)
    peak = out.max(axis=(1, 2, 3), keepdims=True) if out.size else out[:, :1, :1, :1]
    # Round-off on flat regions gives tiny non-zero values: treat as zero.
    tiny = 1e-12
    out = np.where(peak > tiny, out / np.where(peak > tiny, peak, 1.0), 0.0)
    return out.astype(np.float32)


def to_unit_range(images) -> np.ndarray:
    """Scale images to float32 in [0, 1], with a channel axis, each image on its own.

    ``uint8`` is divided by 255 and ``uint16`` by 65535 (the range the dtype
    declares); any other dtype is kept where an image's maximum is at most 1,
    and divided by that image's maximum otherwise. So an image's intensities
    never depend on the other images of the batch. ``(N, H, W)`` becomes
    ``(N, H, W, 1)``; ``(N, H, W, C)`` keeps its shape. Negative values raise
    ``UsageError``.
    """
    array = _numeric_array("images", images)
    if array.ndim == 3:
        array = array[..., None]
    elif array.ndim != 4:
        raise UsageError(f"images must have shape (N, H, W) or (N, H, W, C), "
                         f"got {array.shape}")
    if array.dtype in (np.uint8, np.uint16):
        full_scale = np.float32(np.iinfo(array.dtype).max)
        return array.astype(np.float32) / full_scale
    values = array.astype(np.float64)
    if values.size == 0:
        return values.astype(np.float32)
    if values.min() < 0:
        raise UsageError(f"images must be non-negative, minimum is {values.min()}")
    peak = values.max(axis=(1, 2, 3), keepdims=True)
    values = values / np.maximum(peak, 1.0)
    return np.clip(values, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------
# intensities to spikes
# --------------------------------------------------------------------------

def latency_code(intensity, presentation_ms: float, timestep_ms: float,
                 threshold: float = 0.0) -> LayerSpikes:
    """Time-to-first-spike code: one spike per value above ``threshold``.

    Value ``v`` fires at ``(1 - v) * (presentation_ms - timestep_ms)`` rounded
    down to the ``timestep_ms`` grid, so ``v = 1`` fires at 0 ms and every
    time lies in ``[0, presentation_ms - timestep_ms]``.

    Parameters
    ----------
    intensity : array ``(N, H, W, C)`` in [0, 1].
    presentation_ms, timestep_ms : window length and time grid, in ms.
    threshold : values ``<= threshold`` emit no spike.
    """
    presentation_ms, timestep_ms = _check_timing(presentation_ms, timestep_ms)
    threshold = _real("latency_threshold", threshold)
    values = _check_intensity(intensity)
    n_images, height, width, channels = values.shape
    shape = (height, width, channels)
    img, y, x, c = np.nonzero(values > threshold)
    v = values[img, y, x, c]
    last_step = math.floor((presentation_ms - timestep_ms) / timestep_ms + _GRID_EPS)
    steps = np.floor((1.0 - v) * (presentation_ms - timestep_ms) / timestep_ms
                     + _GRID_EPS)
    steps = np.clip(steps, 0, last_step)
    return LayerSpikes.from_arrays(shape, n_images, img, neuron_index(shape, y, x, c),
                                   steps * timestep_ms)


def rate_code(intensity, presentation_ms: float, max_rate_hz: float,
              timestep_ms: float, rng: np.random.Generator | None = None
              ) -> LayerSpikes:
    """Rate code: spike count proportional to intensity.

    Deterministic when ``rng`` is None: value ``v`` emits
    ``n = round(v * max_rate_hz * presentation_ms / 1000)`` spikes (halves
    round up; capped at the number of grid times in the window), spread
    evenly over the window on the ``timestep_ms`` grid, the first at 0 ms,
    all distinct and ``< presentation_ms``. With a ``numpy.random.Generator``
    each grid time fires independently with probability
    ``v * max_rate_hz * timestep_ms / 1000`` (clipped to 1).
    """
    presentation_ms, timestep_ms = _check_timing(presentation_ms, timestep_ms)
    max_rate_hz = _real("max_rate_hz", max_rate_hz)
    if max_rate_hz < 0:
        raise UsageError(f"max_rate_hz must be >= 0, got {max_rate_hz}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise UsageError(f"rng must be a numpy.random.Generator or None, got "
                         f"{type(rng).__name__}")
    values = _check_intensity(intensity)
    n_images, height, width, channels = values.shape
    shape = (height, width, channels)
    slots = _n_slots(presentation_ms, timestep_ms)
    img, y, x, c = np.nonzero(values > 0)
    v = values[img, y, x, c]
    neuron = neuron_index(shape, y, x, c)

    if rng is None:
        counts = np.floor(v * max_rate_hz * presentation_ms / 1000.0 + 0.5)
        counts = np.clip(counts, 0, slots).astype(np.int64)
        owner = np.repeat(np.arange(v.size), counts)
        first = np.cumsum(counts) - counts
        rank = np.arange(owner.size, dtype=np.int64) - first[owner]
        steps = rank * slots // counts[owner]
        # the order of LayerSpikes.from_arrays, (image, time, neuron), by one integer key
        n_neurons = height * width * channels
        key = np.sort((img[owner] * slots + steps) * n_neurons + neuron[owner])
        cell, neuron_sorted = np.divmod(key, n_neurons)
        image_sorted, step_sorted = np.divmod(cell, slots)
        return LayerSpikes(shape, n_images, image_sorted, neuron_sorted,
                           step_sorted * timestep_ms)
    else:
        p = np.clip(v * max_rate_hz * timestep_ms / 1000.0, 0.0, 1.0)
        keep = p > 0
        owner_pool = np.flatnonzero(keep)
        p = p[keep]
        block = max(1, _BERNOULLI_BLOCK // slots)
        owners, step_parts = [], []
        for start in range(0, p.size, block):
            chunk = p[start:start + block]
            fired = rng.random((chunk.size, slots)) < chunk[:, None]
            row, col = np.nonzero(fired)
            owners.append(owner_pool[start + row])
            step_parts.append(col)
        owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        steps = np.concatenate(step_parts) if step_parts else np.zeros(0, np.int64)
    return LayerSpikes.from_arrays(shape, n_images, img[owner], neuron[owner],
                                   steps * timestep_ms)


def poisson_code(intensity, presentation_ms: float, max_rate_hz: float,
                 timestep_ms: float, seed: int) -> LayerSpikes:
    """:func:`rate_code` with random spikes: each grid time fires independently with
    probability ``v * max_rate_hz * timestep_ms / 1000``, every image drawn from its
    own generator, seeded with ``seed`` and the image's intensities. So an image's
    spikes depend on ``seed`` and the image only, never on the rest of the batch, its
    place in it or how the batch is split into blocks."""
    seed = _integer("seed", seed)
    if seed < 0:
        raise UsageError(f"seed must be >= 0, got {seed}")
    values = _check_intensity(intensity)
    parts = []
    for image in values:
        digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=8).digest()
        rng = np.random.default_rng([seed, int.from_bytes(digest, "little")])
        parts.append(rate_code(image[None], presentation_ms, max_rate_hz, timestep_ms, rng=rng))
    if not parts:
        return rate_code(values, presentation_ms, max_rate_hz, timestep_ms)
    return LayerSpikes.concatenate(parts)


# --------------------------------------------------------------------------
# the whole stage
# --------------------------------------------------------------------------

def _check_params(params: Mapping) -> dict:
    if not isinstance(params, Mapping):
        raise UsageError(f"encoding params must be a dict, got {type(params).__name__}")
    missing = [key for key in PARAM_KEYS if key not in params]
    if missing:
        raise UsageError(f"encoding params missing: {', '.join(missing)}")
    dog = params["dog"]
    if not isinstance(dog, (bool, np.bool_)):
        raise UsageError(f"dog must be true or false, got {dog!r}")
    code = params["code"]
    if code not in CODES:
        raise UsageError(f"unknown code {code!r}; choose one of: {', '.join(CODES)}")
    out = dict(params)
    out["dog"] = bool(dog)
    if out["dog"]:
        dog_kernel(params["dog_size"], params["dog_sigma_center"],
                   params["dog_sigma_surround"])
    out["presentation_ms"], out["timestep_ms"] = _check_timing(
        params["presentation_ms"], params["timestep_ms"])
    out["latency_threshold"] = _real("latency_threshold", params["latency_threshold"])
    out["max_rate_hz"] = _real("max_rate_hz", params["max_rate_hz"])
    if out["max_rate_hz"] < 0:
        raise UsageError(f"max_rate_hz must be >= 0, got {out['max_rate_hz']}")
    return out


def encoded_shape(image_shape: tuple[int, ...], params: Mapping) -> tuple[int, int, int]:
    """Shape ``(H, W, C)`` of the input layer of images ``(H, W)`` or ``(H, W, K)``:
    ``C = 2 K`` with DoG (ON and OFF per image channel), ``K`` without (K = 1 for
    ``(H, W)``)."""
    params = _check_params(params)
    if len(image_shape) not in (2, 3):
        raise UsageError(f"image_shape must be (H, W) or (H, W, K), got {tuple(image_shape)}")
    height, width = (_integer("image height", image_shape[0]),
                     _integer("image width", image_shape[1]))
    colours = _integer("image channels", image_shape[2]) if len(image_shape) == 3 else 1
    return (height, width, colours * (2 if params["dog"] else 1))


def encode(images, params: Mapping, rng: np.random.Generator | None = None
           ) -> LayerSpikes:
    """Encode a batch of images ``(N, H, W)`` or ``(N, H, W, K)`` (uint8 or float)
    as input spikes.

    ``params`` keys: ``dog`` (bool), ``dog_size``, ``dog_sigma_center``,
    ``dog_sigma_surround`` (pixels), ``code`` (``"latency"``, ``"rate"`` or
    ``"poisson"``), ``presentation_ms``, ``timestep_ms``, ``latency_threshold``,
    ``max_rate_hz``, and ``seed`` for ``"poisson"`` (:func:`poisson_code`). An ``rng``
    turns the rate code random (Bernoulli draws from ``rng``, batch-dependent), and
    replaces the per-image generators of the Poisson code.
    Returns spikes of shape ``(H, W, 2 K)`` with DoG (ON, OFF of image channel
    0, then of channel 1, ...), ``(H, W, K)`` without; K = 1 for ``(N, H, W)``.
    Each image is scaled on its own (:func:`to_unit_range`), so its spikes do not
    depend on the rest of the batch (with ``rng`` None).
    """
    params = _check_params(params)
    array = _numeric_array("images", images)
    if array.ndim not in (3, 4):
        raise UsageError(f"images must have shape (N, H, W) or (N, H, W, K), got "
                         f"{array.shape}")
    intensity = to_unit_range(array)
    if params["dog"]:
        intensity = np.concatenate(
            [dog_filter(intensity[..., k], params["dog_size"], params["dog_sigma_center"],
                        params["dog_sigma_surround"]) for k in range(intensity.shape[-1])],
            axis=-1)
    if params["code"] == "latency":
        return latency_code(intensity, params["presentation_ms"], params["timestep_ms"],
                            params["latency_threshold"])
    if params["code"] == "poisson" and rng is None:
        if "seed" not in params:
            raise UsageError("code 'poisson' needs a 'seed' in the encoding params")
        return poisson_code(intensity, params["presentation_ms"], params["max_rate_hz"],
                            params["timestep_ms"], params["seed"])
    return rate_code(intensity, params["presentation_ms"], params["max_rate_hz"],
                     params["timestep_ms"], rng=rng)


def input_spikes(samples, params: Mapping, rng: np.random.Generator | None = None
                 ) -> LayerSpikes:
    """Input spikes of one dataset split: images are encoded (:func:`encode`),
    event recordings binned (:meth:`spinnconv.events.EventRecordings.to_spikes`)."""
    from .events import EventRecordings

    if isinstance(samples, EventRecordings):
        return samples.to_spikes(params)
    return encode(samples, params, rng=rng)
