"""Weights as a SpiNNaker board stores them: 16-bit fixed point per population and receptor.

sPyNNaker picks a ring-buffer left shift ``s`` per post-synaptic population and
receptor and stores each weight as ``rint(|w| * 2**(15 - s) * g)``; the
functions here reproduce that arithmetic (bit-exact against sPyNNaker in
``tests/test_spinnaker.py``) without importing sPyNNaker, so a software
backend can run "as the board would" (``--emulate-spinnaker``). The derivation
and the sPyNNaker sources it follows: ``docs/design/spinnaker-backend.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from ... import network
from ...errors import UsageError
from ...interface import STDPRule
from ...model import ConvLayer, SequentialModel

__all__ = [
    "SPYNNAKER_SPIKES_PER_SECOND",
    "board_training_options",
    "check_kernels",
    "max_summed_weight_equal_delays",
    "plastic_weight_step_on_board",
    "plastic_weights_on_board",
    "quantise_weights_like_spinnaker",
    "ring_buffer_left_shift",
    "spinnaker_quantisation",
    "spinnaker_stdp_amplitudes",
    "spinnaker_weight_quantiser",
    "spinnaker_weight_scale",
]

#: ``[Simulation] spikes_per_second`` of sPyNNaker's default cfg: the rate assumed for
#: sources that do not declare a maximum (``_Stats.__pre_spike_stats``)
SPYNNAKER_SPIKES_PER_SECOND = 30.0


def ring_buffer_left_shift(max_summed_weight: float) -> int:
    """sPyNNaker's ring-buffer left shift for a maximum expected summed weight.

    Same arithmetic as ``PopulationVertex.get_ring_buffer_shifts`` (the weight
    is in nA for current-based cells, already times the global weight scale).
    """
    m = float(max_summed_weight)
    if not math.isfinite(m):
        raise ValueError(f"max_summed_weight must be finite, got {max_summed_weight!r}")
    shift = 0 if m <= 0 else math.ceil(max(0.0, math.log2(m)))
    if 2 ** shift <= m:  # range is [0, 2**shift): an exact power needs one more bit
        shift += 1
    return shift


def spinnaker_weight_scale(ring_buffer_shift: int, global_weight_scale: float = 1.0) -> float:
    """Float weight -> 16-bit integer factor: ``2**(16 - (shift + 1)) * global scale``."""
    return float(2.0 ** (16 - (int(ring_buffer_shift) + 1))) * float(global_weight_scale)


def max_summed_weight_equal_delays(projections: Iterable[tuple[float, int, float]]) -> float:
    """``m`` for one post population and receptor when all its delays are equal.

    ``projections`` holds ``(w_max, max_fan_in, spikes_per_tick)`` per incoming
    projection of that receptor (``spikes_per_tick`` = the source's maximum
    spikes per time step: 1 for a ``SpikeSourceArray`` with at most one spike
    per neuron and step, ``max(1, 30 Hz * dt)`` for neurons). Mirrors
    ``_Stats.get_max_weight`` when the delay variance is 0.
    """
    total, biggest = 0.0, 0.0
    for w_max, fan_in, spikes_per_tick in projections:
        total += float(spikes_per_tick) * abs(float(w_max)) * int(fan_in)
        biggest = max(biggest, abs(float(w_max)))
    return max(total, biggest)


def quantise_weights_like_spinnaker(weights, *, ring_buffer_shift: int | None = None,
                                    max_summed_weight: float | None = None,
                                    global_weight_scale: float = 1.0,
                                    plastic: bool = False) -> np.ndarray:
    """The weights sPyNNaker actually uses (and ``Projection.get`` returns).

    Give the post population's ring-buffer shift for the projection's receptor
    (``SpiNNakerBackend.weight_quantisation`` reads it from sPyNNaker), or the
    maximum expected summed weight to derive it from. Returns
    ``rint(|w| * scale) / scale`` with the sign of ``w`` kept (sPyNNaker itself
    stores ``|w|``); NaN stays NaN. Static synapses keep the low 16 bits of the
    integer like sPyNNaker's ``& 0xFFFF``; for ``plastic=True`` the integer is
    clipped to uint16 (sPyNNaker's ``astype(uint16)`` is undefined beyond it).
    """
    if (ring_buffer_shift is None) == (max_summed_weight is None):
        raise ValueError("give exactly one of ring_buffer_shift or max_summed_weight")
    shift = (int(ring_buffer_shift) if ring_buffer_shift is not None
             else ring_buffer_left_shift(max_summed_weight))
    scale = spinnaker_weight_scale(shift, global_weight_scale)
    w = np.asarray(weights, dtype=np.float64)
    finite = np.isfinite(w)
    scaled = np.rint(np.abs(np.where(finite, w, 0.0)) * scale)
    if plastic:
        encoded = np.clip(scaled, 0, 0xFFFF)
    else:
        encoded = (scaled.astype(np.uint64) & 0xFFFF).astype(np.float64)
    out = np.copysign(encoded / scale, w)
    return np.where(finite, out, w)


def spinnaker_stdp_amplitudes(stdp: STDPRule | None) -> STDPRule | None:
    """The rule to give sPyNNaker so that it learns what PyNN's rule means.

    PyNN (and pyNN.nest, pyNN.brian2) take the additive ``A_plus``/``A_minus`` as
    fractions of ``w_max``: a pair moves the weight by ``A * w_max``. sPyNNaker
    7.4.1's ``WeightDependenceAdditive.write_parameters`` writes
    ``A_plus * global_weight_scale`` (no ``w_max``, although its comment says
    "Pre-multiply A+ and A- by Wmax" and the triplet rule does), so on the board
    the step would be ``A`` nA. Pre-multiplying here restores PyNN's meaning. The
    multiplicative rule writes ``A`` unscaled, as PyNN means it: unchanged.
    """
    if stdp is None or stdp.weight_dependence != "additive":
        return stdp
    return replace(stdp, a_plus=stdp.a_plus * stdp.w_max, a_minus=stdp.a_minus * stdp.w_max)


def plastic_weight_step_on_board(max_input_na: float) -> float:
    """The 16-bit step (nA) of plastic weights into a population given
    ``max_expected_summed_weight`` = ``max_input_na`` (excitatory); sPyNNaker
    truncates each plastic weight to a multiple of it after every presynaptic
    spike. The grid of :func:`plastic_weights_on_board`.
    """
    return 1.0 / spinnaker_weight_scale(ring_buffer_left_shift(max_input_na))


def board_training_options() -> dict:
    """The keyword arguments of :func:`~spinnconv.training.train_conv_layer` that
    make a software backend store and update the patch network's plastic weights
    as sPyNNaker does (``--emulate-spinnaker``)."""
    return {"board_weights": plastic_weights_on_board,
            "board_weight_step": plastic_weight_step_on_board}


def plastic_weights_on_board(weights_na: np.ndarray, max_input_na: float) -> np.ndarray:
    """Plastic (STDP) weights as sPyNNaker stores them in a population whose
    excitatory ``max_expected_summed_weight`` is ``max_input_na``.

    That population parameter fixes the ring-buffer shift (training passes it:
    ``SpiNNakerBackend.population``); weights are clipped to uint16 as
    ``SynapseDynamicsSTDP.get_plastic_synaptic_data`` stores them.
    """
    return quantise_weights_like_spinnaker(np.asarray(weights_na, dtype=np.float64),
                                           max_summed_weight=max_input_na, plastic=True)



# -- the kernels of a model as the board stores them ----------------------------------
def check_kernels(model: SequentialModel, kernels_na: dict[int, np.ndarray], upto: int) -> None:
    """``UsageError`` unless every conv layer has finite, non-negative kernels of its shape."""
    for position in range(upto):
        layer = model.layers[position]
        if not isinstance(layer, ConvLayer):
            continue
        label = network.layer_label(model, position)
        if position not in kernels_na:
            raise UsageError(f"no kernels for {label} (kernels_na[{position}])")
        kernels = np.asarray(kernels_na[position])
        channels = model.input_shape_of(position)[2]
        expect = (layer.n_kernels, *layer.kernel_shape, channels)
        if kernels.shape != expect:
            raise UsageError(f"kernels of {label} have shape {kernels.shape}, expected {expect}")
        if not np.all(np.isfinite(kernels)) or np.any(kernels < 0):
            raise UsageError(f"kernels of {label} must be finite and >= 0 (nA)")


def _spikes_per_tick(params: dict) -> float:
    """``_Stats.__pre_spike_stats`` for sources without a declared maximum rate."""
    return max(1.0, SPYNNAKER_SPIKES_PER_SECOND * float(params["timestep_ms"]) / 1000.0)


def spinnaker_quantisation(model: SequentialModel, kernels_na: dict[int, np.ndarray],
                           params: dict, conv_mode: str = "fromlist") -> list[dict]:
    """Per spiking layer, the ring-buffer shifts sPyNNaker picks and the weights it stores.

    Mirrors ``PopulationVertex.get_ring_buffer_shifts`` for the networks
    :func:`deploy` builds (all delays equal, so the shift covers ``max(sum over
    incoming projections of spikes_per_tick * w_max * max_fan_in, biggest
    weight)``; sources and neurons both count 1 spike per tick at 30 Hz and
    1 ms):

    * ``"fromlist"``: one population per layer; the excitatory receptor of a
      conv layer gets the feed-forward list (fan-in = most non-zero synapses
      into one neuron, ``w_max`` = largest kernel entry of *all* maps), the
      inhibitory one the lateral list; a pool layer its pooling list.
    * ``"native"``: one population per map; each (input map, output map)
      projection counts ``kh*kw`` synapses at its own largest kernel entry
      (``LocalOnlyConvolution``'s signed-weight statistics), lateral 1×1
      projections one synapse each, pooling one synapse of ``pool_weight_na``.

    Returns one dict per spiking layer: ``position, layer, kind,
    excitatory_shift`` (an int, or one per map for native conv), ``inhibitory_shift``,
    ``kernels`` (quantised, conv only), ``lateral_inhibition_na`` and
    ``pool_weight_na`` (quantised, where used).
    """
    if conv_mode not in ("fromlist", "native"):
        raise UsageError(f"conv_mode must be 'fromlist' or 'native', got {conv_mode!r}")
    spt = _spikes_per_tick(params)
    upto = len(model.spiking_layers)
    check_kernels(model, kernels_na, upto)
    out = []
    for position in range(upto):
        layer = model.layers[position]
        entry: dict[str, Any] = {"position": position,
                                 "layer": network.layer_label(model, position),
                                 "kind": layer.kind}
        lists = network.layer_connections(model, position, kernels_na.get(position), params)
        by_receptor: dict[str, list] = {"excitatory": [], "inhibitory": []}
        for _, receptor, conns in lists:
            by_receptor[receptor].append(conns)
        if conv_mode == "fromlist":
            entry.update(_fromlist_layer(layer, kernels_na.get(position), params, by_receptor,
                                         spt))
        elif isinstance(layer, ConvLayer):
            n_pre = int(np.prod(model.input_shape_of(position)[:2]))
            entry.update(_native_conv_layer(layer, kernels_na[position], params, n_pre,
                                            bool(by_receptor["inhibitory"]), spt))
        else:
            weight = float(params["pool_weight_na"])
            shift = ring_buffer_left_shift(max_summed_weight_equal_delays([(weight, 1, spt)]))
            entry.update(excitatory_shift=shift, inhibitory_shift=0,
                         pool_weight_na=float(quantise_weights_like_spinnaker(
                             weight, ring_buffer_shift=shift)))
        out.append(entry)
    return out


def _fromlist_layer(layer: Any, kernels_na: np.ndarray | None, params: dict,
                    by_receptor: dict[str, list], spt: float) -> dict:
    """Shifts and quantised weights of one population fed by FromList projections."""
    shifts = {}
    for receptor, conns_list in by_receptor.items():
        stats = [(float(np.max(c.weight)), int(np.bincount(c.post).max()), spt)
                 for c in conns_list if len(c)]
        shifts[receptor] = ring_buffer_left_shift(max_summed_weight_equal_delays(stats))
    entry: dict[str, Any] = {"excitatory_shift": shifts["excitatory"],
                             "inhibitory_shift": shifts["inhibitory"]}
    if isinstance(layer, ConvLayer):
        entry["kernels"] = quantise_weights_like_spinnaker(
            np.asarray(kernels_na, dtype=np.float64), ring_buffer_shift=shifts["excitatory"])
    else:
        entry["pool_weight_na"] = float(quantise_weights_like_spinnaker(
            params["pool_weight_na"], ring_buffer_shift=shifts["excitatory"]))
    if by_receptor["inhibitory"]:
        entry["lateral_inhibition_na"] = float(quantise_weights_like_spinnaker(
            params["lateral_inhibition_na"], ring_buffer_shift=shifts["inhibitory"]))
    return entry


def _native_conv_layer(layer: ConvLayer, kernels_na: np.ndarray, params: dict, n_pre: int,
                       lateral: bool, spt: float) -> dict:
    """Shifts (one per map) and quantised weights of a conv layer built natively."""
    kernels = np.asarray(kernels_na, dtype=np.float64)
    kh, kw = layer.kernel_shape
    fan_in = min(kh * kw, n_pre)  # ConvolutionConnector, per projection
    exc_shifts = []
    quantised = np.empty_like(kernels)
    for n in range(layer.n_kernels):
        stats = [(float(kernels[n, :, :, c].max()), fan_in, spt)
                 for c in range(kernels.shape[3]) if np.any(kernels[n, :, :, c] > 0)]
        shift = ring_buffer_left_shift(max_summed_weight_equal_delays(stats))
        exc_shifts.append(shift)
        quantised[n] = quantise_weights_like_spinnaker(kernels[n], ring_buffer_shift=shift)
    entry: dict[str, Any] = {"excitatory_shift": exc_shifts, "kernels": quantised,
                             "inhibitory_shift": 0}
    if lateral:
        inhibition = float(params["lateral_inhibition_na"])
        stats = [(inhibition, 1, spt)] * (layer.n_kernels - 1)
        shift = ring_buffer_left_shift(max_summed_weight_equal_delays(stats))
        entry["inhibitory_shift"] = shift
        entry["lateral_inhibition_na"] = float(quantise_weights_like_spinnaker(
            inhibition, ring_buffer_shift=shift))
    return entry


def spinnaker_weight_quantiser(model: SequentialModel, kernels_na: dict[int, np.ndarray],
                               params: dict, conv_mode: str = "fromlist") -> dict[int, np.ndarray]:
    """The kernels (nA) as the board would use them, in the format of ``kernels_na``.

    Each layer's kernels are rounded to the 16-bit step sPyNNaker chooses for its
    population and receptor (see :func:`spinnaker_quantisation`, which also gives
    the quantised ``lateral_inhibition_na``/``pool_weight_na``). Run a software
    backend with these to simulate "as the board would" (up to the ring-buffer
    saturation and fixed-point neuron arithmetic the board also has).
    """
    quantised = {position: np.asarray(k, dtype=np.float64).copy()
                 for position, k in kernels_na.items()}
    for entry in spinnaker_quantisation(model, kernels_na, params, conv_mode):
        if "kernels" in entry:
            quantised[entry["position"]] = entry["kernels"]
    return quantised
