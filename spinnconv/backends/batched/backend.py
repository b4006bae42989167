"""The batched backend: the :class:`~spinnconv.backends.base.Backend` interface on the
numba engine of :mod:`.engine`, with the semantics of ``pyNN.nest``.

What PyNN and NEST do and this backend reproduces: ``IF_curr_exp`` is NEST's
``iaf_psc_exp`` (pA, pF, membrane relative to ``v_rest``; the propagators of its
``calibrate``); a ``SpikeSourceArray`` is a ``spike_generator`` feeding a
``parrot_neuron`` one ``min_delay`` later, so a source spike at ``T`` leaves the
parrot with time stamp ``T``; weights are nA × 1000 (inhibitory ones negative);
``STDPMechanism`` is ``stdp_synapse`` (``lambda = A_plus``, ``alpha = A_minus /
A_plus``, ``mu = 0`` additive, ``1`` multiplicative, ``Wmax = w_max`` × 1000); the
first ``run`` simulates one ``min_delay`` (here: one step) more than asked, and
spikes are handed out only up to the time asked for.

Limits: one STDP rule per network, ``w_min = 0`` (as in NEST), every delay a whole
number of steps, networks are complete before the first ``run``, and only
``v_thresh`` can be set per neuron.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import UsageError
from ..base import Backend, Connections, STDPRule

#: ``pyNN.nest`` units: nA -> pA, nF -> pF
_PA_PER_NA = 1000.0
_NA_PER_PA = 1e-3
#: events drained from the engine this many steps at a time
_SEGMENT_STEPS = 50


@dataclass(eq=False)
class Group:
    """A population (or spike source) of the batched backend."""

    label: str
    size: int
    offset: int  # first index among the sources or among the neurons
    is_source: bool
    cell_params: dict = field(default_factory=dict)


@dataclass(eq=False)
class Projection:
    """A projection: its connection list and where its synapses sit in the table."""

    pre: Group
    post: Group
    connections: Connections
    receptor: str
    stdp: STDPRule | None
    positions: np.ndarray | None = None  # index of each listed synapse in the table


def propagator_32(tau_syn: float, tau: float, c: float, h: float) -> float:
    """NEST's ``propagator_32`` (``libnestutil/propagator_stability.cpp``)."""
    p32_linear = 1.0 / (2.0 * c * tau * tau) * h * h * (tau_syn - tau) * math.exp(-h / tau)
    p32_singular = h / c * math.exp(-h / tau)
    p32 = (-tau / (c * (1.0 - tau / tau_syn)) * math.exp(-h / tau_syn)
           * math.expm1(h * (1.0 / tau_syn - 1.0 / tau)))
    dev_p32 = abs(p32 - p32_singular)
    if tau == tau_syn or (abs(tau - tau_syn) < 0.1 and dev_p32 > 2.0 * abs(p32_linear)):
        return p32_singular
    return p32


def neuron_constants(cell_params: dict, h_ms: float) -> dict:
    """``iaf_psc_exp``'s constants for PyNN ``IF_curr_exp`` parameters at step ``h_ms``."""
    c_pf = cell_params["cm"] * _PA_PER_NA
    tau = float(cell_params["tau_m"])
    tau_ex, tau_in = float(cell_params["tau_syn_E"]), float(cell_params["tau_syn_I"])
    p22 = math.exp(-h_ms / tau)
    return {"p22": p22, "p11ex": math.exp(-h_ms / tau_ex), "p11in": math.exp(-h_ms / tau_in),
            "p21ex": propagator_32(tau_ex, tau, c_pf, h_ms),
            "p21in": propagator_32(tau_in, tau, c_pf, h_ms),
            "p20": -tau / c_pf * math.expm1(-h_ms / tau),
            "i_e": cell_params.get("i_offset", 0.0) * _PA_PER_NA,
            "refractory_steps": round(cell_params["tau_refrac"] / h_ms),
            "v_reset": cell_params["v_reset"] - cell_params["v_rest"],
            "theta": cell_params["v_thresh"] - cell_params["v_rest"],
            "v_rest": float(cell_params["v_rest"])}


def run_steps(duration_ms: float, h_ms: float) -> int:
    """Steps NEST simulates for ``Simulate(duration_ms)``."""
    steps = duration_ms / h_ms
    if abs(steps - round(steps)) > 1e-9:
        raise UsageError(f"run time {duration_ms} ms is not a multiple of the time step "
                         f"{h_ms} ms")
    return round(steps)


class Network:
    """The arrays the engine works on, built from a backend's groups and projections."""

    def __init__(self, h_ms: float, sources: list[Group], source_times: list[list],
                 populations: list[Group], projections: list[Projection]):
        self.h_ms = h_ms
        self.n_sources = sum(g.size for g in sources)
        self.n_neurons = sum(g.size for g in populations)
        constants = [neuron_constants(g.cell_params, h_ms) for g in populations]
        self.pop_start = np.array([0] + [g.offset + g.size for g in populations], np.int64)
        for name in ("p22", "p21ex", "p21in", "p11ex", "p11in", "p20", "i_e", "v_reset",
                     "v_rest"):
            setattr(self, f"pop_{name}", np.array([c[name] for c in constants], np.float64))
        self.pop_refractory_steps = np.array([c["refractory_steps"] for c in constants],
                                             np.int32)
        self.theta = np.concatenate([np.full(g.size, c["theta"]) for g, c
                                     in zip(populations, constants)]) if populations \
            else np.zeros(0)
        self._source_events(source_times)
        self._synapse_table(projections)

    def _source_events(self, source_times: list[list]) -> None:
        """Parrot emission steps ``round(T / h) - 1`` sorted by (step, source)."""
        neuron, step = [], []
        for index, times in enumerate(t for group in source_times for t in group):
            times = np.asarray(times, dtype=np.float64)
            neuron.append(np.full(times.size, index, np.int64))
            step.append(np.rint(times / self.h_ms).astype(np.int64) - 1)
        neuron = np.concatenate(neuron) if neuron else np.zeros(0, np.int64)
        step = np.concatenate(step) if step else np.zeros(0, np.int64)
        if step.size and step.min() < 0:
            raise UsageError("a spike source fires before one time step: start spike times "
                             f"at >= {2 * self.h_ms} ms")
        order = np.lexsort((neuron, step))
        self.src_step, self.src_neuron = step[order], neuron[order]

    def _synapse_table(self, projections: list[Projection]) -> None:
        pre, target, weight, delay, plastic = [], [], [], [], []
        rules = {p.stdp for p in projections if p.stdp is not None}
        if len(rules) > 1:
            raise UsageError("the batched backend runs one STDP rule per network")
        self.rule = rules.pop() if rules else None
        n_plastic = 0
        for projection in projections:
            c = projection.connections
            base = (projection.pre.offset if projection.pre.is_source
                    else self.n_sources + projection.pre.offset)
            inhibitory = projection.receptor == "inhibitory"
            pre.append(base + np.asarray(c.pre, np.int64))
            target.append(projection.post.offset + np.asarray(c.post, np.int64)
                          + (self.n_neurons if inhibitory else 0))
            sign = -1.0 if inhibitory else 1.0
            weight.append((sign * np.asarray(c.weight, np.float64)) * _PA_PER_NA)
            steps = np.asarray(c.delay_ms, np.float64) / self.h_ms
            if len(c) and (np.abs(steps - np.rint(steps)).max() > 1e-9 or steps.min() < 1):
                raise UsageError("the batched backend needs delays of whole time steps "
                                 f"(>= {self.h_ms} ms)")
            delay.append(np.rint(steps).astype(np.int32))
            if projection.stdp is not None:
                if inhibitory:
                    raise UsageError("the batched backend has excitatory STDP synapses only")
                plastic.append(n_plastic + np.arange(len(c), dtype=np.int32))
                n_plastic += len(c)
            else:
                plastic.append(np.full(len(c), -1, np.int32))
        pre = np.concatenate(pre) if pre else np.zeros(0, np.int64)
        order = np.argsort(pre, kind="stable")
        self.syn_ptr = np.searchsorted(pre[order], np.arange(self.n_sources + self.n_neurons + 1))
        cat = (lambda parts, dtype: np.concatenate(parts)[order] if parts
               else np.zeros(0, dtype))
        self.syn_target = cat(target, np.int64).astype(np.int32)
        self.syn_weight = np.ascontiguousarray(cat(weight, np.float64))
        self.syn_delay = cat(delay, np.int32)
        self.syn_plastic = cat(plastic, np.int32)
        position = np.empty(order.size, np.int64)
        position[order] = np.arange(order.size)
        start = 0
        for projection in projections:
            projection.positions = position[start:start + len(projection.connections)]
            start += len(projection.connections)
        self.n_slots = int(self.syn_delay.max()) + 1 if self.syn_delay.size else 2
        self.plastic_post = np.zeros(self.n_neurons, np.bool_)
        is_plastic = self.syn_plastic >= 0
        self.plastic_post[self.syn_target[is_plastic]] = True
        self.pre_plastic = np.zeros(self.n_sources + self.n_neurons, np.bool_)
        self.pre_plastic[pre[order][is_plastic]] = True
        self.n_plastic = n_plastic

    def stdp_constants(self, tau_minus_ms: float | None) -> np.ndarray:
        """``[Wmax, lambda, alpha, tau_plus, 1/tau_minus, mu_plus, mu_minus]`` (NEST units)."""
        rule = self.rule
        if rule is None:
            return np.zeros(7)
        if rule.w_min != 0:
            raise UsageError("STDP with w_min != 0 is not supported (as in NEST)")
        mu = {"additive": 0.0, "multiplicative": 1.0}[rule.weight_dependence]
        alpha = rule.a_minus / rule.a_plus if rule.a_plus != 0 else rule.a_minus
        return np.array([rule.w_max * _PA_PER_NA, rule.a_plus, alpha, rule.tau_plus_ms,
                         1.0 / (tau_minus_ms or rule.tau_minus_ms), mu, mu])


class BatchedBackend(Backend):
    """The :class:`Backend` interface on the numba engine (NEST semantics)."""

    name = "batched"
    extra = ""

    def __init__(self):
        from . import engine  # numba: imported when the backend is made

        self._engine = engine
        self.timestep_ms = 1.0
        self._reset()

    def _reset(self) -> None:
        self._sources: list[Group] = []
        self._source_times: list[list] = []
        self._populations: list[Group] = []
        self._projections: list[Projection] = []
        self._recorded: dict[Group, set] = {}
        self._thresholds: dict[Group, np.ndarray] = {}
        self._v_indices: dict[Group, np.ndarray] = {}
        self._network: Network | None = None

    # -- network construction -------------------------------------------------
    def setup(self, timestep_ms: float, seed: int) -> None:
        self.timestep_ms = float(timestep_ms)
        self._reset()

    def _check_open(self) -> None:
        if self._network is not None:
            raise UsageError("the batched backend cannot change a network after run()")

    def spike_source(self, spike_times: list[np.ndarray], label: str) -> Group:
        self._check_open()
        group = Group(label, len(spike_times), sum(g.size for g in self._sources), True)
        self._sources.append(group)
        self._source_times.append([np.asarray(t, dtype=np.float64) for t in spike_times])
        return group

    def population(self, n: int, cell_params: dict, label: str,
                   max_input_na: tuple[float, float] | None = None) -> Group:
        self._check_open()
        group = Group(label, int(n), sum(g.size for g in self._populations), False,
                      dict(cell_params))
        self._populations.append(group)
        return group

    def connect(self, pre, post, connections: Connections, receptor: str = "excitatory",
                stdp: STDPRule | None = None, label: str = "") -> Projection:
        self._check_open()
        if post.is_source:
            raise UsageError("a spike source cannot receive connections")
        projection = Projection(pre, post, connections, receptor, stdp)
        self._projections.append(projection)
        return projection

    def record(self, population, variables: tuple[str, ...] = ("spikes",), indices=None) -> None:
        if population.is_source:
            raise UsageError("the batched backend records populations, not spike sources")
        chosen = self._recorded.setdefault(population, set())
        for variable in variables:
            if variable not in ("spikes", "v"):
                raise UsageError(f"the batched backend records spikes and v, not {variable!r}")
            keep = np.arange(population.size) if indices is None else np.asarray(indices)
            if variable == "v":
                self._v_indices[population] = keep.astype(np.int64)
            else:
                chosen.add("spikes")

    def set_parameters(self, population, **values) -> None:
        self._check_open()
        unknown = set(values) - {"v_thresh"}
        if unknown:
            raise UsageError(f"the batched backend sets v_thresh only, not {sorted(unknown)}")
        self._thresholds[population] = np.broadcast_to(
            np.asarray(values["v_thresh"], dtype=np.float64), (population.size,)).copy()

    # -- running --------------------------------------------------------------
    def _compile(self) -> None:
        net = Network(self.timestep_ms, self._sources, self._source_times, self._populations,
                      self._projections)
        for group, thresholds in self._thresholds.items():
            net.theta[group.offset:group.offset + group.size] = (
                thresholds - group.cell_params["v_rest"])
        n = net.n_neurons
        self._stdp = net.stdp_constants(None)
        self._state = {"v": np.zeros(n), "i_ex": np.zeros(n), "i_in": np.zeros(n),
                       "refractory": np.zeros(n, np.int32),
                       "ring": np.zeros((net.n_slots, 2 * n)),
                       "cursor": np.zeros(1, np.int64)}
        self._pl_kplus = np.zeros(net.n_plastic)
        self._pl_tlast = np.zeros(net.n_plastic)
        self._hist_t = np.zeros((n, 0))
        self._hist_k = np.zeros((n, 0))
        self._hist_count = np.zeros(n, np.int64)
        self._k_minus = np.zeros(n)
        self._last_spike = np.full(n, -1.0)
        self._record_column = np.full(n, -1, np.int64)
        for group in self._recorded:
            if "spikes" in self._recorded[group]:
                self._record_column[group.offset:group.offset + group.size] = np.arange(
                    group.offset, group.offset + group.size)
        v_groups = self._v_indices
        self._v_neurons = np.concatenate(
            [g.offset + idx for g, idx in v_groups.items()]).astype(np.int64) \
            if v_groups else np.zeros(0, np.int64)
        self._v_chunks: list[np.ndarray] = []
        self._events: list[np.ndarray] = []
        self._step = 0
        self._visible_steps = 0
        self._read_until: dict[Group, int] = {}
        self._network = net

    def _grow_history(self, n_steps: int) -> None:
        net = self._network
        if not net.plastic_post.any():
            return
        refractory = int(net.pop_refractory_steps.min()) if net.pop_refractory_steps.size else 0
        need = int(self._hist_count.max(initial=0)) + n_steps // (refractory + 1) + 2
        if need > self._hist_t.shape[1]:
            extra = need - self._hist_t.shape[1] + self._hist_t.shape[1] // 2
            pad = ((0, 0), (0, extra))
            self._hist_t = np.pad(self._hist_t, pad)
            self._hist_k = np.pad(self._hist_k, pad)

    def run(self, duration_ms: float) -> None:
        if self._network is None:
            self._compile()
            extra = 1  # pyNN.nest: the first run goes one min_delay further
        else:
            extra = 0
        steps = run_steps(float(duration_ms), self.timestep_ms)
        self._visible_steps += steps
        self._advance(self._visible_steps + extra)

    def _advance(self, until_step: int) -> None:
        net, state = self._network, self._state
        n = net.n_neurons
        self._grow_history(until_step - self._step)
        n_recorded = int((self._record_column >= 0).sum())
        refractory = int(net.pop_refractory_steps.min()) if net.pop_refractory_steps.size else 0
        capacity = n_recorded * (_SEGMENT_STEPS // (refractory + 1) + 1)
        events = np.zeros((capacity, 2), np.int64)
        spiking = np.zeros(n, np.int64)
        while self._step < until_step:
            stop = min(self._step + _SEGMENT_STEPS, until_step)
            n_events = np.zeros(1, np.int64)
            v_record = np.zeros((stop - self._step, self._v_neurons.size))
            self._engine.advance(
                self._step, stop, self.timestep_ms,
                net.pop_start, net.pop_p22, net.pop_p21ex, net.pop_p21in, net.pop_p11ex,
                net.pop_p11in, net.pop_p20, net.pop_i_e, net.pop_refractory_steps,
                net.pop_v_reset, net.theta,
                state["v"], state["i_ex"], state["i_in"], state["refractory"], state["ring"],
                net.src_step, net.src_neuron, state["cursor"], net.n_sources,
                net.syn_ptr, net.syn_target, net.syn_weight, net.syn_delay, net.syn_plastic,
                net.pre_plastic, self._stdp, self._pl_kplus, self._pl_tlast,
                net.plastic_post, self._hist_t, self._hist_k, self._hist_count,
                self._k_minus, self._last_spike,
                self._record_column, events, n_events, self._v_neurons, v_record, spiking)
            if n_events[0] > capacity:  # cannot happen: capacity is the refractory bound
                raise RuntimeError("batched engine: spike buffer overflow")
            self._events.append(events[:n_events[0]].copy())
            if self._v_neurons.size:
                self._v_chunks.append(np.column_stack(
                    [(np.arange(self._step, stop) + 1) * self.timestep_ms, v_record]))
            self._step = stop

    # -- reading back ---------------------------------------------------------
    def spikes(self, population, clear: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Spikes since the last call, up to the time run so far: ``(index, time_ms)``."""
        if self._network is None:
            return np.zeros(0, np.int64), np.zeros(0)
        events = np.concatenate(self._events) if self._events else np.zeros((0, 2), np.int64)
        self._events = [events]
        stamp = events[:, 1] + 1  # in steps
        since = self._read_until.get(population, 0)
        inside = ((events[:, 0] >= population.offset)
                  & (events[:, 0] < population.offset + population.size)
                  & (stamp > since) & (stamp <= self._visible_steps))
        self._read_until[population] = self._visible_steps
        index = events[inside, 0] - population.offset
        times = stamp[inside] * self.timestep_ms
        order = np.lexsort((times, index))
        return index[order], times[order]

    def voltages(self, population):
        """Recorded membrane potential as a neo ``AnalogSignal`` (mV), or None."""
        if not self._v_chunks:
            return None
        import neo
        import quantities as pq

        data = np.concatenate(self._v_chunks)
        group_v = self._v_indices[population]
        columns = np.searchsorted(self._v_neurons, population.offset + group_v)
        p = self._populations.index(population)
        values = data[:, 1 + columns] + self._network.pop_v_rest[p]
        return neo.AnalogSignal(values, units="mV", t_start=data[0, 0] * pq.ms,
                                sampling_period=self.timestep_ms * pq.ms, name="v")

    def weights(self, projection) -> np.ndarray:
        """Weights as a dense ``(n_pre, n_post)`` array in nA, NaN where no synapse."""
        c = projection.connections
        dense = np.full((projection.pre.size, projection.post.size), np.nan)
        if self._network is None:
            dense[c.pre, c.post] = np.abs(np.asarray(c.weight) * _PA_PER_NA) * _NA_PER_PA
        else:
            dense[c.pre, c.post] = np.abs(
                self._network.syn_weight[projection.positions]) * _NA_PER_PA
        return dense

    def end(self) -> None:
        self._reset()


def block_steps(n_images: int, params: dict) -> int:
    """Steps NEST simulates for ``n_images`` run as :func:`~spinnconv.network.run_images`
    runs them: ``chunk_images`` per ``run`` call, the onset in the first, one extra
    step (pyNN.nest's first run)."""
    from ...network import schedule_from

    schedule = schedule_from(params)
    chunk = int(params["chunk_images"])
    steps, done = 1, 0
    while done < n_images:
        step = min(chunk, n_images - done)
        duration = step * schedule.period_ms + (schedule.onset_ms if done == 0 else 0.0)
        steps += run_steps(duration, params["timestep_ms"])
        done += step
    return steps


def engine_threads() -> int:
    """Threads the engine runs blocks on (numba's, i.e. ``NUMBA_NUM_THREADS``)."""
    import numba

    from . import engine  # noqa: F401  (its threading layer, before numba starts threads)

    return int(numba.get_num_threads())


def layer_arrays(model, kernels: dict[int, np.ndarray], params: dict, upto: int) -> dict:
    """The arrays :func:`.engine.count_layers` takes for layers ``0..upto-1``: the
    connections of :func:`spinnconv.network.layer_connections` (conv synapses of
    weight > 0, lateral WTA, pooling) by geometry, in NEST's units."""
    from ...model import ConvLayer, PoolLayer
    from . import engine

    h_ms = float(params["timestep_ms"])
    constants = neuron_constants(params["neuron"], h_ms)
    delay = run_steps(float(params["synapse_delay_ms"]), h_ms)
    if delay < 1:
        raise UsageError("the batched backend needs synapse_delay_ms >= timestep_ms")
    geometry, weights, pool_w, lateral_w = [], [], [], []
    start, w_off = 0, 0
    for position in range(upto):
        layer = model.layers[position]
        in_h, in_w, in_c = model.input_shape_of(position)
        out_h, out_w, out_c = model.output_shape_of(position)
        if isinstance(layer, ConvLayer):
            kernel = np.asarray(kernels[position], np.float64) * _PA_PER_NA
            # synapses of weight <= 0 do not exist (conv_connections): weight 0 here
            kernel = np.where(kernel > 0.0, kernel, 0.0).transpose(1, 2, 3, 0).copy()
            kh, kw = layer.kernel_shape
            geometry.append([start, engine.CONV, in_h, in_w, in_c, out_h, out_w, out_c, kh, kw,
                             layer.stride, layer.padding, w_off])
            weights.append(kernel.ravel())
            w_off += kernel.size
            pool_w.append(0.0)
            lateral = (layer.lateral_inhibition and layer.n_kernels > 1
                       and params["lateral_inhibition_na"] > 0)
            lateral_w.append((-1.0 * float(params["lateral_inhibition_na"])) * _PA_PER_NA
                             if lateral else 0.0)
        elif isinstance(layer, PoolLayer):
            kh, kw = layer.pool_shape
            geometry.append([start, engine.POOL, in_h, in_w, in_c, out_h, out_w, out_c, kh, kw,
                             layer.stride, 0, 0])
            pool_w.append(float(params["pool_weight_na"]) * _PA_PER_NA)
            lateral_w.append(0.0)
        else:
            raise TypeError(f"layer {position} is not a spiking layer")
        start += out_h * out_w * out_c
    return {"theta": np.full(start, constants["theta"]),
            "pop_constants": np.array([[constants["p22"], constants["p21ex"],
                                        constants["p21in"], constants["p11ex"],
                                        constants["p11in"],
                                        (constants["i_e"] + 0.0) * constants["p20"],
                                        constants["v_reset"]]] * upto, np.float64),
            "pop_refractory_steps": np.full(upto, constants["refractory_steps"], np.int32),
            "geometry": np.array(geometry, np.int64),
            "kernels": np.concatenate(weights) if weights else np.zeros(1),
            "pool_w": np.array(pool_w), "lateral_w": np.array(lateral_w),
            "delays": np.full((upto, 2), delay, np.int64)}


def simulate_counts(model, kernels: dict[int, np.ndarray], params: dict, input_spikes,
                    upto: int | None = None, block_images: int | None = None) -> np.ndarray:
    """Spike counts ``(n_images, n_neurons)`` (uint16) of the output of
    ``model.layers[upto-1]``, as ``pyNN.nest`` counts them when each block of
    ``block_images`` consecutive images is simulated by a freshly built network
    (:func:`spinnconv.pipeline.count_spikes`). Blocks run in parallel."""
    from ...network import schedule_from
    from . import engine

    upto = len(model.spiking_layers) if upto is None else upto
    if upto == 0:
        return input_spikes.counts(dtype=np.uint16)
    h_ms = float(params["timestep_ms"])
    schedule = schedule_from(params)
    arrays = layer_arrays(model, kernels, params, upto)
    n_images = input_spikes.n_images
    block = int(block_images or params["block_images"])
    starts = np.arange(0, n_images, block)
    bounds = np.append(starts, n_images).astype(np.int64)
    n_steps = np.array([block_steps(int(b - a), params) for a, b in
                        itertools.pairwise(bounds)], np.int64)
    block_of = input_spikes.image // block
    relative = input_spikes.image - block_of * block
    absolute = schedule.start_ms(relative) + input_spikes.time_ms
    step = np.rint(absolute / h_ms).astype(np.int64) - 1
    if step.size and step.min() < 0:
        raise UsageError("a spike source fires before one time step")
    # events by (block, step, source); LayerSpikes are mostly in that order already
    key = ((block_of * (int(step.max(initial=0)) + 1) + step) * input_spikes.n_neurons
           + input_spikes.neuron)
    if key.size and not (key[1:] >= key[:-1]).all():
        order = np.argsort(key, kind="stable")
        block_of, step = block_of[order], step[order]
        source = input_spikes.neuron[order]
    else:
        source = input_spikes.neuron
    src_ptr = np.searchsorted(block_of, np.arange(starts.size + 1)).astype(np.int64)
    t_ms = (np.arange(int(n_steps.max(initial=0))) + 1) * h_ms
    image_of_step = np.floor((t_ms - schedule.start_ms(0)) / schedule.period_ms).astype(np.int64)
    out_shape = model.output_shape_of(upto - 1)
    counts = np.zeros((n_images, int(np.prod(out_shape))), np.uint16)
    engine.count_layers(n_steps, bounds, arrays["theta"], arrays["pop_constants"],
                        arrays["pop_refractory_steps"], arrays["geometry"], arrays["kernels"],
                        arrays["pool_w"], arrays["lateral_w"], arrays["delays"],
                        src_ptr, np.ascontiguousarray(step, np.int64),
                        np.ascontiguousarray(source, np.int64),
                        image_of_step, counts)
    return counts
