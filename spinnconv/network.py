"""Build the inference network of a model through a backend and run images through it.

Images are presented back to back in one simulation (see
:class:`~spinnconv.spikes.Schedule`); the simulation advances in chunks of
``chunk_images`` so a progress bar can follow it and recorded spikes are read
(and cleared) chunk by chunk. Only the requested layer is recorded.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from . import connectivity as cn
from . import interrupt
from .interface import Backend, Connections
from .model import ConvLayer, PoolLayer, SequentialModel
from .spikes import LayerSpikes, Schedule


def schedule_from(params: dict) -> Schedule:
    """The presentation schedule of ``params``."""
    return Schedule(presentation_ms=params["presentation_ms"], rest_ms=params["rest_ms"],
                    onset_ms=2 * params["timestep_ms"])


def layer_connections(model: SequentialModel, position: int, kernels: np.ndarray | None,
                      params: dict) -> list[tuple[str, str, Connections]]:
    """Connection lists feeding ``model.layers[position]``: ``(kind, receptor, list)``.

    ``kind`` is ``"feedforward"`` (from the previous layer) or ``"lateral"``
    (within the layer). ``kernels`` of a conv layer are its weights in nA.
    """
    layer = model.layers[position]
    in_shape = model.input_shape_of(position)
    out_shape = model.output_shape_of(position)
    delay = params["synapse_delay_ms"]
    lists = []
    if isinstance(layer, ConvLayer):
        pre, post, weight = cn.conv_connections(in_shape, kernels, layer.stride, layer.padding)
        lists.append(("feedforward", "excitatory",
                      Connections.build(pre, post, weight, delay)))
        if layer.lateral_inhibition and layer.n_kernels > 1 and params["lateral_inhibition_na"] > 0:
            pre, post = cn.lateral_inhibition_connections(out_shape)
            lists.append(("lateral", "inhibitory",
                          Connections.build(pre, post, params["lateral_inhibition_na"], delay)))
    elif isinstance(layer, PoolLayer):
        pre, post = cn.pool_connections(in_shape, layer.pool_shape, layer.stride)
        lists.append(("feedforward", "excitatory",
                      Connections.build(pre, post, params["pool_weight_na"], delay)))
    else:
        raise TypeError(f"layer {position} is not a spiking layer")
    return lists


def layer_label(model: SequentialModel, position: int) -> str:
    """The population label of ``model.layers[position]``: ``layer<position+1>_<kind>``."""
    return f"layer{position + 1}_{model.layers[position].kind}"


def build_network(backend: Backend, model: SequentialModel, kernels: dict[int, np.ndarray],
                  params: dict, source_times: list[np.ndarray], upto: int,
                  projections: dict | None = None) -> list:
    """Populations ``[source, layer 0, ..., layer upto-1]`` with their projections.

    ``kernels`` maps a layer position to its kernel weights ``(n, kh, kw, C)`` in nA.
    ``projections``, if given, receives every projection as
    ``projections[layer label][kind]`` (kind ``"feedforward"`` or ``"lateral"``).
    """
    populations = [backend.spike_source(source_times, label="input")]
    for position in range(upto):
        shape = model.output_shape_of(position)
        label = layer_label(model, position)
        population = backend.population(int(np.prod(shape)), params["neuron"], label=label)
        for kind, receptor, connections in layer_connections(model, position,
                                                             kernels.get(position), params):
            pre = populations[-1] if kind == "feedforward" else population
            projection = backend.connect(pre, population, connections, receptor=receptor,
                                         label=f"{label}_{kind}")
            if projections is not None:
                projections.setdefault(label, {})[kind] = projection
        populations.append(population)
    return populations


def run_images(backend: Backend, model: SequentialModel, kernels: dict[int, np.ndarray],
               params: dict, input_spikes: LayerSpikes, upto: int | None = None,
               description: str = "simulating", quiet: bool = False,
               record_all: bool = False) -> LayerSpikes | list[LayerSpikes]:
    """Spikes of the output of ``model.layers[upto-1]`` for every input image.

    ``upto`` defaults to all spiking layers; ``upto = 0`` returns the input.
    With ``record_all`` every spiking layer is recorded and a list (one
    ``LayerSpikes`` per layer) is returned.
    """
    n_spiking = len(model.spiking_layers)
    upto = n_spiking if upto is None else upto
    if upto == 0:
        return [] if record_all else input_spikes
    schedule = schedule_from(params)
    backend.setup(params["timestep_ms"], params["seed"])
    try:
        populations = build_network(backend, model, kernels, params,
                                    input_spikes.to_source_times(schedule), upto)
        recorded = populations[1:] if record_all else populations[-1:]
        for population in recorded:
            backend.record(population)
        neurons = [[] for _ in recorded]
        times = [[] for _ in recorded]
        n_images = input_spikes.n_images
        chunk = int(params["chunk_images"])
        with tqdm(total=n_images, desc=description, unit="img", disable=quiet,
                  leave=False) as bar:
            done = 0
            while done < n_images:
                step = min(chunk, n_images - done)
                duration = step * schedule.period_ms + (schedule.onset_ms if done == 0 else 0.0)
                interrupt.check()
                backend.run(duration)
                for k, population in enumerate(recorded):
                    index, spike_times = backend.spikes(population)
                    neurons[k].append(index)
                    times[k].append(spike_times)
                done += step
                bar.update(step)
        first = upto - len(recorded)
        layers = [LayerSpikes.from_recording(model.output_shape_of(first + k), n_images,
                                             np.concatenate(neurons[k]),
                                             np.concatenate(times[k]), schedule)
                  for k in range(len(recorded))]
        return layers if record_all else layers[0]
    finally:
        backend.end()
