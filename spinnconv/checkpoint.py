"""The model directory: ``manifest.json`` plus ``.npz`` arrays, written atomically.

Layout::

    <model-dir>/manifest.json    format version, model spec, parameters, seed,
                                 dataset, backend, package versions, what is trained
    <model-dir>/layer<N>.npz     kernels of conv layer N (1-based) and training record
    <model-dir>/svm.npz          scaler statistics, SVM coefficients and intercepts
    <model-dir>/results.json     the last test run

Only JSON and ``.npz`` without object arrays: loading never executes code.
Every file is written to a temporary name in the same directory, flushed and
renamed over the old one, so an interrupted run leaves the previous checkpoint
intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from .errors import CheckpointError, UsageError
from .model import SequentialModel

FORMAT_VERSION = 1
_PACKAGES = ("spinnconv", "pyNN", "brian2", "nest-simulator", "sPyNNaker", "numpy",
             "scikit-learn", "neo", "numba")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a result."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n"
    _write_guarded(path, lambda stream: stream.write(text.encode()))


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    _write_guarded(path, lambda stream: stream.write(text.encode()))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` (``.npz``) atomically."""
    _write_guarded(path, lambda stream: np.savez(stream, **arrays))


def _write_guarded(path: Path, write) -> None:
    try:
        _atomic_write(Path(path), write)
    except OSError as err:
        reason = err.strerror or str(err)
        raise CheckpointError(f"cannot write {path}: {reason}; check free space and "
                              "permissions of the model dir") from None


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (object arrays refused)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: {err}; train that stage again") from None


class ModelDir:
    """A model directory on disk (see the module docstring for its layout)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict:
        """The manifest; a clear error when it is missing, unreadable or too new."""
        if not self.exists():
            raise UsageError(f"no model in {self.path}: run --mode training --layer 1 first "
                             "(or --mode all)")
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"cannot read {self.manifest_path}: {err}") from None
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UsageError(f"{self.path} was written by a newer spinnconv (format {version}, "
                             f"this one reads {FORMAT_VERSION}); upgrade spinnconv")
        return manifest

    def model(self) -> SequentialModel:
        return SequentialModel.from_dict(self.manifest()["model"])

    def check_writable(self) -> None:
        """Refuse early if the directory cannot be created or written."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CheckpointError(f"cannot create model dir {self.path}: "
                                  f"{err.strerror or err}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise CheckpointError(f"model dir {self.path} is not writable; choose another "
                                  "--model-dir or fix its permissions")

    def start(self, model: SequentialModel, params: dict, dataset: str, backend: str,
              create: bool = True) -> dict:
        """The manifest for this run: the existing one if compatible, else a new one.

        A directory holding a different architecture, dataset or parameters is
        refused rather than overwritten. With ``create=False`` a missing model is
        an error and nothing is written.
        """
        if not self.exists() and not create:
            self.manifest()  # raises the "no model" error
        if self.exists():
            manifest = self.manifest()
            if SequentialModel.from_dict(manifest["model"]) != model:
                raise UsageError(
                    f"{self.path} holds a model with a different architecture "
                    f"({SequentialModel.from_dict(manifest['model'])!r}); use another "
                    "--model-dir or delete it")
            if manifest["dataset"] != dataset:
                raise UsageError(f"{self.path} was trained on '{manifest['dataset']}', not "
                                 f"'{dataset}'; use another --model-dir")
            if _comparable(manifest["parameters"]) != _comparable(params):
                raise UsageError(f"{self.path} was trained with other parameters; use another "
                                 "--model-dir, or the same --params and --seed")
            return manifest
        self.check_writable()
        manifest = {"format_version": FORMAT_VERSION, "model": model.to_dict(),
                    "parameters": params, "seed": params["seed"], "dataset": dataset,
                    "backend": backend, "versions": package_versions(),
                    "trained": {"layers": [], "svm": False}}
        write_json(self.manifest_path, manifest)
        return manifest

    def update_trained(self, manifest: dict, layers: list[int], svm: bool, **extra) -> dict:
        manifest = dict(manifest, trained={"layers": sorted(layers), "svm": svm}, **extra)
        write_json(self.manifest_path, manifest)
        return manifest

    def layer_path(self, number: int) -> Path:
        return self.path / f"layer{number}.npz"

    def save_layer(self, manifest: dict, number: int, arrays: dict) -> dict:
        """Save conv layer ``number``; later layers and the SVM become untrained."""
        write_npz(self.layer_path(number), arrays)
        layers = [n for n in manifest["trained"]["layers"] if n < number] + [number]
        return self.update_trained(manifest, layers, svm=False)

    def load_layer(self, number: int) -> dict[str, np.ndarray]:
        return read_npz(self.layer_path(number))

    def save_svm(self, manifest: dict, arrays: dict) -> dict:
        write_npz(self.path / "svm.npz", arrays)
        return self.update_trained(manifest, manifest["trained"]["layers"], svm=True)

    def load_svm(self) -> dict[str, np.ndarray]:
        return read_npz(self.path / "svm.npz")


def _comparable(params: dict) -> str:
    """Parameters that change what is learned (run-time settings excluded)."""
    ignored = {"chunk_images", "block_images"}  # block edges: a few residual spikes at most
    return json.dumps({k: v for k, v in params.items() if k not in ignored}, sort_keys=True,
                      default=_json_default)
