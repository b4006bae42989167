"""Numba kernels of the batched engine: NEST's ``iaf_psc_exp`` and ``stdp_synapse`` on
the time grid, in NEST's arithmetic order.

One network is a set of ``IF_curr_exp`` populations (neurons ``0..N-1``), spike
sources (``0..N_src-1``) and one synapse table in CSR form over the presynaptic
index ``[sources, neurons]``. A synapse's ``target`` is ``post`` (excitatory) or
``N + post`` (inhibitory, negative weight in pA, as PyNN hands it to NEST); its
input goes into a ring buffer slot ``delay`` steps ahead.

Per time step ``s`` (NEST's order): every neuron integrates with its current
synaptic currents (or counts down its refractory steps), the currents decay, the
input of slot ``s`` is added, the threshold is checked (reset, refractory
counter); then the spikes of step ``s`` (sources emitting at ``s``, then neurons
in index order) are delivered: each synapse adds its weight to the slot of step
``s + delay``. A plastic synapse first updates its weight as ``stdp_synapse``
does for a presynaptic spike (dendritic delay: post spikes seen ``delay`` later,
facilitation from the post spikes since the previous pre spike, then depression).
A spike emitted at step ``s`` carries the time stamp ``(s + 1) * h``.
"""

from __future__ import annotations

import math
import os

import numba as nb
import numpy as np
from numba import prange

if "NUMBA_THREADING_LAYER" not in os.environ:
    # numba's OpenMP layer and NEST's OpenMP runtime in one process crash NEST's
    # ResetKernel (pyNN.nest.setup) after a parallel engine call; workqueue does not
    nb.config.THREADING_LAYER = "workqueue"

#: ``kernel().connection_manager.get_stdp_eps()`` of NEST
STDP_EPS_MS = 1.0e-6


@nb.njit(cache=True, inline="always")
def _k_value(hist_t, hist_k, count, t, tau_minus_inv):
    """``ArchivingNode::get_K_value(t)``: the post trace just before ``t``."""
    i = count - 1
    while i >= 0:
        if t - hist_t[i] > STDP_EPS_MS:
            return hist_k[i] * math.exp((hist_t[i] - t) * tau_minus_inv)
        i -= 1
    return 0.0


@nb.njit(cache=True)
def advance(step_start, step_stop, h_ms,
            pop_start, pop_p22, pop_p21ex, pop_p21in, pop_p11ex, pop_p11in, pop_p20,
            pop_i_e, pop_refractory_steps, pop_v_reset, theta,
            v, i_ex, i_in, refractory, ring,
            src_step, src_neuron, src_cursor, n_sources,
            syn_ptr, syn_target, syn_weight, syn_delay, syn_plastic, pre_plastic,
            stdp, pl_kplus, pl_tlast,
            plastic_post, hist_t, hist_k, hist_count, k_minus, last_spike_ms,
            record_column, events, n_events, v_record_neuron, v_record, spiking):
    """Advance the network from step ``step_start`` to ``step_stop`` (exclusive).

    ``stdp`` = ``[w_max_pa, lambda, alpha, tau_plus_ms, tau_minus_inv, mu_plus, mu_minus]``.
    Spikes of neurons with ``record_column[n] >= 0`` are appended to ``events`` as
    ``(n, s)`` while it has room; ``n_events[0]`` counts all of them. ``v_record[s - step_start, k]`` gets the membrane
    potential (relative to rest) of ``v_record_neuron[k]`` after step ``s``.
    """
    n_neurons = v.size
    n_slots = ring.shape[0]
    n_pops = pop_start.size - 1
    event_capacity = events.shape[0]
    w_max = stdp[0]
    lam = stdp[1]
    alpha_lambda = stdp[2] * stdp[1]
    tau_plus = stdp[3]
    tau_minus_inv = stdp[4]
    mu_plus = stdp[5]
    mu_minus = stdp[6]
    n_src_events = src_step.size
    width = ring.shape[1]
    ring_flat = ring.reshape(-1)
    for s in range(step_start, step_stop):
        slot = s % n_slots
        n_spiking = 0
        t_stamp = (s + 1) * h_ms
        for p in range(n_pops):
            p22 = pop_p22[p]
            p21ex = pop_p21ex[p]
            p21in = pop_p21in[p]
            p11ex = pop_p11ex[p]
            p11in = pop_p11in[p]
            drive = (pop_i_e[p] + 0.0) * pop_p20[p]
            first = pop_start[p]
            last = pop_start[p + 1]
            ring_ex = ring[slot, first:last]
            ring_in = ring[slot, n_neurons + first:n_neurons + last]
            v_p = v[first:last]
            i_ex_p = i_ex[first:last]
            i_in_p = i_in[first:last]
            refractory_p = refractory[first:last]
            # the dense part, branch-free so that it vectorises
            for j in range(last - first):
                r = refractory_p[j]
                vn = v_p[j]
                integrated = vn * p22 + i_ex_p[j] * p21ex + i_in_p[j] * p21in + drive
                v_p[j] = integrated if r == 0 else vn
                refractory_p[j] = r - 1 if r > 0 else 0
                i_ex_p[j] = i_ex_p[j] * p11ex + ring_ex[j]
                i_in_p[j] = i_in_p[j] * p11in + ring_in[j]
                ring_ex[j] = 0.0
                ring_in[j] = 0.0
            for n in range(first, last):
                if v[n] >= theta[n]:
                    refractory[n] = pop_refractory_steps[p]
                    v[n] = pop_v_reset[p]
                    spiking[n_spiking] = n
                    n_spiking += 1
                    if plastic_post[n]:
                        k_minus[n] = k_minus[n] * math.exp(
                            (last_spike_ms[n] - t_stamp) * tau_minus_inv) + 1.0
                        last_spike_ms[n] = t_stamp
                        c = hist_count[n]
                        hist_t[n, c] = t_stamp
                        hist_k[n, c] = k_minus[n]
                        hist_count[n] = c + 1
                    if record_column[n] >= 0:
                        e = n_events[0]
                        if e < event_capacity:
                            events[e, 0] = n
                            events[e, 1] = s
                        n_events[0] = e + 1
        for k in range(v_record_neuron.size):
            v_record[s - step_start, k] = v[v_record_neuron[k]]
        # deliver: sources emitting at s, then the neurons that spiked
        cursor = src_cursor[0]
        total = 0
        while cursor < n_src_events and src_step[cursor] < s:
            cursor += 1  # (only before the first step of a run)
        first_source = cursor
        while cursor < n_src_events and src_step[cursor] == s:
            cursor += 1
        src_cursor[0] = cursor
        total = (cursor - first_source) + n_spiking
        for e in range(total):
            if e < cursor - first_source:
                pre = src_neuron[first_source + e]
            else:
                pre = n_sources + spiking[e - (cursor - first_source)]
            if not pre_plastic[pre]:
                for k in range(syn_ptr[pre], syn_ptr[pre + 1]):
                    d = slot + syn_delay[k]
                    if d >= n_slots:
                        d -= n_slots
                    ring_flat[d * width + syn_target[k]] += syn_weight[k]
                continue
            for k in range(syn_ptr[pre], syn_ptr[pre + 1]):
                w = syn_weight[k]
                q = syn_plastic[k]
                if q >= 0:
                    post = syn_target[k]
                    d_ms = syn_delay[k] * h_ms
                    t_last = pl_tlast[q]
                    kplus = pl_kplus[q]
                    # facilitation by the post spikes in (t_last - d, t_stamp - d]
                    c = hist_count[post]
                    t2_lim = t_stamp - d_ms + STDP_EPS_MS
                    t1_lim = t_last - d_ms + STDP_EPS_MS
                    i = c - 1
                    while i >= 0 and hist_t[post, i] >= t2_lim:
                        i -= 1
                    hi = i + 1
                    while i >= 0 and hist_t[post, i] >= t1_lim:
                        i -= 1
                    for j in range(i + 1, hi):
                        minus_dt = t_last - (hist_t[post, j] + d_ms)
                        norm_w = (w / w_max) + (lam * (1.0 - (w / w_max)) ** mu_plus
                                                 * (kplus * math.exp(minus_dt / tau_plus)))
                        w = norm_w * w_max if norm_w < 1.0 else w_max
                    kminus = _k_value(hist_t[post], hist_k[post], c, t_stamp - d_ms,
                                      tau_minus_inv)
                    norm_w = (w / w_max) - (alpha_lambda * (w / w_max) ** mu_minus * kminus)
                    w = norm_w * w_max if norm_w > 0.0 else 0.0
                    syn_weight[k] = w
                    pl_kplus[q] = kplus * math.exp((t_last - t_stamp) / tau_plus) + 1.0
                    pl_tlast[q] = t_stamp
                d = slot + syn_delay[k]
                if d >= n_slots:
                    d -= n_slots
                ring_flat[d * width + syn_target[k]] += w


@nb.njit(cache=True, inline="always")
def _integrate(v, i_ex, i_in, ring_ex, ring_in, inhibition, has_input, p22, p21ex, p21in,
               p11ex, p11in, drive, theta):
    """One step of ``iaf_psc_exp`` for a layer before the threshold, as if no neuron
    were refractory (the caller puts those back): the membrane with the present
    currents, the currents' decay and this step's input from the ring slot (which
    then forgets it). Without lateral inhibition the inhibitory current is 0 and
    left out; without input in the slot (all zero) it is not read (``x + 0.0 == x``).
    Returns how many neurons reach ``theta`` (refractory ones included)."""
    hit = 0
    if inhibition and has_input:
        for n in range(v.size):
            vn = v[n] * p22 + i_ex[n] * p21ex + i_in[n] * p21in + drive
            v[n] = vn
            hit += 1 if vn >= theta[n] else 0
            i_ex[n] = i_ex[n] * p11ex + ring_ex[n]
            i_in[n] = i_in[n] * p11in + ring_in[n]
            ring_ex[n] = 0.0
            ring_in[n] = 0.0
    elif inhibition:
        for n in range(v.size):
            vn = v[n] * p22 + i_ex[n] * p21ex + i_in[n] * p21in + drive
            v[n] = vn
            hit += 1 if vn >= theta[n] else 0
            i_ex[n] = i_ex[n] * p11ex
            i_in[n] = i_in[n] * p11in
    elif has_input:
        for n in range(v.size):
            vn = v[n] * p22 + i_ex[n] * p21ex + drive
            v[n] = vn
            hit += 1 if vn >= theta[n] else 0
            i_ex[n] = i_ex[n] * p11ex + ring_ex[n]
            ring_ex[n] = 0.0
    else:
        for n in range(v.size):
            vn = v[n] * p22 + i_ex[n] * p21ex + drive
            v[n] = vn
            hit += 1 if vn >= theta[n] else 0
            i_ex[n] = i_ex[n] * p11ex
    return hit


#: layer kinds of :func:`count_layers`
CONV, POOL = 1, 3


@nb.njit(cache=True, inline="always")
def _scatter_feedforward(kind, y, x, c, out_h, out_w, n_out, kh, kw, stride, pad,
                         n_in_channels, kernels, w_off, pool_w, row):
    """Input of the presynaptic neuron at ``(y, x, c)`` into ``row`` (the next layer's
    excitatory slot, position-major: ``(oy * out_w + ox) * n_out + n``): a conv
    layer's shared kernels or a pool window, from the layer's geometry."""
    for dy in range(kh):
        ty = y + pad - dy
        if ty < 0:
            break
        if ty % stride != 0:
            continue
        oy = ty // stride
        if oy >= out_h:
            continue
        for dx in range(kw):
            tx = x + pad - dx
            if tx < 0:
                break
            if tx % stride != 0:
                continue
            ox = tx // stride
            if ox >= out_w:
                continue
            target = (oy * out_w + ox) * n_out
            if kind == CONV:
                # kernels laid out (dy, dx, c, n); a zero weight adds +0.0, which
                # leaves a non-negative sum as it is (NEST has no such synapse)
                base = w_off + ((dy * kw + dx) * n_in_channels + c) * n_out
                for n in range(n_out):
                    row[target + n] += kernels[base + n]
            else:
                row[target + c] += pool_w


@nb.njit(cache=True)
def feedforward_targets(geometry):
    """Where each presynaptic neuron's feed-forward input goes, per layer, from the
    geometry (what :func:`_scatter_feedforward` computes per spike): for layer ``l``
    the inputs ``ptr_start[l] + i`` (``i`` channel-major for layer 0, the sources;
    position-major for the others) hold ``target[ptr[..]:ptr[.. + 1]]`` (offsets of
    the first neuron of a position, plus ``c`` for a pool) and ``kernel_base`` (the
    offset of the ``(dy, dx, c)`` kernel row in ``kernels``; 0 for a pool)."""
    n_layers = geometry.shape[0]
    ptr_start = np.zeros(n_layers + 1, np.int64)
    for lay in range(n_layers):
        g = geometry[lay]
        ptr_start[lay + 1] = ptr_start[lay] + g[2] * g[3] * g[4] + 1
    ptr = np.zeros(ptr_start[n_layers], np.int64)
    n_entries = 0
    for phase in range(2):  # count, then fill
        if phase == 1:
            # unsigned: numba then indexes without its negative-index wrap-around,
            # and the kernel rows' loops vectorise
            target = np.empty(n_entries, np.uint32)
            kernel_base = np.empty(n_entries, np.uint32)
        k = 0
        for lay in range(n_layers):
            g = geometry[lay]
            kind, in_h, in_w, in_c = g[1], g[2], g[3], g[4]
            out_h, out_w, n_out, kh, kw, stride, pad, w_off = (g[5], g[6], g[7], g[8], g[9],
                                                               g[10], g[11], g[12])
            n_in = in_h * in_w * in_c
            for i in range(n_in):
                if lay == 0:  # channel-major
                    c = i // (in_h * in_w)
                    y = (i - c * in_h * in_w) // in_w
                    x = i - c * in_h * in_w - y * in_w
                else:  # position-major
                    position = i // in_c
                    c = i - position * in_c
                    y = position // in_w
                    x = position - y * in_w
                if phase == 1:
                    ptr[ptr_start[lay] + i] = k
                for dy in range(kh):
                    ty = y + pad - dy
                    if ty < 0:
                        break
                    if ty % stride != 0:
                        continue
                    oy = ty // stride
                    if oy >= out_h:
                        continue
                    for dx in range(kw):
                        tx = x + pad - dx
                        if tx < 0:
                            break
                        if tx % stride != 0:
                            continue
                        ox = tx // stride
                        if ox >= out_w:
                            continue
                        if phase == 1:
                            if kind == CONV:
                                target[k] = (oy * out_w + ox) * n_out
                                kernel_base[k] = w_off + ((dy * kw + dx) * in_c + c) * n_out
                            else:
                                target[k] = (oy * out_w + ox) * n_out + c
                                kernel_base[k] = 0
                        k += 1
            if phase == 1:
                ptr[ptr_start[lay] + n_in] = k
        n_entries = k
    return ptr_start, ptr, target, kernel_base


@nb.njit(cache=True, inline="always")
def _deliver(ptr, i, target, kernel_base, conv, n_out, kernels, pool_w, row):
    """The feed-forward input of presynaptic neuron ``i`` (of :func:`feedforward_targets`)
    into ``row``; a zero kernel weight adds +0.0, which leaves a non-negative sum as
    it is (NEST has no such synapse)."""
    if conv:
        for k in range(ptr[i], ptr[i + 1]):
            t = target[k]
            w = kernel_base[k]
            for n in range(n_out):
                row[t + n] += kernels[w + n]
    else:
        for k in range(ptr[i], ptr[i + 1]):
            row[target[k]] += pool_w


@nb.njit(cache=True)
def _count_block(b, n_steps_per_block, block_images, theta, pop_constants, pop_refractory_steps,
                 geometry, kernels, pool_w, lateral_w, delays,
                 src_ptr, src_step, src_neuron, image_of_step, counts,
                 ff_ptr_start, ff_ptr, ff_target, ff_kernel):
    """Block ``b`` of :func:`count_layers`.

    Neurons are stored position-major within a layer (``(y * W + x) * C + c``) so
    that a spike's kernel, WTA and pool targets are contiguous; spikes are still
    delivered in NEST's order (channel-major index) wherever the order can change a
    sum: into a conv layer (sorted there). Into a pool layer or within the WTA every
    weight is the same, and position-major order is channel-major order per channel.

    Refractory neurons are integrated with the others and put back to ``v_reset``
    before the threshold (NEST leaves their membrane alone, at ``v_reset``). A ring
    slot is read only by the layers that got input in it.
    """
    n_layers = pop_refractory_steps.size
    n_neurons = theta.size
    n_slots = int(delays.max()) + 1
    width = 2 * n_neurons
    max_refractory = int(pop_refractory_steps.max()) if n_layers > 0 else 0
    n_history = max_refractory + 1
    layer_spikes_start = np.empty(n_layers + 1, np.int64)
    v = np.zeros(n_neurons)
    i_ex = np.zeros(n_neurons)
    i_in = np.zeros(n_neurons)
    ring = np.zeros(n_slots * width)
    # (slot, layer, receptor): something was delivered there
    ring_used = np.zeros((n_slots, n_layers, 2), np.bool_)
    # the spikes of the last n_history steps, by layer: (step % n_history, ...)
    history = np.zeros((n_history, n_neurons), np.int32)
    history_start = np.zeros((n_history, n_layers + 1), np.int64)
    keys = np.zeros(n_neurons, np.int64)
    reset_fires = np.zeros(n_layers, np.int64)
    for lay in range(n_layers):
        last = geometry[lay + 1, 0] if lay + 1 < n_layers else n_neurons
        if last > geometry[lay, 0] and pop_constants[lay, 6] >= theta[geometry[lay, 0]:last].min():
            reset_fires[lay] = 1
    n_images = block_images[b + 1] - block_images[b]
    image_offset = block_images[b]
    cursor = src_ptr[b]
    src_stop = src_ptr[b + 1]
    for s in range(n_steps_per_block[b]):
        slot = s % n_slots
        ring_base = slot * width
        spiking = history[s % n_history]
        n_spiking = 0
        for lay in range(n_layers):
            layer_spikes_start[lay] = n_spiking
            first = geometry[lay, 0]
            last = geometry[lay + 1, 0] if lay + 1 < n_layers else n_neurons
            out_hw = geometry[lay, 5] * geometry[lay, 6]
            out_c = geometry[lay, 7]
            inhibition = lateral_w[lay] != 0.0
            p22 = pop_constants[lay, 0]
            p21ex = pop_constants[lay, 1]
            p21in = pop_constants[lay, 2]
            p11ex = pop_constants[lay, 3]
            p11in = pop_constants[lay, 4]
            drive = pop_constants[lay, 5]
            v_reset = pop_constants[lay, 6]
            has_input = ring_used[slot, lay, 0] or ring_used[slot, lay, 1]
            ring_used[slot, lay, 0] = False
            ring_used[slot, lay, 1] = False
            hit = _integrate(v[first:last], i_ex[first:last], i_in[first:last],
                             ring[ring_base + first:ring_base + last],
                             ring[ring_base + n_neurons + first:ring_base + n_neurons + last],
                             inhibition, has_input, p22, p21ex, p21in, p11ex, p11in, drive,
                             theta[first:last])
            # the refractory (spiked k = 1..R steps ago) keep v_reset
            refractory_steps = pop_refractory_steps[lay]
            for k in range(1, min(refractory_steps, s) + 1):
                h = (s - k) % n_history
                for e in range(history_start[h, lay], history_start[h, lay + 1]):
                    v[history[h, e]] = v_reset
                    hit += reset_fires[lay]  # (v_reset >= theta: they fire again)
            if hit > 0:
                v_layer = v[first:last]
                theta_layer = theta[first:last]
                for j in range(last - first):
                    if v_layer[j] >= theta_layer[j]:
                        v_layer[j] = v_reset
                        spiking[n_spiking] = first + j
                        n_spiking += 1
                        if lay == n_layers - 1:
                            image = image_of_step[s]
                            if image >= 0 and image < n_images:
                                position = j // out_c
                                c = j - position * out_c
                                counts[image_offset + image, c * out_hw + position] += 1
            start = layer_spikes_start[lay]
            if lay + 1 < n_layers and geometry[lay + 1, 1] == CONV and n_spiking - start > 1:
                for e in range(start, n_spiking):  # into a conv layer: NEST's order
                    position = (spiking[e] - first) // out_c
                    keys[e] = (spiking[e] - first - position * out_c) * out_hw + position
                order = np.argsort(keys[start:n_spiking])
                spiking[start:n_spiking] = spiking[start:n_spiking][order]
        layer_spikes_start[n_layers] = n_spiking
        history_start[s % n_history, :] = layer_spikes_start
        # deliver: sources into layer 0, then each layer into itself and the next
        while cursor < src_stop and src_step[cursor] < s:
            cursor += 1
        for lay in range(n_layers):
            g = geometry[lay]
            d = slot + delays[lay, 0]
            if d >= n_slots:
                d -= n_slots
            row = ring[d * width + g[0]:d * width + g[0] + g[5] * g[6] * g[7]]
            out_c = g[7]
            ptr0 = ff_ptr_start[lay]
            if lay == 0:
                if cursor < src_stop and src_step[cursor] == s:
                    ring_used[d, lay, 0] = True
                while cursor < src_stop and src_step[cursor] == s:
                    _deliver(ff_ptr, ptr0 + src_neuron[cursor], ff_target, ff_kernel,
                             g[1] == CONV, out_c, kernels, pool_w[lay], row)
                    cursor += 1
            else:
                previous_first = geometry[lay - 1, 0]
                if layer_spikes_start[lay] > layer_spikes_start[lay - 1]:
                    ring_used[d, lay, 0] = True
                for e in range(layer_spikes_start[lay - 1], layer_spikes_start[lay]):
                    _deliver(ff_ptr, ptr0 + spiking[e] - previous_first, ff_target, ff_kernel,
                             g[1] == CONV, out_c, kernels, pool_w[lay], row)
            w_lat = lateral_w[lay]
            if w_lat != 0.0:
                d = slot + delays[lay, 1]
                if d >= n_slots:
                    d -= n_slots
                if layer_spikes_start[lay + 1] > layer_spikes_start[lay]:
                    ring_used[d, lay, 1] = True
                for e in range(layer_spikes_start[lay], layer_spikes_start[lay + 1]):
                    j = spiking[e] - g[0]
                    position = j // out_c
                    c = j - position * out_c
                    base = d * width + n_neurons + g[0] + position * out_c
                    inhibited = ring[base:base + out_c]
                    for c2 in range(out_c):
                        if c2 != c:
                            inhibited[c2] += w_lat


@nb.njit(cache=True, parallel=True)
def count_layers(n_steps_per_block, block_images, theta, pop_constants, pop_refractory_steps,
                 geometry, kernels, pool_w, lateral_w, delays,
                 src_ptr, src_step, src_neuron, image_of_step, counts):
    """Spike counts of the last layer of a feed-forward stack of conv / pool layers
    for independent blocks of images, in parallel over blocks: block ``b`` holds
    images ``block_images[b]:block_images[b+1]`` and the source spikes
    ``src_ptr[b]:src_ptr[b+1]`` (emission step, source neuron), starts from rest
    and runs ``n_steps_per_block[b]`` steps, as :func:`advance` would (same order of
    operations), but with the synapses computed from each layer's geometry (shared
    kernels) instead of read from a table. Layer ``l`` holds neurons ``geometry[l, 0]:geometry[l + 1, 0]``;
    ``geometry[l, 1:]`` = ``kind, in_h, in_w, in_c, out_h, out_w, out_c, kh, kw,
    stride, pad, kernel offset``. ``pop_constants[l]`` = ``p22, p21ex, p21in, p11ex,
    p11in, drive, v_reset``. ``delays[l]`` = ``(feed-forward, lateral)`` steps. The
    last layer is counted. Weights in pA; ``lateral_w[l]`` < 0 or 0 (none)."""
    ff_ptr_start, ff_ptr, ff_target, ff_kernel = feedforward_targets(geometry)
    for b in prange(block_images.size - 1):
        _count_block(b, n_steps_per_block, block_images, theta, pop_constants,
                     pop_refractory_steps, geometry, kernels, pool_w, lateral_w, delays,
                     src_ptr, src_step, src_neuron, image_of_step, counts,
                     ff_ptr_start, ff_ptr, ff_target, ff_kernel)
