"""Model description: layer specs, ``SequentialModel``, shape inference, JSON.

Pure data: nothing here imports a simulator. A model is the network *after*
encoding: ``input_shape`` is the shape of the spike-source layer, ``(H, W, C)``
with ``C = 2`` when the DoG ON/OFF stage is used.

>>> model = SequentialModel(input_shape=(28, 28, 2))
>>> model.add(ConvLayer(30, (5, 5)))
>>> model.add(PoolLayer((2, 2)))
>>> model.add(Classifier())
>>> model.output_shape
(12, 12, 30)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace

from .connectivity import conv_synapse_count, output_size, pool_synapse_count
from .errors import UsageError

Shape = tuple[int, int, int]


def _positive_int(value, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value or value < minimum:
        raise UsageError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _pair(value, what: str, minimum: int = 1) -> tuple[int, int]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise UsageError(f"{what} must be two integers (height, width), got {value!r}")
    return (_positive_int(value[0], what, minimum), _positive_int(value[1], what, minimum))


@dataclass(frozen=True)
class ConvLayer:
    """A convolution layer of ``n_kernels`` LIF feature maps with shared kernels.

    ``lateral_inhibition``: winner-take-all between the feature maps at the same
    position (an inhibitory synapse from each map to every other map there).
    Kernels are learned with STDP (``--mode training --layer N``).
    """

    n_kernels: int
    kernel_shape: tuple[int, int] = (5, 5)
    stride: int = 1
    padding: int = 0
    lateral_inhibition: bool = True
    kind: str = field(default="conv", init=False)

    def __post_init__(self):
        object.__setattr__(self, "n_kernels", _positive_int(self.n_kernels, "n_kernels"))
        object.__setattr__(self, "kernel_shape", _pair(self.kernel_shape, "kernel_shape"))
        object.__setattr__(self, "stride", _positive_int(self.stride, "stride"))
        object.__setattr__(self, "padding", _positive_int(self.padding, "padding", 0))

    def describe(self) -> str:
        kh, kw = self.kernel_shape
        return f"Conv {self.n_kernels}×{kh}×{kw} s{self.stride} p{self.padding}"

    def output_shape(self, input_shape: Shape) -> Shape:
        height, width, _ = input_shape
        kh, kw = self.kernel_shape
        if kh > height + 2 * self.padding or kw > width + 2 * self.padding:
            raise UsageError(
                f"{self.describe()}: kernel {kh}×{kw} is larger than its padded input "
                f"{height + 2 * self.padding}×{width + 2 * self.padding}; use a smaller "
                "kernel_shape or more padding")
        return (output_size(height, kh, self.stride, self.padding),
                output_size(width, kw, self.stride, self.padding), self.n_kernels)


@dataclass(frozen=True)
class PoolLayer:
    """Spiking pooling: each neuron fires when any neuron of its window fires.

    ``stride`` defaults to the pool shape (non-overlapping windows).
    """

    pool_shape: tuple[int, int] = (2, 2)
    stride: int | None = None
    kind: str = field(default="pool", init=False)

    def __post_init__(self):
        object.__setattr__(self, "pool_shape", _pair(self.pool_shape, "pool_shape"))
        if self.stride is None:
            object.__setattr__(self, "stride", self.pool_shape[0])
        object.__setattr__(self, "stride", _positive_int(self.stride, "pool stride"))

    def describe(self) -> str:
        ph, pw = self.pool_shape
        return f"Pool {ph}×{pw} s{self.stride}"

    def output_shape(self, input_shape: Shape) -> Shape:
        height, width, channels = input_shape
        ph, pw = self.pool_shape
        if ph > height or pw > width:
            raise UsageError(f"{self.describe()}: pool window is larger than its input "
                             f"{height}×{width}")
        return (output_size(height, ph, self.stride, 0),
                output_size(width, pw, self.stride, 0), channels)


@dataclass(frozen=True)
class Classifier:
    """Linear SVM on the previous layer's spike counts.

    How counts become features (per feature map):

    * ``grid = g``: summed over a ``g × g`` partition of the map's positions
      (1 = global sum pooling);
    * ``windows = [[w, s], ...]``: for each pair, summed over every ``w × w``
      window whose corner lies on a multiple of ``s`` (overlapping when
      ``s < w``); several pairs make a spatial pyramid;
    * neither: one feature per neuron.

    ``layers = "all"``: every stage is read out, a stage being the output of a
    conv layer after the pool layers that follow it (see
    :meth:`SequentialModel.readout_positions`); grid and windows are given for
    the first stage's map and scaled to each stage's map size
    (:meth:`scaled_to`). ``layers = "last"``: the last spiking layer only.
    ``None`` (not given): ``"all"`` in a model of two or more conv layers, else
    ``"last"`` (:meth:`SequentialModel.add` decides).

    ``combine`` (with ``layers = "all"``): ``"vote"`` (or ``None``): one SVM per
    stage, their decision values summed with stage weights chosen on held-out
    training images (:class:`~spinnconv.readout.StageVoteSVM`), so a stage that
    does not help is left out; ``"concatenate"``: one SVM on every stage's
    features side by side.

    The output shape is ``(grid, grid, C)``, ``(1, cells, C)`` for windows (cells
    per map, all pairs together), or the input shape (of the last stage).
    """

    grid: int | None = None
    windows: tuple[tuple[int, int], ...] | None = None
    layers: str | None = None
    combine: str | None = None
    kind: str = field(default="classifier", init=False)

    def __post_init__(self):
        if self.layers not in (None, "last", "all"):
            raise UsageError(f"classifier layers must be 'last' or 'all', got {self.layers!r}")
        if self.combine not in (None, "vote", "concatenate"):
            raise UsageError("classifier combine must be 'vote' or 'concatenate', got "
                             f"{self.combine!r}")
        if self.grid is not None:
            object.__setattr__(self, "grid", _positive_int(self.grid, "classifier grid"))
        if self.windows is not None:
            if self.grid is not None:
                raise UsageError("a classifier takes a grid or windows, not both")
            pairs = self.windows
            if (not isinstance(pairs, (list, tuple)) or not pairs
                    or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs)):
                raise UsageError("classifier windows must be a non-empty list of "
                                 f"[window, stride] pairs, got {pairs!r}")
            object.__setattr__(self, "windows", tuple(
                (_positive_int(w, "classifier window"), _positive_int(s, "classifier stride"))
                for w, s in pairs))

    @property
    def reads_all_layers(self) -> bool:
        return self.layers == "all"

    @property
    def votes_by_stage(self) -> bool:
        """One SVM per stage and a weighted vote (``layers = "all"``, not concatenated)."""
        return self.reads_all_layers and self.combine != "concatenate"

    def scaled_to(self, reference_shape: Shape, shape: Shape) -> Classifier:
        """This readout for a map of ``shape``: grid, windows and strides scaled by
        ``shape``'s height over ``reference_shape``'s (rounded, at least 1, at most
        the map's side)."""
        ratio = shape[0] / reference_shape[0]
        side = min(shape[0], shape[1])

        def scale(value: int) -> int:
            return int(min(side, max(1, round(value * ratio))))

        if self.windows is not None:
            return Classifier(windows=tuple((scale(w), max(1, round(s * ratio)))
                                            for w, s in self.windows))
        return Classifier(grid=None if self.grid is None else scale(self.grid))

    def describe(self) -> str:
        stages = ""
        if self.reads_all_layers:
            stages = " (all, concatenated)" if self.combine == "concatenate" else " (all, vote)"
        if self.windows is not None:
            return ("Classifier windows " + ", ".join(f"{w}/{s}" for w, s in self.windows)
                    + stages)
        return ("Classifier (linear SVM)" + ("" if self.grid is None else f" grid {self.grid}")
                + stages)

    def output_shape(self, input_shape: Shape) -> Shape:
        height, width, channels = input_shape
        if self.windows is not None:
            for window, _ in self.windows:
                if window > min(height, width):
                    raise UsageError(f"classifier window {window} is larger than its input "
                                     f"{height}×{width}")
            cells = sum(((height - w) // s + 1) * ((width - w) // s + 1)
                        for w, s in self.windows)
            return (1, cells, channels)
        if self.grid is None:
            return input_shape
        if self.grid > min(height, width):
            raise UsageError(f"classifier grid {self.grid} is larger than its input "
                             f"{height}×{width}")
        return (self.grid, self.grid, channels)


Layer = ConvLayer | PoolLayer | Classifier
_LAYER_CLASSES = {"conv": ConvLayer, "pool": PoolLayer, "classifier": Classifier}


class SequentialModel:
    """A stack of layers on a spike-source input of shape ``(H, W, C)``.

    Shapes are inferred as layers are added; a layer that does not fit its
    input is refused with :class:`~spinnconv.errors.UsageError`.
    """

    def __init__(self, input_shape: Shape):
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
            raise UsageError(f"input_shape must be (height, width, channels), got {input_shape!r}")
        self.input_shape: Shape = tuple(_positive_int(s, "input_shape") for s in input_shape)
        self.layers: list[Layer] = []
        self._shapes: list[Shape] = [self.input_shape]

    def add(self, layer: Layer) -> SequentialModel:
        """Append ``layer`` after checking that it fits; returns ``self``."""
        if not isinstance(layer, (ConvLayer, PoolLayer, Classifier)):
            raise UsageError(f"cannot add {type(layer).__name__}: not a spinnconv layer")
        if self.layers and isinstance(self.layers[-1], Classifier):
            raise UsageError("the Classifier must be the last layer")
        if isinstance(layer, Classifier) and not self.layers:
            raise UsageError("a Classifier needs at least one Conv or Pool layer before it")
        if isinstance(layer, Classifier) and layer.layers is None and sum(
                isinstance(below, ConvLayer) for below in self.layers) >= 2:
            layer = replace(layer, layers="all")  # a deep net reads out every stage
        try:
            if isinstance(layer, Classifier) and layer.reads_all_layers:
                self.layers.append(layer)
                try:  # every stage's features, side by side
                    shape = (1, self.n_readout_features(), 1)
                finally:
                    self.layers.pop()
            else:
                shape = layer.output_shape(self._shapes[-1])
        except UsageError as err:
            raise UsageError(f"layer {len(self.layers) + 1} ({err})") from None
        self.layers.append(layer)
        self._shapes.append(shape)
        return self

    # -- queries ------------------------------------------------------------
    @property
    def shapes(self) -> list[Shape]:
        """Input shape, then the output shape of every layer."""
        return list(self._shapes)

    @property
    def output_shape(self) -> Shape:
        """Shape of the last spiking layer (what the classifier reads)."""
        spiking = [s for layer, s in zip(self.layers, self._shapes[1:], strict=True)
                   if not isinstance(layer, Classifier)]
        return spiking[-1] if spiking else self.input_shape

    @property
    def spiking_layers(self) -> list[Layer]:
        """Conv and pool layers, in order (the classifier is not a population)."""
        return [layer for layer in self.layers if not isinstance(layer, Classifier)]

    @property
    def classifier(self) -> Classifier | None:
        last = self.layers[-1] if self.layers else None
        return last if isinstance(last, Classifier) else None

    def readout_positions(self) -> list[int]:
        """Positions of the spiking layers the classifier reads: the last one, or with
        ``layers = "all"`` the end of every stage (a conv layer and the pool layers
        after it)."""
        spiking = [i for i, layer in enumerate(self.layers) if not isinstance(layer, Classifier)]
        if not spiking:
            return []
        classifier = self.classifier
        if classifier is None or not classifier.reads_all_layers:
            return [spiking[-1]]
        ends = [i - 1 for i in self.conv_layer_positions[1:]] + [spiking[-1]]
        return sorted(set(ends))

    def readout_shapes(self) -> list[Shape]:
        """Output shapes of :meth:`readout_positions`."""
        return [self.output_shape_of(i) for i in self.readout_positions()]

    def n_readout_features(self) -> int:
        """Features the classifier gets (all stages together)."""
        return sum(self.readout_stage_features())

    def readout_stage_features(self) -> list[int]:
        """Features the classifier gets from each stage it reads, in order (one entry
        unless it reads every stage)."""
        shapes = self.readout_shapes()
        classifier = self.classifier or Classifier()
        if not classifier.reads_all_layers:
            return [int(math.prod(classifier.output_shape(shapes[-1])))]
        return [int(math.prod(classifier.scaled_to(shapes[0], shape).output_shape(shape)))
                for shape in shapes]

    @property
    def conv_layer_positions(self) -> list[int]:
        """Positions (0-based in ``layers``) of the trainable conv layers.

        ``--layer N`` (1-based) refers to the N-th conv layer.
        """
        return [i for i, layer in enumerate(self.layers) if isinstance(layer, ConvLayer)]

    @property
    def n_conv_layers(self) -> int:
        return len(self.conv_layer_positions)

    def input_shape_of(self, position: int) -> Shape:
        """Input shape of ``layers[position]``."""
        return self._shapes[position]

    def output_shape_of(self, position: int) -> Shape:
        """Output shape of ``layers[position]``."""
        return self._shapes[position + 1]

    def layer_counts(self) -> list[dict]:
        """Per layer: name, output shape, neurons, synapses (feed-forward + lateral)."""
        rows = []
        for position, layer in enumerate(self.layers):
            in_shape, out_shape = self._shapes[position], self._shapes[position + 1]
            neurons = out_shape[0] * out_shape[1] * out_shape[2]
            if isinstance(layer, ConvLayer):
                synapses = conv_synapse_count(in_shape, layer.kernel_shape, layer.stride,
                                              layer.padding, layer.n_kernels)
                if layer.lateral_inhibition:
                    n = layer.n_kernels
                    synapses += out_shape[0] * out_shape[1] * n * (n - 1)
            elif isinstance(layer, PoolLayer):
                synapses = pool_synapse_count(in_shape, layer.pool_shape, layer.stride)
            else:
                neurons, synapses = 0, 0
            rows.append({"layer": layer.describe(), "output_shape": out_shape,
                         "neurons": neurons, "synapses": synapses})
        return rows

    def summary(self) -> str:
        """A Keras-like table: layer, output shape, neurons, synapses."""
        rows = [{"layer": "Input (spike sources)", "output_shape": self.input_shape,
                 "neurons": self.input_shape[0] * self.input_shape[1] * self.input_shape[2],
                 "synapses": 0}] + self.layer_counts()
        lines = [f"{'#':>2}  {'layer':<34}{'output shape':<16}{'neurons':>10}{'synapses':>12}"]
        lines.append("-" * len(lines[0]))
        for number, row in enumerate(rows):
            shape = "×".join(str(s) for s in row["output_shape"])
            lines.append(f"{number:>2}  {row['layer']:<34}{shape:<16}"
                         f"{row['neurons']:>10,}{row['synapses']:>12,}")
        lines.append("-" * len(lines[0]))
        lines.append(f"    {'total':<50}{sum(r['neurons'] for r in rows):>10,}"
                     f"{sum(r['synapses'] for r in rows):>12,}")
        return "\n".join(lines)

    # -- serialisation --------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-ready description that :meth:`from_dict` turns back into a model."""
        layers = []
        for layer in self.layers:
            entry = asdict(layer)
            entry["kind"] = layer.kind
            if isinstance(layer, Classifier):  # specs written before the options stay equal
                for option in ("layers", "combine"):
                    if entry[option] is None:
                        del entry[option]
            layers.append(entry)
        return {"input_shape": list(self.input_shape), "layers": layers}

    @classmethod
    def from_dict(cls, spec: dict) -> SequentialModel:
        """Rebuild a model from :meth:`to_dict` output; unknown layer kinds are refused."""
        try:
            model = cls(tuple(spec["input_shape"]))
            for entry in spec["layers"]:
                entry = dict(entry)
                kind = entry.pop("kind")
                if kind not in _LAYER_CLASSES:
                    raise UsageError(f"unknown layer kind {kind!r} in model spec")
                for key in ("kernel_shape", "pool_shape"):
                    if key in entry:
                        entry[key] = tuple(entry[key])
                model.add(_LAYER_CLASSES[kind](**entry))
        except (KeyError, TypeError) as err:
            raise UsageError(f"malformed model spec: {err}") from None
        return model

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SequentialModel:
        return cls.from_dict(json.loads(text))

    def __eq__(self, other) -> bool:
        return isinstance(other, SequentialModel) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        inner = ", ".join(layer.describe() for layer in self.layers)
        return f"SequentialModel(input_shape={self.input_shape}, layers=[{inner}])"
