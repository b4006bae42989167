"""A conv net on sPyNNaker's local-only convolution (``conv_mode="native"``).

One ``Grid2D`` population per feature map, one ``ConvolutionConnector``
projection per (input map, output map) with the flipped kernel, lateral
inhibition as 1×1 convolutions between maps, pooling through the connector's
``pool_shape``. What sPyNNaker supports and how each part maps onto it:
``docs/design/spinnaker-deploy.md``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ...errors import UsageError
from ...model import ConvLayer, PoolLayer, SequentialModel
from ...network import layer_label

__all__ = [
    "DEFAULT_NATIVE_ATOMS_PER_CORE",
    "NATIVE_LATERAL",
    "build_native_network",
    "native_atoms_per_core",
    "native_problems",
]

#: how lateral inhibition is built natively: 1x1 convolutions, or left out
NATIVE_LATERAL = ("conv", "drop")
#: sPyNNaker's default neurons per core for ``IF_curr_exp`` with synaptic matrices
DEFAULT_NATIVE_ATOMS_PER_CORE = 256


@functools.cache
def _exact_grid_class() -> type:
    """A ``pyNN.space.Grid2D`` whose size is exactly the ``width × height`` it was given.

    ``Grid2D.calculate_size`` derives the shape from a float aspect ratio and
    can reject e.g. 28 × 27 through rounding; sPyNNaker only calls
    ``calculate_size`` (``PopulationVertex.atoms_shape`` → ``(width, height)``).
    """
    from pyNN.space import Grid2D

    class ExactGrid2D(Grid2D):
        """``Grid2D`` of exactly ``width × height`` points."""

        def __init__(self, width: int, height: int):
            super().__init__(aspect_ratio=width / height)
            self.exact_shape = (int(width), int(height))

        def calculate_size(self, n: int) -> tuple[int, int]:
            """``(width, height)``; ``ValueError`` if ``n`` is not their product."""
            width, height = self.exact_shape
            if int(n) != width * height:
                raise ValueError(f"a {width}x{height} grid has {width * height} points, "
                                 f"not {n}")
            return width, height

    return ExactGrid2D


def _grid(width: int, height: int) -> Any:
    """``Grid2D`` structure of a ``width × height`` map (x fastest, like spinnconv)."""
    return _exact_grid_class()(width, height)


def native_atoms_per_core(width: int, height: int, max_atoms: int) -> tuple[int, int]:
    """``(w, h)`` per core for a ``width × height`` map: sides dividing the map's sides
    (pacman requires it), ``w * h <= max_atoms``, fewest cores, then the squarest."""
    best: tuple[tuple[int, int], tuple[int, int]] | None = None
    for w in (d for d in range(1, width + 1) if width % d == 0):
        fitting = [d for d in range(1, height + 1) if height % d == 0 and w * d <= max_atoms]
        if not fitting:
            continue
        h = max(fitting)
        key = ((width // w) * (height // h), abs(w - h))
        if best is None or key < best[0]:
            best = (key, (w, h))
    if best is None:
        raise UsageError(f"native_atoms_per_core must be >= 1, got {max_atoms}")
    return best[1]


def _spynnaker_conv_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """``ConvolutionConnector.get_post_shape`` along one axis."""
    return max(1, (size - (kernel - 1) + 2 * padding) // stride)


def native_problems(model: SequentialModel, upto: int | None = None) -> list[str]:
    """Why layers cannot be built natively, one ``"<layer>: <reason>"`` each (empty: all can)."""
    upto = len(model.spiking_layers) if upto is None else upto
    problems = []
    for position in range(upto):
        layer = model.layers[position]
        label = layer_label(model, position)
        height, width, _ = model.input_shape_of(position)
        out_h, out_w, _ = model.output_shape_of(position)
        if isinstance(layer, ConvLayer):
            kh, kw = layer.kernel_shape
            if kh != kw:
                problems.append(f"{label}: native convolution is used with square kernels "
                                f"only, kernel is {kh}x{kw}")
                continue
            theirs = (_spynnaker_conv_size(height, kh, layer.stride, layer.padding),
                      _spynnaker_conv_size(width, kw, layer.stride, layer.padding))
            if theirs != (out_h, out_w):
                problems.append(
                    f"{label}: sPyNNaker's ConvolutionConnector makes a {theirs[0]}x{theirs[1]} "
                    f"output with stride {layer.stride}, the model has {out_h}x{out_w}")
        elif isinstance(layer, PoolLayer):
            ph, pw = layer.pool_shape
            if not ph == pw == layer.stride:
                problems.append(f"{label}: native pooling needs a square window equal to the "
                                f"stride, pool is {ph}x{pw} stride {layer.stride}")
    return problems



def _mark(backend: Any, label: str) -> None:
    """Remember the layer being built (named in the error if sPyNNaker refuses it)."""
    backend.building = label


def _sources(sim: Any, model: SequentialModel, source_times: list[np.ndarray]) -> list:
    """One ``SpikeSourceArray`` map per input channel (``input_c<c>``), one core each."""
    height, width, channels = model.input_shape
    sources = []
    for c in range(channels):
        times = source_times[c * height * width:(c + 1) * height * width]
        sources.append(sim.Population(
            height * width, sim.SpikeSourceArray(spike_times=times),
            structure=_grid(width, height), label=f"input_c{c}"))
        # a 2-D population needs a per-dimension maximum; a source takes a whole map
        sources[-1].set_max_atoms_per_core((width, height))
    return sources


def _maps(sim: Any, model: SequentialModel, position: int, params: dict,
          atoms_per_core: int) -> list:
    """The ``IF_curr_exp`` map populations of one layer (``<layer>_map<n>``)."""
    out_h, out_w, out_c = model.output_shape_of(position)
    label = layer_label(model, position)
    per_core = native_atoms_per_core(out_w, out_h, atoms_per_core)
    maps = []
    for n in range(out_c):
        population = sim.Population(out_h * out_w, sim.IF_curr_exp(**params["neuron"]),
                                    structure=_grid(out_w, out_h), label=f"{label}_map{n}")
        population.set_max_atoms_per_core(per_core)
        maps.append(population)
    return maps


def _connect_conv(sim: Any, layer: ConvLayer, label: str, kernels_na: np.ndarray,
                  previous: list, maps: list, delay: float) -> None:
    """One projection per (input map, output map) with a positive entry, kernel flipped."""
    kernels = np.asarray(kernels_na, dtype=np.float64)
    for n, target in enumerate(maps):
        for c, source in enumerate(previous):
            kernel = kernels[n, :, :, c]
            if not np.any(kernel > 0):
                continue  # FromList leaves zero weights out too
            connector = sim.ConvolutionConnector(
                np.ascontiguousarray(kernel[::-1, ::-1]), strides=layer.stride,
                padding=layer.padding)
            sim.Projection(source, target, connector, sim.Convolution(delay=delay),
                           label=f"{label}_feedforward_c{c}_m{n}")


def _connect_lateral(sim: Any, label: str, maps: list, inhibition_na: float,
                     delay: float) -> None:
    """Lateral inhibition as a 1x1 convolution from every map to every other map."""
    for n, source in enumerate(maps):
        for m, target in enumerate(maps):
            if n != m:
                sim.Projection(source, target, sim.ConvolutionConnector([[-inhibition_na]]),
                               sim.Convolution(delay=delay),
                               label=f"{label}_lateral_m{n}_m{m}")


def _connect_pool(sim: Any, layer: PoolLayer, label: str, previous: list, maps: list,
                  pool_weight_na: float, delay: float) -> None:
    """Pooling per map; the connector divides the 1x1 kernel by the window size."""
    ph, pw = layer.pool_shape
    weight = float(pool_weight_na) * ph * pw
    for c, (source, target) in enumerate(zip(previous, maps, strict=True)):
        connector = sim.ConvolutionConnector([[weight]], pool_shape=(pw, ph),
                                             pool_stride=layer.stride)
        sim.Projection(source, target, connector, sim.Convolution(delay=delay),
                       label=f"{label}_feedforward_c{c}")


def build_native_network(backend: Any, model: SequentialModel,
                         kernels_na: dict[int, np.ndarray], params: dict,
                         source_times: list[np.ndarray], upto: int,
                         atoms_per_core: int = DEFAULT_NATIVE_ATOMS_PER_CORE,
                         lateral: str = "conv",
                         notes: list[str] | None = None) -> tuple[dict[str, list], list]:
    """The network of ``model.layers[:upto]`` with sPyNNaker's local-only convolution.

    ``backend`` is a set-up :class:`~spinnconv.backends.spinnaker.SpiNNakerBackend`.
    Per input channel a ``SpikeSourceArray`` ``Grid2D`` population (``input_c<c>``),
    per layer and feature map an ``IF_curr_exp`` ``Grid2D`` population
    (``layer1_conv_map<n>``), per (input map, output map) a
    ``ConvolutionConnector`` projection with the flipped kernel, lateral
    inhibition as 1×1 projections with a negative weight (``lateral="conv"``)
    or left out (``"drop"``, noted in ``notes``), pooling through the
    connector's ``pool_shape``/``pool_stride``. Call :func:`native_problems`
    first. Returns ``({row label: [populations]}, output populations)``.
    """
    notes = [] if notes is None else notes
    sim = backend.sim
    delay = float(params["synapse_delay_ms"])
    inhibition = float(params["lateral_inhibition_na"])
    _mark(backend, "input")
    previous = _sources(sim, model, source_times)
    groups = {"input": previous}
    dropped: list[str] = []
    lateral_done: list[str] = []
    for position in range(upto):
        layer = model.layers[position]
        label = layer_label(model, position)
        _mark(backend, label)
        maps = _maps(sim, model, position, params, atoms_per_core)
        if isinstance(layer, PoolLayer):
            _connect_pool(sim, layer, label, previous, maps, params["pool_weight_na"], delay)
        else:
            _connect_conv(sim, layer, label, kernels_na[position], previous, maps, delay)
            if layer.lateral_inhibition and len(maps) > 1 and inhibition > 0:
                if lateral == "conv":
                    _connect_lateral(sim, label, maps, inhibition, delay)
                    lateral_done.append(f"{label} {len(maps) * (len(maps) - 1)}")
                else:
                    dropped.append(label)
        groups[label] = maps
        previous = maps
    if dropped:
        notes.append("lateral inhibition left out (native_lateral='drop') in "
                     + ", ".join(dropped))
    if lateral_done:
        notes.append("lateral inhibition as 1x1 convolution projections between every pair "
                     "of maps: " + ", ".join(lateral_done))
    return groups, previous
