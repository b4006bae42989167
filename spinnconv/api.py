"""The Python API: a spiking conv net trained with STDP, as a scikit-learn estimator.

>>> net = STDPConvNet(backend="nest")               # doctest: +SKIP
>>> net.fit(train_images, train_labels).score(test_images, test_labels)  # doctest: +SKIP

Arrays in, arrays out: images are ``(N, H, W)`` or ``(N, H, W, 1)`` NumPy arrays
(uint8 0..255 or float). Training, features and prediction are the pipeline's own
in-memory stages (:func:`spinnconv.pipeline.fit_conv_layer` and friends), so a
network fitted here learns the same kernels as ``main.py`` with the same seed, and
:meth:`STDPConvNet.save` writes the CLI's model-dir format.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from . import pipeline
from .checkpoint import ModelDir
from .config import build_model, check_backend_options, resolve_parameters
from .encoding import encode
from .errors import UsageError
from .model import SequentialModel
from .network import build_network, layer_connections, layer_label, schedule_from
from .readout import readout_from_arrays
from .spikes import Schedule

#: Image sizes with a default architecture (``spinnconv.defaults.PER_DATASET``).
DEFAULT_ARCHITECTURES = {(8, 8): "digits", (28, 28): "mnist"}
#: ``dataset`` recorded for other image sizes (``spinnconv.defaults.DEFAULTS`` apply).
CUSTOM_DATASET = "custom"
#: Training-record arrays of ``layer<N>.npz`` besides the kernels.
_DIAGNOSTICS = ("weight_na", "convergence", "wins", "thresholds_mv", "n_patches", "w_max_na",
                "seconds")


@dataclass
class PyNNNetwork:
    """A trained network built on a PyNN simulator by :meth:`STDPConvNet.to_pynn`.

    ``populations``: ``"input"`` (a ``SpikeSourceArray``) and one population per
    spiking layer (``"layer1_conv"``, ``"layer2_pool"``, ...); ``projections``:
    ``projections[layer][kind]``, kind ``"feedforward"`` (excitatory) or ``"lateral"``
    (inhibitory WTA). Image ``i`` owns ``[schedule.start_ms(i), + schedule.period_ms)``.
    """

    populations: dict[str, Any]
    projections: dict[str, dict[str, Any]]
    schedule: Schedule
    n_images: int
    layer_shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        """Simulation time that presents all ``n_images`` images (``sim.run`` argument)."""
        return self.schedule.duration_ms(self.n_images)


def _as_value_error(call, *args, **kwargs):
    """``call(...)``, with the project's :class:`UsageError` raised as ``ValueError``."""
    try:
        return call(*args, **kwargs)
    except UsageError as err:
        raise ValueError(str(err)) from None


def check_images(images, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """``images`` as an ``(N, H, W)`` uint8 or float array, or one ``ValueError``."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        channels = (f"; {images.shape[-1]} channels: convert to one (e.g. images.mean(axis=-1))"
                    if images.ndim == 4 else "")
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, 1), got "
                         f"{images.shape}{channels}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be uint8 (0..255) or float, got dtype {images.dtype}; "
                         "use images.astype(np.float32)")
    if len(images) == 0:
        raise ValueError("images is empty: pass at least one image")
    if np.issubdtype(images.dtype, np.floating) and not (
            np.isfinite(images).all() and images.min() >= 0):
        raise ValueError("images must be finite and >= 0 (float images are scaled by their "
                         "maximum, uint8 by 255)")
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(f"images are {images.shape[1]}×{images.shape[2]} but the network "
                         f"takes {image_shape[0]}×{image_shape[1]}")
    return images


def _check_labels(labels, n_images: int, fitting: bool = True) -> np.ndarray:
    """``labels`` as one label per image, or one ``ValueError``; ``fitting``: at least
    two classes (labels to fit on, not only to score)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n_images:
        raise ValueError(f"labels must be one label per image ({n_images},), got shape "
                         f"{labels.shape}")
    if np.issubdtype(labels.dtype, np.floating) and not np.isfinite(labels).all():
        raise ValueError("labels contain NaN or infinite values")
    if fitting and len(np.unique(labels)) < 2:
        raise ValueError("labels hold one class only: the SVM needs at least two")
    return labels


class STDPConvNet(ClassifierMixin, BaseEstimator):
    """A spiking conv net: conv layers trained one by one with STDP, then a linear SVM
    on the spike counts of the last spiking layer.

    ``model``: a :class:`~spinnconv.model.SequentialModel` on the encoded input
    (``(H, W, 2)`` with the DoG stage); None picks the default architecture for the
    images' size (8×8: digits, 28×28: mnist, as ``main.py --dataset``). ``params``:
    overrides of :mod:`spinnconv.defaults` (as ``--params``), ``seed`` overrides its seed.
    ``backend``: "brian2", "nest" or "spinnaker" (with ``machine``, e.g.
    ``{"host": IP}``; ``work_dir`` holds sPyNNaker's files). ``jobs``: simulator
    processes for feature extraction. ``quiet``: no progress bars or messages.

    Fitted attributes: ``model_``, ``params_`` (all parameters), ``dataset_`` (the
    parameter set: "digits", "mnist" or "custom"), ``image_shape_``, ``kernels_``
    (``{layer number: (n, kh, kw, C)}`` in [0, 1]), ``weights_na_`` (nA of a kernel
    entry of 1, per layer), ``layer_diagnostics_`` (training record per layer),
    ``layers_`` (the arrays of ``layer<N>.npz``), ``svm_``, ``classes_``, ``n_train_``,
    ``train_accuracy_``, ``validation_accuracy_`` and ``n_validation_`` (the accuracy on
    and number of the images of ``fit_readout(..., validation=...)``; None and 0 without
    them), ``phases_`` (one row per timed phase since the last ``fit``: wall time, rate
    and peak memory, the rows of ``record.json``'s ``phases``).
    """

    #: The CLI's run this network works on (see :meth:`_on_run`); None: its own.
    _context: pipeline.Run | None = None

    def __init__(self, model: SequentialModel | None = None, params: dict | None = None,
                 backend: str = "brian2", seed: int = 0, jobs: int = 1,
                 emulate_spinnaker: bool = False, quiet: bool = False,
                 machine: dict | None = None, work_dir: str | Path | None = None):
        self.model = model
        self.params = params
        self.backend = backend
        self.seed = seed
        self.jobs = jobs
        self.emulate_spinnaker = emulate_spinnaker
        self.quiet = quiet
        self.machine = machine
        self.work_dir = work_dir
        self._check_options()
        if model is not None:
            self._resolve(model.input_shape[:2])  # refuse a model that does not fit params

    # -- configuration ------------------------------------------------------------
    def _check_options(self) -> None:
        from .backends import BACKENDS

        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of: "
                             + ", ".join(BACKENDS))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, (int, np.integer)) \
                or self.jobs < 1:
            raise ValueError(f"jobs must be an integer >= 1, got {self.jobs!r}")
        if self.model is not None and not isinstance(self.model, SequentialModel):
            raise ValueError(f"model must be a spinnconv SequentialModel or None, got "
                             f"{type(self.model).__name__}")
        if self.params is not None and not isinstance(self.params, dict):
            raise ValueError(f"params must be a dict of parameter overrides, got "
                             f"{type(self.params).__name__}")
        overrides = dict(self.params or {})
        if "seed" in overrides and overrides["seed"] != self.seed:
            raise ValueError("give the seed as STDPConvNet(seed=...), not in params")
        if self.model is not None and "architecture" in overrides:
            raise ValueError("give the architecture as model=... or as params['architecture'],"
                             " not both")
        params = _as_value_error(resolve_parameters, "", {**overrides, "seed": int(self.seed)},
                                 where="params")
        _as_value_error(check_backend_options, params, self.backend,
                        bool(self.emulate_spinnaker), training=False)

    def _resolve(self, image_shape: tuple[int, int]) -> tuple[str, dict, SequentialModel]:
        """``(dataset, params, model)`` for images of ``image_shape`` (H, W)."""
        image_shape = (int(image_shape[0]), int(image_shape[1]))
        dataset = DEFAULT_ARCHITECTURES.get(image_shape)
        if dataset is None and self.model is None:
            sizes = ", ".join(f"{h}×{w} ({name})" for (h, w), name in
                              DEFAULT_ARCHITECTURES.items())
            raise ValueError(f"no default architecture for {image_shape[0]}×{image_shape[1]} "
                             f"images (there are for {sizes}): pass model=SequentialModel(...)")
        overrides = {**(self.params or {}), "seed": int(self.seed)}
        params = _as_value_error(resolve_parameters, dataset or CUSTOM_DATASET, overrides,
                                 where="params")
        if self.model is None:
            model = _as_value_error(build_model, params, image_shape)
        else:
            model = self.model
            channels = 2 if params["dog"] else 1
            if model.input_shape[2] != channels:
                raise ValueError(f"model input has {model.input_shape[2]} channels but the "
                                 f"encoding gives {channels} (dog={params['dog']}): use "
                                 f"SequentialModel(({image_shape[0]}, {image_shape[1]}, "
                                 f"{channels}))")
            if model.classifier is None or not model.conv_layer_positions:
                raise ValueError("model needs at least one ConvLayer and must end with a "
                                 "Classifier")
            if _as_value_error(build_model, params, image_shape) != model:
                params["architecture"] = architecture_of(model)
        return dataset or CUSTOM_DATASET, params, model

    def _ensure_resolved(self, images: np.ndarray) -> np.ndarray:
        """``images`` checked; on first use, fixes ``image_shape_``, ``params_``, ``model_``.
        On a CLI run (:meth:`_on_run`) the images are its dataset's, as they are."""
        if self._context is not None:
            return images
        shape = getattr(self, "image_shape_", None)
        images = check_images(images, shape)
        if shape is None:
            self.dataset_, self.params_, self.model_ = self._resolve(images.shape[1:])
            self.image_shape_ = tuple(int(s) for s in images.shape[1:])
        return images

    def _labels(self, labels, n_images: int, fitting: bool = True) -> np.ndarray:
        """``labels`` checked (:func:`_check_labels`); on a CLI run, as they are."""
        return labels if self._context is not None else _check_labels(labels, n_images,
                                                                      fitting)

    def _run(self) -> pipeline.Run:
        """The pipeline's context for this network (creates no files): the CLI's run
        after :meth:`_on_run`, else one of its own."""
        if self._context is not None:
            return self._context
        from .logs import quiet_libraries

        quiet_libraries()
        work_dir = Path(self.work_dir) if self.work_dir is not None else Path(
            tempfile.gettempdir()) / "spinnconv"
        return pipeline.Run(params=self.params_, dataset=self.dataset_, data_dir=Path("."),
                            model_dir=ModelDir(work_dir), backend=self.backend,
                            machine=dict(self.machine or {}),
                            emulate_spinnaker=bool(self.emulate_spinnaker),
                            quiet=bool(self.quiet), plots=False, jobs=int(self.jobs),
                            echo=not self.quiet,
                            phases=self.__dict__.setdefault("phases_", []))

    @classmethod
    def _on_run(cls, run: pipeline.Run, model: SequentialModel,
                layers: dict[int, dict[str, np.ndarray]],
                svm: dict[str, np.ndarray] | None = None) -> STDPConvNet:
        """A network that works on the CLI's ``run`` (its parameters, dataset, backend,
        machine, ``--jobs``, ``--dask-scheduler``, log lines and phase records) with
        ``model``, the conv layers ``layers`` (``{number: arrays of layer<N>.npz}``) and
        the SVM arrays ``svm`` of its model dir.

        The CLI has checked the run's options and data (``spinnconv.datasets``,
        :func:`~spinnconv.validation.check_run`), so the methods take its images (also
        colour images and event recordings) and labels as they are, and its errors
        (:class:`~spinnconv.errors.UsageError`) come through unchanged.
        """
        net = cls(backend=run.backend, seed=int(run.params["seed"]), jobs=int(run.jobs),
                  emulate_spinnaker=bool(run.emulate_spinnaker), quiet=bool(run.quiet),
                  machine=dict(run.machine), work_dir=run.model_dir.path)
        net._context = run
        net.dataset_, net.params_, net.model_ = run.dataset, run.params, model
        net.image_shape_ = tuple(int(s) for s in model.input_shape[:2])
        net.phases_ = run.phases
        for number, arrays in sorted(layers.items()):
            net._set_layer(number, arrays)
        if svm is not None:
            net._set_svm(svm)
        return net

    # -- fitted state -----------------------------------------------------------------
    @property
    def _layers(self) -> dict[int, dict[str, np.ndarray]]:
        return self.__dict__.setdefault("layers_", {})

    def _set_layer(self, number: int, arrays: dict[str, np.ndarray]) -> None:
        """Keep conv layer ``number``; later layers and the SVM become unfitted."""
        for later in [n for n in self._layers if n >= number]:
            del self._layers[later]
        self._layers[number] = arrays
        for name in ("svm_", "classes_", "n_train_", "train_accuracy_",
                     "validation_accuracy_", "n_validation_"):
            self.__dict__.pop(name, None)
        self.kernels_ = {n: a["kernels"] for n, a in sorted(self._layers.items())}
        self.weights_na_ = {n: float(a["weight_na"]) for n, a in sorted(self._layers.items())}
        self.layer_diagnostics_ = {
            n: {**{key: (a[key].tolist() if a[key].ndim else a[key].item())
                   for key in _DIAGNOSTICS if key in a},
                **pipeline.layer_diagnostics_of(a)}
            for n, a in sorted(self._layers.items())}

    def _set_svm(self, arrays: dict[str, np.ndarray]) -> None:
        """Keep the SVM of ``arrays`` (those of ``svm.npz``)."""
        self.svm_ = readout_from_arrays(arrays)
        self.classes_ = self.svm_.classes_
        self.n_train_ = int(arrays["n_train"])
        self.validation_accuracy_ = (float(arrays["validation_accuracy"])
                                     if "validation_accuracy" in arrays else None)
        self.n_validation_ = int(arrays.get("n_validation", 0))

    def _require_layers(self, upto: int, what: str) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{what} needs a fitted network: call fit(images, labels) "
                                 "first")
        missing = [n for n in range(1, upto + 1) if n not in self._layers]
        if missing:
            raise NotFittedError(f"{what} needs conv layer {missing[0]} fitted first: call "
                                 f"fit_layer({missing[0]}, images) or fit(images, labels)")

    def _kernels(self, run: pipeline.Run, upto: int) -> dict[int, np.ndarray]:
        return pipeline.kernels_na(run, self.model_, {n: self._layers[n]
                                                      for n in range(1, upto + 1)})

    # -- training -----------------------------------------------------------------------
    def fit(self, images: np.ndarray, labels) -> STDPConvNet:
        """Fit every conv layer in order on ``images``, then the SVM; returns self."""
        images = self._ensure_resolved(images)
        labels = _check_labels(labels, len(images))
        self.phases_ = []
        for number in range(1, self.model_.n_conv_layers + 1):
            self.fit_layer(number, images, labels)
        return self.fit_readout(images, labels)

    def fit_layer(self, number: int, images: np.ndarray, labels=None) -> STDPConvNet:
        """Learn conv layer ``number``'s kernels (1-based) with STDP on ``images`` (the
        layers below must be fitted); later layers and the SVM become unfitted.
        ``labels`` (optional, never used by STDP) give the layer's diagnostics a quick
        readout accuracy on held-out training images."""
        images = self._ensure_resolved(images)
        labels = None if labels is None else self._labels(labels, len(images))
        n_conv = self.model_.n_conv_layers
        if isinstance(number, bool) or not isinstance(number, (int, np.integer)) \
                or not 1 <= number <= n_conv:
            raise ValueError(f"layer {number!r} does not exist: the model has conv layers "
                             f"1..{n_conv}")
        self._require_layers(number - 1, f"fitting layer {number}")
        if self._context is None:
            _as_value_error(check_backend_options, self.params_, self.backend,
                            bool(self.emulate_spinnaker), training=True)
        run = self._run()
        arrays = pipeline.fit_conv_layer(run, self.model_, int(number), images,
                                         self._kernels(run, number - 1), labels=labels)
        self._set_layer(int(number), arrays)
        return self

    def fit_readout(self, images: np.ndarray, labels,
                    validation: tuple | None = None) -> STDPConvNet:
        """Fit the SVM on the features of ``images`` (every conv layer fitted); returns self.

        ``validation``: ``(images, labels)`` held out from fitting; the fitted SVM's
        accuracy on them is ``validation_accuracy_`` (None without them).
        """
        images = self._ensure_resolved(images)
        labels = self._labels(labels, len(images))
        val_images = val_labels = None
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) != 2:
                raise ValueError("validation must be a pair (images, labels)")
            val_images = self._ensure_resolved(validation[0])
            val_labels = self._labels(validation[1], len(val_images), fitting=False)
        self._require_layers(self.model_.n_conv_layers, "the SVM")
        run = self._run()
        svm, fitted = pipeline.fit_readout(run, self.model_,
                                           self._kernels(run, self.model_.n_conv_layers),
                                           images, labels, val_images, val_labels)
        self.svm_, self.classes_ = svm, svm.classes_
        self.n_train_, self.train_accuracy_ = len(images), float(fitted["train_accuracy"])
        self.validation_accuracy_ = fitted.get("validation_accuracy")
        self.n_validation_ = int(fitted.get("n_validation", 0))
        return self

    # -- inference ------------------------------------------------------------------------
    def transform(self, images: np.ndarray, layer: int | None = None) -> np.ndarray:
        """Features ``(N, n_features)`` float32: the classifier's pooled spike counts of
        the last spiking layer (what the SVM reads). ``layer=n``: the spike count of
        every neuron of stage ``n``'s last layer (conv layer ``n``, or the last of the
        pool layers after it). Both count spikes block by block as feature extraction
        does (``block_images``, ``jobs`` processes)."""
        self._require_layers(1, "transform")
        images = check_images(images, self.image_shape_)
        model = self.model_
        if layer is None:
            self._require_layers(model.n_conv_layers, "transform")
            run = self._run()
            features, _ = pipeline.features_of(run, model,
                                               self._kernels(run, model.n_conv_layers),
                                               images, "features")
            return features
        positions = model.conv_layer_positions
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) \
                or not 1 <= layer <= len(positions):
            raise ValueError(f"layer {layer!r} does not exist: the model has conv layers "
                             f"1..{len(positions)}")
        self._require_layers(int(layer), "transform")
        upto = positions[layer] if layer < len(positions) else len(model.spiking_layers)
        prefix = SequentialModel(model.input_shape)
        for spiking in model.layers[:upto]:
            prefix.add(spiking)
        run = self._run()
        counts = pipeline.count_spikes(run, prefix, self._kernels(run, int(layer)), images,
                                       f"layers 1..{upto}", positions=[upto - 1])
        return counts.astype(np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The SVM's label for every image."""
        if not hasattr(self, "svm_"):
            raise NotFittedError("predict needs a fitted SVM: call fit(images, labels) first")
        images = self._ensure_resolved(images)
        run = self._run()
        return pipeline.predict_images(run, self.model_,
                                       self._kernels(run, self.model_.n_conv_layers),
                                       self.svm_, images)

    def score(self, images: np.ndarray, labels, sample_weight=None) -> float:
        """Accuracy of :meth:`predict` on ``images``."""
        if not hasattr(self, "svm_"):
            raise NotFittedError("score needs a fitted SVM: call fit(images, labels) first")
        images = check_images(images, self.image_shape_)
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise ValueError(f"labels must be one label per image ({len(images)},), got "
                             f"shape {labels.shape}")
        return float(super().score(images, labels, sample_weight=sample_weight))

    def summary(self, print_fn=print) -> None:
        """Print the model's table (layer, output shape, neurons, synapses)."""
        if hasattr(self, "model_"):
            model = self.model_
        elif self.model is not None:
            model = self.model
        else:
            raise NotFittedError("summary needs the image size: pass model=... or call fit "
                                 "first")
        print_fn(model.summary())

    # -- PyNN -------------------------------------------------------------------------------
    def connection_lists(self, sim=None) -> dict[str, dict[str, np.ndarray]]:
        """Per spiking layer and kind (``"feedforward"`` excitatory, ``"lateral"``
        inhibitory), the ``(n, 4)`` ``[pre, post, weight nA, delay ms]`` list for
        ``FromListConnector``. Inhibitory weights are negative as PyNN wants for
        current-based cells, or as the backend of ``sim`` wants them."""
        model = self.model_ if hasattr(self, "model_") else None
        self._require_layers(model.n_conv_layers if model else 1, "connection_lists")
        sign = -1.0
        if sim is not None:
            from .backends import attach_backend

            sign = attach_backend(sim).inhibitory_weight_sign
        kernels = self._kernels(self._run(), model.n_conv_layers)
        lists: dict[str, dict[str, np.ndarray]] = {}
        for position in range(len(model.spiking_layers)):
            for kind, receptor, connections in layer_connections(
                    model, position, kernels.get(position), self.params_):
                lists.setdefault(layer_label(model, position), {})[kind] = connections.as_list(
                    weight_sign=sign if receptor == "inhibitory" else 1.0)
        return lists

    def to_pynn(self, sim, images: np.ndarray | None = None,
                spike_times: list | None = None) -> PyNNNetwork:
        """Build the trained network on ``sim``, a ``pyNN.<simulator>`` module already set
        up (``sim.setup(timestep=...)``), with spinnconv's fixes for that simulator.

        The input is ``images`` (encoded and scheduled as :meth:`transform` does), or
        ``spike_times`` (one array of ms per input neuron), or none (set
        ``populations["input"]`` yourself). Record, run (``duration_ms``) and read
        the populations with plain PyNN calls.
        """
        model = self.model_ if hasattr(self, "model_") else None
        self._require_layers(model.n_conv_layers if model else 1, "to_pynn")
        if images is not None and spike_times is not None:
            raise ValueError("give images or spike_times, not both")
        from .backends import attach_backend
        from .logs import quiet_libraries

        quiet_libraries()
        schedule = schedule_from(self.params_)
        n_inputs = int(np.prod(model.input_shape))
        n_images = 0
        if images is not None:
            images = check_images(images, self.image_shape_)
            source_times = encode(images, self.params_).to_source_times(schedule)
            n_images = len(images)
        elif spike_times is not None:
            if len(spike_times) != n_inputs:
                raise ValueError(f"spike_times needs one array per input neuron ({n_inputs}),"
                                 f" got {len(spike_times)}")
            source_times = [np.asarray(t, dtype=float) for t in spike_times]
        else:
            source_times = [np.zeros(0) for _ in range(n_inputs)]
        backend = attach_backend(sim)
        if abs(backend.timestep_ms - self.params_["timestep_ms"]) > 1e-9:
            raise ValueError(f"sim was set up with timestep {backend.timestep_ms} ms, the "
                             f"network uses {self.params_['timestep_ms']} ms: call "
                             f"sim.setup(timestep={self.params_['timestep_ms']})")
        projections: dict[str, dict[str, Any]] = {}
        kernels = self._kernels(self._run(), model.n_conv_layers)
        populations = build_network(backend, model, kernels, self.params_, source_times,
                                    len(model.spiking_layers), projections)
        labels = ["input"] + [layer_label(model, p) for p in range(len(model.spiking_layers))]
        shapes = {label: model.shapes[k] for k, label in enumerate(labels)}
        return PyNNNetwork(dict(zip(labels, populations, strict=True)), projections, schedule,
                           n_images, shapes)

    # -- model dir ----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the fitted layers and SVM as a model dir (``main.py --model-dir``); a dir
        holding another model is refused, nothing overwritten."""
        self._require_layers(1, "save")
        model_dir = ModelDir(directory)
        try:
            with model_dir.lock(["STDPConvNet.save", str(directory)]):
                manifest = model_dir.start(self.model_, self.params_, self.dataset_,
                                           self.backend)
                for number, arrays in sorted(self._layers.items()):
                    manifest = model_dir.save_layer(manifest, number, arrays)
                if hasattr(self, "svm_"):
                    model_dir.save_svm(manifest, self._svm_arrays())
        except UsageError as err:
            raise ValueError(str(err)) from None
        return Path(directory)

    def _svm_arrays(self) -> dict[str, np.ndarray]:
        """The fitted SVM as ``svm.npz`` holds it: its arrays, ``n_train``, and
        ``validation_accuracy`` and ``n_validation`` after a validation split."""
        arrays = {**self.svm_.to_arrays(), "n_train": np.asarray(self.n_train_)}
        if getattr(self, "validation_accuracy_", None) is not None:
            arrays.update(validation_accuracy=np.asarray(self.validation_accuracy_),
                          n_validation=np.asarray(self.n_validation_))
        return arrays

    @classmethod
    def load(cls, directory: str | Path, backend: str | None = None, jobs: int = 1,
             emulate_spinnaker: bool = False, quiet: bool = False, **options) -> STDPConvNet:
        """A network from a model dir written by :meth:`save` or ``main.py``."""
        model_dir = ModelDir(directory)
        try:
            manifest = model_dir.manifest()
            model = SequentialModel.from_dict(manifest["model"])
        except UsageError as err:
            raise ValueError(str(err)) from None
        saved = manifest["parameters"]
        params = {k: v for k, v in saved.items() if k not in ("seed", "architecture")}
        net = cls(model=model, params=params, backend=backend or manifest["backend"],
                  seed=int(manifest["seed"]), jobs=jobs, emulate_spinnaker=emulate_spinnaker,
                  quiet=quiet, **options)
        net.dataset_ = manifest["dataset"]
        net.params_ = _as_value_error(resolve_parameters, net.dataset_, saved,
                                      where=f"{Path(directory) / 'manifest.json'}")
        net.model_, net.image_shape_ = model, tuple(model.input_shape[:2])
        for number in manifest["trained"]["layers"]:
            net._set_layer(number, model_dir.load_layer(number))
        if manifest["trained"]["svm"]:
            net._set_svm(model_dir.load_svm())
        return net


def architecture_of(model: SequentialModel) -> list[dict]:
    """``params['architecture']`` entries that :func:`~spinnconv.config.build_model`
    turns back into ``model``'s layers."""
    return [json_ready(entry) for entry in model.to_dict()["layers"]]


def json_ready(value):
    """Tuples as lists, recursively (the form a JSON round trip gives)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


__all__ = ["DEFAULT_ARCHITECTURES", "PyNNNetwork", "STDPConvNet", "check_images"]
