"""PyNN's STDP semantics on ``pyNN.brian2``, optionally with SpiNNaker's 16-bit weights.

:class:`DendriticSTDPMechanism` pairs spikes with dendritic delays and defers
weight updates to the next presynaptic spike, as sPyNNaker and NEST do (the
post pathway is delayed by twice the synaptic delay); with ``weight_step_na``
(``--emulate-spinnaker``) it also floors weights to the board's 16-bit step
after every presynaptic spike and traces and products to the board's fixed
point. Not emulated: the LIF neuron's fixed-point arithmetic and the board's
memory of only the last 15 post spikes per neuron. The derivation, including
the board's quirks at ``Δt = 0``: ``docs/design/brian2-stdp.md``.
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
    # Brian2 abstract code: one statement per line
    pre = """
          weight = clip(weight + pending, w_min, w_max)
          pending = 0 * %(weight_units)s
          weight = clip(weight - (%(depression)s) * int(abs(t-t_post_seen) > 0.5*dt), w_min, w_max)
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
