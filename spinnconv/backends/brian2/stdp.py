"""PyNN's STDP semantics on ``pyNN.brian2``, optionally with SpiNNaker's 16-bit weights.

``pyNN.brian2``'s ``STDPMechanism`` differs from NEST and from a SpiNNaker board
(and from PyNN's default ``dendritic_delay_fraction=1``) in the timing of every
pair, and it cannot store weights as the board does. :class:`DendriticSTDPMechanism`
fixes the first always (float runs on brian2 learn what NEST learns: tested
pair by pair) and emulates the second with ``weight_step_na`` (``--emulate-spinnaker``).

**Dendritic delays.** ``pyNN.brian2`` treats every delay ``d`` as axonal: a
pre spike at ``t_pre`` is paired at ``t_pre + d`` with post spikes at
``t_post``, i.e. ``Δt = t_post - t_pre - d``. sPyNNaker (no axonal delays,
``backprop_delay=True``: ``plasticity_update_synapse`` in
``synapse_dynamics_stdp_mad_impl.c``) and NEST treat it as dendritic: the post
spike is seen at ``t_post + d``, ``Δt = t_post + d - t_pre``. The pre pathway
keeps its delay ``d`` (transmission arrives at ``t_pre + d`` as everywhere);
delaying Brian2's *post* pathway by ``2 d`` makes every pairing ``(t_post + 2d)
- (t_pre + d) = t_post + d - t_pre``. At ``Δt = 0`` the board has two quirks,
kept here: the post spike is potentiated by the earlier pre spikes but not by
this one (it ends this pre spike's window, and the next window starts after
it), and this pre spike's whole depression is skipped
(``time_since_last_post > 0`` fails for the last post spike, whose trace also
carries the earlier ones). So the post pathway runs before the pre pathway in a
time step and the pre pathway skips depression after a post spike of the same
step. (NEST treats ``Δt = 0`` its own way; only there do the two differ.)

**Deferred updates.** sPyNNaker changes a plastic weight only when a pre spike's
row is processed: first the potentiation of every post spike since the previous
pre spike (each clipped at ``w_max``), then this spike's depression (clipped at
``w_min``). The post pathway therefore only adds to ``pending``, which the next
pre spike applies; weights read back after a run lack the potentiation still
pending, as on the board (and in NEST).

**16-bit plastic weights, truncated after each presynaptic spike** (only with
``weight_step_na`` > 0, i.e. ``--emulate-spinnaker``). On the board the weight
is stored as an unsigned 16-bit integer; the row update works in S16.15 and
stores ``bits >> shift``, the weight rounded *down* to the 16-bit step
(``weight_get_final`` in ``weight_additive_one_term_impl.h``). Here the pre
pathway ends with ``weight = floor(weight / step) * step`` and transmits that.

**Fixed-point traces and products** (also only with ``weight_step_na`` > 0). A
floored weight drops a whole step for *any* net depression, however small, so
what counts as zero matters: on the board the traces are S4.11 (a decayed
trace below 2⁻¹¹ is 0) and ``mul_accum_fixed`` yields S16.15 nA (a product below
2⁻¹⁵ nA is 0). With ``A- * w_max`` ≈ 0.012 nA a post spike stops depressing
after ~6 time constants (~120 ms); a float trace never does, and a kernel
neuron that has not fired for a while would lose a step at every pre spike
(MNIST kernels came out 58 % zeros that way instead of ~6 %). Both traces and
both products are floored to those resolutions here. The trace itself is
decayed exactly, not through the board's 16-bit look-up table.

Not emulated: the LIF neuron's own fixed-point arithmetic, and the board's
memory of only the last 15 post spikes per neuron.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyNN.brian2 import STDPMechanism

__all__ = ["DendriticSTDPMechanism"]

# floor() must not drop a value that sits on its grid but lost ~1e-16 of it in
# float arithmetic (nA -> A, P / A_plus)
_GRID_TOLERANCE = 1e-9
#: STDP_FIXED_POINT_ONE: traces are S4.11 fixed point
_TRACE_ONE = 2048
#: the resolution of S16.15 ``accum`` weights and weight changes, in nA
_ACCUM_LSB_NA = 2.0 ** -15


def _board_change(amplitude: str, trace: str) -> str:
    """Brian2 code for ``amplitude * trace`` as the board computes it: the trace
    floored to S4.11, the product to S16.15 nA."""
    tol, lsb = _GRID_TOLERANCE, f"({_ACCUM_LSB_NA!r}*nA)"
    fixed_trace = f"floor({trace} * {_TRACE_ONE} + {tol}) / {_TRACE_ONE}"
    return f"floor({amplitude} * {fixed_trace} / {lsb} + {tol}) * {lsb}"


class DendriticSTDPMechanism(STDPMechanism):
    """``pyNN.brian2.STDPMechanism`` (additive) pairing and updating as sPyNNaker does.

    Takes the arguments of :class:`pyNN.brian2.STDPMechanism` (with
    ``dendritic_delay_fraction=0``, which Brian2 requires; dendritic pairing is
    emulated by :meth:`configure_pathways`) plus ``weight_step_na``, the plastic
    weight's 16-bit step in nA (0 = no truncation). Call
    :meth:`configure_pathways` on each projection after it is built.
    """

    eqs = """weight : %(weight_units)s
             pending : %(weight_units)s
             t_post_seen : second
             tau_plus : second
             tau_minus : second
             w_max : %(weight_units)s
             w_min : %(weight_units)s
             A_plus : 1
             A_minus : 1
             dP/dt = -P/tau_plus : 1 (event-driven)
             dM/dt = -M/tau_minus : 1 (event-driven)"""
    pre = """
          weight = clip(weight + pending, w_min, w_max)
          pending = 0 * %(weight_units)s
          weight = clip(weight - (%(depression)s) * int(abs(t - t_post_seen) > 0.5 * dt), w_min, w_max)
          %(truncate)s
          P += A_plus
          %(syn_var)s += weight
          """
    post = """
           pending += %(potentiation)s
           M -= A_minus
           t_post_seen = t
           """

    def __init__(self, *args: Any, weight_step_na: float = 0.0, **kwargs: Any):
        if not (np.isfinite(weight_step_na) and weight_step_na >= 0):
            raise ValueError(f"weight_step_na must be >= 0, got {weight_step_na!r}")
        super().__init__(*args, **kwargs)
        self.weight_step_na = float(weight_step_na)
        parts = {"truncate": "", "potentiation": "w_max * P", "depression": "w_max * (-M)"}
        if self.weight_step_na > 0:
            step = f"({self.weight_step_na!r}*nA)"
            parts = {
                "truncate": f"weight = floor(weight / {step} + {_GRID_TOLERANCE!r}) * {step}",
                "potentiation": _board_change("w_max * A_plus", "P / A_plus"),
                "depression": _board_change("w_max * A_minus", "(-M) / A_minus"),
            }
        # instance attributes: pyNN.brian2 then fills in the %(...)s keys it knows
        for key, code in parts.items():
            self.pre = self.pre.replace(f"%({key})s", code)
            self.post = self.post.replace(f"%({key})s", code)

    @staticmethod
    def configure_pathways(projection: Any) -> None:
        """Delay the post pathway of ``projection``'s synapses by twice their delay
        and run it before the pre pathway within a time step."""
        for by_post in projection._brian2_synapses.values():
            for synapses in by_post.values():
                synapses.post.order = synapses.pre.order - 1
                if len(synapses):
                    synapses.post.delay[:] = 2 * synapses.pre.delay[:]
