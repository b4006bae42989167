"""Layer-by-layer STDP: learn one conv layer's shared kernels on a patch network.

The patch network has one spike source per element of a ``kh × kw × C`` window
and one ``IF_curr_exp`` neuron per kernel, all-to-all STDP synapses (PyNN's
``STDPMechanism`` with ``SpikePairRule``) and winner-take-all inhibition among
the kernel neurons. Windows cut from the previous layer's spikes are presented
back to back, ``train_chunk_patches`` at a time, each chunk to a freshly built
patch network (as on a board, which cannot change the weights of a network it
runs). After each chunk the weights are read back and

* rescaled so every kernel has the same mean weight (synaptic scaling; keeps one
  kernel from taking over and tiny weights from going subnormal),
* each kernel neuron's threshold moves towards an equal share of the wins
  (homeostasis), so every kernel gets to learn.

The learned weights, divided by ``w_max``, are the layer's kernels in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from tqdm.auto import tqdm

from . import connectivity as cn
from . import interrupt
from .backends.base import Backend, Connections, STDPRule
from .model import ConvLayer
from .network import schedule_from
from .spikes import LayerSpikes

#: Weights below this fraction of w_max are set to 0 after each chunk.
FLUSH_BELOW = 1e-6
#: Membrane potential is recorded for this many kernel neurons; the trace of the
#: last TRACED_PATCHES patches is kept for the figures.
TRACED_NEURONS = 3
TRACED_PATCHES = 10


def sample_patches(spikes: LayerSpikes, layer: ConvLayer, n_patches: int,
                   rng: np.random.Generator, min_spikes: int = 1) -> LayerSpikes:
    """``n_patches`` windows of ``layer``'s receptive field cut from ``spikes``.

    Windows are drawn uniformly over (image, position) among those holding at
    least ``min_spikes`` spikes. Returns spikes of shape ``(kh, kw, C)``, one
    "image" per patch, times unchanged.
    """
    in_shape = spikes.shape
    kh, kw = layer.kernel_shape
    sources = cn.patch_sources(in_shape, layer.kernel_shape, layer.stride, layer.padding)
    n_positions, patch_size = sources.shape
    counts = spikes.counts(dtype=np.int32)
    padded_counts = np.concatenate([counts, np.zeros((counts.shape[0], 1), np.int32)], axis=1)
    chosen_image, chosen_position = [], []
    n_found, attempts = 0, 0
    while n_found < n_patches and attempts < 50:
        attempts += 1
        image = rng.integers(0, spikes.n_images, size=4 * n_patches)
        position = rng.integers(0, n_positions, size=4 * n_patches)
        total = padded_counts[image[:, None], sources[position]].sum(axis=1)
        good = total >= min_spikes
        chosen_image.append(image[good])
        chosen_position.append(position[good])
        n_found += int(good.sum())
    if n_found == 0:
        raise ValueError(f"no window of the input holds {min_spikes} spikes; lower "
                         "'patch_min_spikes' or check the encoding")
    image = np.concatenate(chosen_image)[:n_patches]
    position = np.concatenate(chosen_position)[:n_patches]
    # local index of every input neuron for each position (-1 = outside the window)
    lookup = np.full((n_positions, spikes.n_neurons + 1), -1, dtype=np.int64)
    rows = np.repeat(np.arange(n_positions), patch_size)
    lookup[rows, sources.ravel()] = np.tile(np.arange(patch_size), n_positions)
    lookup[:, -1] = -1  # the padding column
    bounds = spikes.image_bounds()
    starts, stops = bounds[image], bounds[image + 1]
    lengths = stops - starts
    patch = np.repeat(np.arange(image.size), lengths)
    take = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    local = lookup[position[patch], spikes.neuron[take]]
    keep = local >= 0
    return LayerSpikes.from_arrays((kh, kw, in_shape[2]), image.size, patch[keep], local[keep],
                                   spikes.time_ms[take][keep])


def kernel_similarity(kernels: np.ndarray) -> float | None:
    """Mean cosine similarity over all pairs of ``kernels`` ``(n, ...)``: near 1 when
    the kernels have collapsed onto one pattern (None for a single kernel)."""
    flat = np.asarray(kernels, dtype=np.float64).reshape(len(kernels), -1)
    if len(flat) < 2:
        return None
    unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    return float((unit @ unit.T)[np.triu_indices(len(flat), 1)].mean())


def convergence(weights_fraction: np.ndarray) -> float:
    """Kheradpisheh's C = mean(w (1 - w)) over weights in [0, 1]: 0 when binary."""
    return float(np.mean(weights_fraction * (1.0 - weights_fraction)))


def _stdp_rule(params: dict, w_max_na: float) -> STDPRule:
    stdp = params["stdp"]
    scale = float(params.get("stdp_rate_scale", 1.0))
    return STDPRule(tau_plus_ms=stdp["tau_plus_ms"], tau_minus_ms=stdp["tau_minus_ms"],
                    a_plus=stdp["a_plus"] * scale, a_minus=stdp["a_minus"] * scale, w_min=0.0,
                    w_max=w_max_na, weight_dependence=stdp["weight_dependence"])


def rescale_kernels(weights_fraction: np.ndarray, mean_weight: float) -> np.ndarray:
    """Scale each column to mean ``mean_weight`` (clipped to [0, 1]); flush tiny values."""
    column_mean = weights_fraction.mean(axis=0, keepdims=True)
    scaled = weights_fraction * (mean_weight / np.maximum(column_mean, 1e-12))
    scaled = np.clip(scaled, 0.0, 1.0)
    scaled[scaled < FLUSH_BELOW] = 0.0
    return scaled


def weight_for_drive(drive: np.ndarray, params: dict) -> float:
    """Synaptic weight (nA) per unit of ``drive`` that puts the network in its working range.

    ``drive`` holds, per neuron and image, ``sum(kernel * input spike counts)``
    over the neuron's window. A spike of ``w`` nA moves the membrane by about
    ``w * tau_syn_E / cm`` mV before the leak; spread over a presentation about
    half of it remains. The weight is chosen so that the
    ``calibration_percentile``-th percentile of the drive reaches
    ``calibration_threshold_crossings`` times the distance from rest to threshold.
    """
    reference = float(np.percentile(drive, params["calibration_percentile"]))
    neuron = params["neuron"]
    gap_mv = neuron["v_thresh"] - neuron["v_rest"]
    mv_per_na_spike = 0.5 * neuron["tau_syn_E"] / neuron["cm"]
    return params["calibration_threshold_crossings"] * gap_mv / (
        mv_per_na_spike * max(reference, 1e-9))


def calibrate_weight_na(input_counts: np.ndarray, in_shape, layer: ConvLayer,
                        kernels: np.ndarray, params: dict) -> float:
    """Weight (nA) of a kernel entry of 1 in the conv layer, from its input counts.

    ``input_counts`` ``(n_images, H*W*C)``: spike counts of the layer's input.
    See :func:`weight_for_drive`.
    """
    sources = cn.patch_sources(in_shape, layer.kernel_shape, layer.stride, layer.padding)
    padded = np.concatenate([input_counts, np.zeros((len(input_counts), 1), np.float32)], axis=1)
    weights = cn.patch_weights_from_kernels(kernels).astype(np.float32)
    drive = np.concatenate([padded[i:i + 64][:, sources] @ weights
                            for i in range(0, len(padded), 64)])
    return weight_for_drive(drive, params)


@dataclass
class TrainedLayer:
    """What training one conv layer produced."""

    kernels: np.ndarray                     # (n, kh, kw, C) in [0, 1]
    convergence: list[float] = field(default_factory=list)   # C per chunk
    wins: np.ndarray | None = None          # output spikes per kernel over training
    thresholds_mv: np.ndarray | None = None  # final v_thresh per kernel neuron
    n_patches: int = 0
    w_max_na: float = 0.0                   # STDP weight bound (calibrated)
    v_trace_t_ms: np.ndarray | None = None  # membrane traces of a few kernel neurons
    v_trace_mv: np.ndarray | None = None    # over the last patches (time, neuron)


#: ``initial_kernels = "patches"``: the share of uniform noise added to each sampled
#: window (so that no weight starts at exactly 0 and STDP can still raise it).
PATCH_START_NOISE = 0.1


def _initial_weights(patch_size: int, n_kernels: int, params: dict,
                     rng: np.random.Generator,
                     patches: LayerSpikes | None = None) -> np.ndarray:
    """Patch-network weights ``(patch_size, n_kernels)`` in [0, 1] to start from, rescaled.

    ``initial_kernels = "uniform"``: uniform random. ``"patches"``: kernel k starts as
    the spike counts of a training window (``patches``' images drawn without
    replacement), divided by their largest value, plus ``PATCH_START_NOISE`` ×
    uniform noise: kernels that differ from the start, each matching inputs that
    occur (deeper layers, whose inputs are sparse and correlated, need it).
    """
    noise = rng.uniform(0.0, 1.0, size=(patch_size, n_kernels))
    if params.get("initial_kernels", "uniform") == "uniform" or patches is None:
        return rescale_kernels(noise, params["kernel_l1"])
    chosen = rng.choice(patches.n_images, size=n_kernels,
                        replace=patches.n_images < n_kernels)
    counts = patches.select(np.sort(chosen)).counts().astype(np.float64).T
    counts = counts[:, rng.permutation(n_kernels)]
    start = counts / np.maximum(counts.max(axis=0, keepdims=True), 1.0)
    return rescale_kernels(start + PATCH_START_NOISE * noise, params["kernel_l1"])


def random_kernels(shape: tuple[int, int, int], n_kernels: int, params: dict,
                   rng: np.random.Generator,
                   patches: LayerSpikes | None = None) -> TrainedLayer:
    """The ablation: the patch network's initial kernels, never trained.

    Same draw and the same rescaling as :func:`train_conv_layer` starts from, so
    "STDP" and "random" differ only by learning (with ``initial_kernels =
    "patches"``, ``patches`` are the windows the kernels start from).
    """
    kh, kw, channels = shape
    initial = _initial_weights(kh * kw * channels, n_kernels, params, rng, patches)
    return TrainedLayer(kernels=cn.kernels_from_patch_weights(initial, (kh, kw), channels),
                        wins=np.zeros(n_kernels, dtype=np.int64),
                        thresholds_mv=np.full(n_kernels, params["neuron"]["v_thresh"]),
                        v_trace_t_ms=np.zeros(0), v_trace_mv=np.zeros((0, 0)))


def train_conv_layer(backend: Backend, patches: LayerSpikes, n_kernels: int, params: dict,
                     rng: np.random.Generator, quiet: bool = False,
                     description: str = "STDP", board_weights=None,
                     board_weight_step=None) -> TrainedLayer:
    """Learn ``n_kernels`` kernels with STDP on ``patches`` (shape ``(kh, kw, C)``).

    The patches are shown in chunks of ``train_chunk_patches``, each to a freshly
    built patch network that starts from the previous chunk's rescaled weights and
    adapted thresholds. A board must work this way (sPyNNaker has no
    ``Projection.set``); every backend does, so that simulator and board follow
    one procedure and differ only in their arithmetic.

    The kernel population is told its largest possible input per time step
    (``max_input_na``: ``w_max`` times the most patch spikes in one step, and the
    WTA inhibition of all other kernels), from which sPyNNaker sizes the 16-bit
    weights: no saturation, and half the step of sPyNNaker's own bound (every
    input at ``w_max`` at once) where ON/OFF channels exclude each other.

    ``board_weights(weights_na, max_input_na)``, if given, returns weights as the
    board would store them (``--emulate-spinnaker``): applied to the weights each
    chunk starts from and to the weights read back. ``board_weight_step(max_input_na)``,
    if given, is the board's 16-bit weight step in nA; it goes into the STDP rule
    (``spinnaker_weight_step_na``) so that backends that can emulate sPyNNaker's
    per-spike weight arithmetic (brian2) do. Both get the excitatory
    ``max_input_na``.
    """
    kh, kw, channels = patches.shape
    patch_size = kh * kw * channels
    schedule = schedule_from(params)
    neuron = {**params["neuron"], **params.get("patch_neuron", {})}
    thresholds = np.full(n_kernels, neuron["v_thresh"], dtype=np.float64)
    chunk = int(params["train_chunk_patches"])
    mean_weight = params["kernel_l1"]
    homeostasis_mv = params["homeostasis_mv"]

    initial = _initial_weights(patch_size, n_kernels, params, rng, patches)
    # w_max: the weight scale at which the initial kernels drive the kernel neurons
    w_max = weight_for_drive(patches.counts() @ initial, params)
    rule = _stdp_rule(params, w_max)
    max_input_na = (w_max * max(1, patches.max_spikes_within(params["timestep_ms"])),
                    float(params["patch_inhibition_na"]) * (n_kernels - 1))
    if board_weight_step is not None:
        rule = replace(rule, spinnaker_weight_step_na=board_weight_step(max_input_na[0]))
    on_board = board_weights or (lambda weights_na, _max_input_na: weights_na)

    def build(chunk_patches: LayerSpikes, weights: np.ndarray):
        """Patch network for ``chunk_patches``, starting from ``weights`` (fractions)."""
        backend.setup(params["timestep_ms"], params["seed"])
        source = backend.spike_source(chunk_patches.to_source_times(schedule), label="patch")
        kernels_pop = backend.population(n_kernels, neuron, "kernels", max_input_na)
        if not np.all(thresholds == neuron["v_thresh"]):
            backend.set_parameters(kernels_pop, v_thresh=thresholds)
        pre, post = np.meshgrid(np.arange(patch_size), np.arange(n_kernels), indexing="ij")
        start_na = on_board(weights * w_max, max_input_na[0])
        projection = backend.connect(
            source, kernels_pop,
            Connections.build(pre.ravel(), post.ravel(), start_na.ravel(),
                              params["synapse_delay_ms"]),
            stdp=rule, label="patch_stdp")
        if n_kernels > 1 and params["patch_inhibition_na"] > 0:
            ipre, ipost = cn.all_to_all_inhibition(n_kernels)
            backend.connect(kernels_pop, kernels_pop,
                            Connections.build(ipre, ipost, params["patch_inhibition_na"],
                                              params["synapse_delay_ms"]),
                            receptor="inhibitory", label="patch_wta")
        backend.record(kernels_pop)
        backend.record(kernels_pop, ("v",), indices=list(range(min(TRACED_NEURONS, n_kernels))))
        return kernels_pop, projection

    history: list[float] = []
    wins = np.zeros(n_kernels, dtype=np.int64)
    weights = initial
    done = 0
    trace = (np.zeros(0), np.zeros((0, 0)))
    try:
        with tqdm(total=patches.n_images, desc=description, unit="patch", disable=quiet,
                  leave=False) as bar:
            while done < patches.n_images:
                step = min(chunk, patches.n_images - done)
                kernels_pop, stdp_projection = build(
                    patches.select(np.arange(done, done + step)), weights)
                interrupt.check()
                backend.run(step * schedule.period_ms + schedule.onset_ms)
                index, _ = backend.spikes(kernels_pop, clear=False)  # keep the v trace
                chunk_wins = np.bincount(index, minlength=n_kernels)
                wins += chunk_wins
                read = on_board(backend.weights(stdp_projection), max_input_na[0])
                raw = np.nan_to_num(read / w_max)
                history.append(convergence(np.clip(raw, 0.0, 1.0)))
                weights = rescale_kernels(raw, mean_weight)
                done += step
                if done < patches.n_images:
                    if homeostasis_mv > 0 and chunk_wins.sum() > 0:
                        share = chunk_wins / chunk_wins.sum()
                        thresholds += homeostasis_mv * n_kernels * (share - 1.0 / n_kernels)
                        thresholds = np.maximum(thresholds, neuron["v_reset"] + 1.0)
                    backend.end()  # the next chunk builds a new network
                else:
                    trace = _last_patches_trace(backend.voltages(kernels_pop), schedule,
                                                step, TRACED_PATCHES)
                bar.update(step)
                bar.set_postfix(C=f"{history[-1]:.4f}", active=int((wins > 0).sum()))
    finally:
        backend.end()
    kernels = cn.kernels_from_patch_weights(weights, (kh, kw), channels)
    return TrainedLayer(kernels=kernels, convergence=history, wins=wins,
                        thresholds_mv=thresholds, n_patches=patches.n_images, w_max_na=w_max,
                        v_trace_t_ms=trace[0], v_trace_mv=trace[1])


def _last_patches_trace(signal, schedule, n_patches: int, n_last: int):
    """Times (ms) and membrane potentials (mV) over the last ``n_last`` patches."""
    if signal is None:
        return np.zeros(0), np.zeros((0, 0))
    times = np.asarray(signal.times.rescale("ms").magnitude)
    values = np.asarray(signal.rescale("mV").magnitude)
    start = schedule.start_ms(max(n_patches - n_last, 0))
    keep = times >= start
    return times[keep], values[keep]


def conv_layer_counts(spikes: LayerSpikes, layer: ConvLayer, kernels: np.ndarray,
                      weight_na: float, params: dict, block_images: int = 64) -> np.ndarray:
    """Spike counts ``(n_images, H*W*n)`` of ``layer`` driven by ``spikes``, from a
    discrete-time ``IF_curr_exp`` model in NumPy (no simulator).

    Exact exponential integration per ``timestep_ms`` as NEST's ``iaf_psc_exp``:
    input spikes arrive after ``synapse_delay_ms``, the WTA inhibition between maps
    (``lateral_inhibition_na``) one delay after a spike; each image starts at rest
    and runs for its presentation plus the delays and five synaptic time constants.
    ``kernels`` ``(n, kh, kw, C)`` in [0, 1], scaled by ``weight_na``.
    """
    from scipy import sparse

    neuron = params["neuron"]
    step_ms = float(params["timestep_ms"])
    delay = max(1, round(params["synapse_delay_ms"] / step_ms))
    longest_tau = max(neuron["tau_syn_E"], neuron["tau_syn_I"])
    n_steps = int(np.ceil((params["presentation_ms"] + 5 * longest_tau) / step_ms)) + 2 * delay
    tau_m, cm = neuron["tau_m"], neuron["cm"]
    decay_m = np.exp(-step_ms / tau_m)

    def current_to_v(tau_syn: float) -> tuple[float, float]:
        decay_syn = np.exp(-step_ms / tau_syn)
        if abs(tau_m - tau_syn) < 1e-9:
            return step_ms / cm * decay_m, decay_syn
        return tau_syn * tau_m / (cm * (tau_m - tau_syn)) * (decay_m - decay_syn), decay_syn

    p21_e, decay_e = current_to_v(neuron["tau_syn_E"])
    p21_i, decay_i = current_to_v(neuron["tau_syn_I"])
    v_offset = neuron["i_offset"] * tau_m / cm * (1.0 - decay_m)
    refractory_steps = round(neuron["tau_refrac"] / step_ms)
    inhibition_na = (float(params["lateral_inhibition_na"])
                     if layer.lateral_inhibition and layer.n_kernels > 1 else 0.0)
    v_rest, v_thresh, v_reset = neuron["v_rest"], neuron["v_thresh"], neuron["v_reset"]

    pre, post, weight = cn.conv_connections(spikes.shape, np.asarray(kernels) * weight_na,
                                            layer.stride, layer.padding)
    out_h, out_w, n_kernels = layer.output_shape(spikes.shape)
    n_out = out_h * out_w * n_kernels
    synapses = sparse.csr_matrix((weight.astype(np.float32), (pre, post)),
                                 shape=(spikes.n_neurons, n_out))
    counts = np.zeros((spikes.n_images, n_out), dtype=np.int32)
    bounds = spikes.image_bounds()
    block_images = max(1, min(block_images, int(2.5e7 // (n_steps * n_out))))  # ~100 MB
    for start in range(0, spikes.n_images, block_images):
        stop = min(start + block_images, spikes.n_images)
        first, last = bounds[start], bounds[stop]
        arrival = np.floor(spikes.time_ms[first:last] / step_ms).astype(np.int64) + delay
        inside = arrival < n_steps
        rows = (spikes.image[first:last][inside] - start) * n_steps + arrival[inside]
        arriving = sparse.csr_matrix(
            (np.ones(rows.size, np.float32), (rows, spikes.neuron[first:last][inside])),
            shape=((stop - start) * n_steps, spikes.n_neurons))
        drive = (arriving @ synapses).toarray().reshape(stop - start, n_steps, n_out)
        shape = (stop - start, n_out)
        v = np.full(shape, v_rest, dtype=np.float32)
        i_e = np.zeros(shape, dtype=np.float32)
        i_i = np.zeros(shape, dtype=np.float32)
        refractory = np.zeros(shape, dtype=np.int32)
        pending = np.zeros((delay + 1, *shape), dtype=np.float32)  # inhibition by arrival
        for t in range(n_steps):
            free = refractory == 0
            v = np.where(free, v_rest + decay_m * (v - v_rest) + p21_e * i_e - p21_i * i_i
                         + v_offset, v)
            refractory = np.maximum(refractory - 1, 0)
            i_e = decay_e * i_e + drive[:, t]
            i_i = decay_i * i_i + pending[t % (delay + 1)]
            pending[t % (delay + 1)] = 0.0
            fired = free & (v >= v_thresh)
            if not fired.any():
                continue
            v[fired] = v_reset
            refractory[fired] = refractory_steps
            counts[start:stop] += fired
            if inhibition_na > 0:
                by_map = fired.reshape(-1, n_kernels, out_h * out_w)
                others = by_map.sum(axis=1, keepdims=True) - by_map
                pending[(t + delay) % (delay + 1)] += inhibition_na * others.reshape(shape)
    return counts


def firing_fraction(counts: np.ndarray) -> float:
    """Fraction of (image, neuron) pairs with at least one spike."""
    return float(np.mean(counts > 0)) if counts.size else 0.0


def calibrate_weight_to_firing(spikes: LayerSpikes, layer: ConvLayer, kernels: np.ndarray,
                               params: dict, target: float, start_na: float,
                               tolerance: float = 0.1, max_steps: int = 14
                               ) -> tuple[float, float]:
    """Weight (nA) of a kernel entry of 1 at which ``layer`` fires ``target``.

    ``target`` is the fraction of the layer's neurons that spike at least once per
    image, measured with :func:`conv_layer_counts` on ``spikes`` (the layer's
    input for a few hundred images). Bisection in log weight from ``start_na``,
    until within ``tolerance × target``. Returns the weight and its fraction.
    """
    if not 0 < target < 1:
        raise ValueError(f"target firing fraction must be in (0, 1), got {target!r}")

    def fraction(weight_na: float) -> float:
        return firing_fraction(conv_layer_counts(spikes, layer, kernels, weight_na, params))

    best = (start_na, fraction(start_na))
    low, high = None, None
    weight = start_na
    for _ in range(max_steps):
        achieved = fraction(weight) if weight != best[0] else best[1]
        if abs(achieved - target) < abs(best[1] - target):
            best = (weight, achieved)
        if abs(achieved - target) <= tolerance * target:
            return weight, achieved
        if achieved < target:
            low = weight
        else:
            high = weight
        if low is None:
            weight = high / 2.0
        elif high is None:
            weight = low * 2.0
        else:
            weight = float(np.sqrt(low * high))
    return best
