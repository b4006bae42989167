"""The model directory: ``manifest.json`` naming content-addressed ``.npz`` arrays.

Layout::

    <model-dir>/manifest.json          format version, model spec, parameters, seed,
                                       dataset, backend, package versions, what is
                                       trained, and ``files``: role -> name + SHA-256
    <model-dir>/layer<N>-<sha16>.npz   kernels of conv layer N (1-based), training record
    <model-dir>/svm-<sha16>.npz        scaler statistics, SVM coefficients and intercepts
    <model-dir>/results.json           the last test run, stamped with the SHA-256 of
                                       the arrays it was computed from
    <model-dir>/record.json            the last ``--mode all`` run: command, accuracy,
                                       phases, peak memory (stamped likewise)
    <model-dir>/deploy.json            the last ``--mode deploy``: sPyNNaker's per-layer
                                       resources (stamped likewise)
    <model-dir>/logs/<UTC>_<mode>.log  one per command that succeeded: command line,
                                       parameters, versions, what was printed
    <model-dir>/figures/*.png          figures of training, testing and ``--mode plot``
    <model-dir>/spinnaker/             sPyNNaker's configuration and reports (board
                                       backend only)
    <model-dir>/.lock                  pid and command of the writer holding the lock

Only the manifest and the arrays it names are the model; the other files are
derived from it and may be deleted.

One command, one commit: new arrays are written under names derived from their
content, then ``manifest.json`` is replaced atomically (temporary file, fsync,
rename). Until that rename the old manifest names the old arrays; after it the
new one names the new arrays, so a crash leaves the state before or after the
command, never a mix. Readers trust only what the manifest names, and check
every file's hash and its shapes against the model. Writers hold an advisory
lock (``fcntl.flock``, released by the kernel when the process dies); a writer
that takes it removes temporaries and arrays no manifest names.

Only JSON and ``.npz`` without object arrays: loading never executes code.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np

from .errors import CheckpointError, ModelDirBusy, ModelDirDamaged, UsageError
from .model import ConvLayer, SequentialModel

FORMAT_VERSION = 2
_PACKAGES = ("spinnconv", "pyNN", "brian2", "nest-simulator", "sPyNNaker", "numpy",
             "scikit-learn", "neo", "numba")
LOCK_NAME = ".lock"
#: Environment variable naming a step of a commit at which the process kills itself
#: with SIGKILL (crash tests): one of :data:`FAULT_STEPS`.
FAULT_ENV = "SPINNCONV_FAULT_AT"
FAULT_STEPS = ("array-temp", "array-renamed", "manifest-temp", "manifest-renamed",
               "results-temp")
_ARRAY_NAME = re.compile(r"(layer[1-9][0-9]{0,5}|svm)(-[0-9a-f]{16})?\.npz")
_ROLE = re.compile(r"layer[1-9][0-9]{0,5}|svm")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Runtime settings: they change how a run is split up, not what is learned.
RUNTIME_PARAMETERS = ("chunk_images", "block_images")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a result."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _fault(step: str) -> None:
    """Crash here (SIGKILL, no clean-up) if ``SPINNCONV_FAULT_AT`` names ``step``."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _fsync_dir(directory: Path) -> None:
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _atomic_write(path: Path, data: bytes, fault_step: str | None = None) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~_UMASK)  # as open() would create it, not mkstemp's 0600
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if fault_step:
            _fault(fault_step)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _write_guarded(path: Path, data: bytes, fault_step: str | None = None) -> None:
    try:
        _atomic_write(Path(path), data, fault_step)
    except OSError as err:
        reason = err.strerror or str(err)
        raise CheckpointError(f"cannot write {path}: {reason}; check free space and "
                              "permissions of the model dir") from None


def _json_bytes(data) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n").encode()


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    _write_guarded(path, _json_bytes(data))


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    _write_guarded(path, text.encode())


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as the bytes of an ``.npz`` file (object arrays refused)."""
    buffer = io.BytesIO()
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise CheckpointError(f"array '{key}' holds Python objects; only numeric and "
                                  "string arrays are stored")
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` (``.npz``) atomically."""
    _write_guarded(path, npz_bytes(arrays))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _parse_npz(data: bytes, what: str) -> dict[str, np.ndarray]:
    """Arrays of the ``.npz`` bytes ``data``; ``ValueError`` naming ``what`` if unreadable."""
    if data.startswith(b"\x93NUMPY"):
        raise ValueError(f"{what} is a single array, not an .npz archive")
    if not data.startswith(b"PK"):
        raise ValueError(f"{what} is not a valid .npz file")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
            return {key: loaded[key] for key in loaded.files}
    except ValueError as err:
        if "allow_pickle" in str(err) or "pickle" in str(err).lower():
            raise ValueError(f"{what} holds Python objects (refused: only plain arrays "
                             "are loaded)") from None
        raise ValueError(f"{what} is not a valid .npz file") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError):
        raise ValueError(f"{what} is not a valid .npz file") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (object arrays refused)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return _parse_npz(data, path.name)
    except ValueError as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the lock -------------------------------------------------------------------------

_held: dict[Path, list] = {}  # resolved model dir -> [file descriptor, depth]


def lock_holder(path: Path) -> str:
    """``pid N (command)`` of the process named in ``path``'s lock file, if any."""
    try:
        info = json.loads((Path(path) / LOCK_NAME).read_text() or "{}")
        pid, argv = int(info["pid"]), info.get("argv") or []
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
    command = " ".join(str(a) for a in argv)
    return f"pid {pid} ({command})" if command else f"pid {pid}"


@contextlib.contextmanager
def model_dir_lock(path: str | Path, argv: list[str] | None = None) -> Iterator[None]:
    """Hold the writer lock of model dir ``path`` (re-entrant within a process).

    A second writer is refused at once with :class:`ModelDirBusy` naming the
    holder's pid and command. On release the lock file is emptied; if this
    holder created the directory and nothing was committed, the directory is
    removed again.
    """
    path = Path(path)
    key = path.resolve()
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    created = not path.exists()
    lock_created = not (path / LOCK_NAME).exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise CheckpointError(f"cannot create model dir {path}: {err.strerror or err}; "
                              "choose another --model-dir or fix its permissions") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(handle)
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise CheckpointError(f"cannot lock model dir {path}: {err.strerror}") from None
        raise ModelDirBusy(f"model dir {path} is in use by {lock_holder(path)}; wait for it "
                           "to finish or use another --model-dir") from None
    try:
        os.ftruncate(handle, 0)
        os.write(handle, json.dumps({"pid": os.getpid(),
                                     "argv": list(argv if argv is not None else sys.argv)})
                 .encode())
        os.fsync(handle)
    except OSError:
        pass  # the lock holds without its description
    _held[key] = [handle, 1, False]  # descriptor, depth, committed
    try:
        ModelDir(path).collect_garbage()
        yield
    finally:
        committed = _held.pop(key)[2]
        with contextlib.suppress(OSError):
            os.ftruncate(handle, 0)
        if created and not (path / "manifest.json").exists():
            _remove_uncommitted(path)
        elif lock_created and not committed:  # a refused command leaves the dir as it was
            (path / LOCK_NAME).unlink(missing_ok=True)
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)


def _remove_uncommitted(path: Path) -> None:
    """Remove a model dir this process created and never committed to (a failed
    first command): its lock file, temporaries and spinnaker work files."""
    for entry in path.iterdir():
        if entry.name == LOCK_NAME or entry.name.endswith(".tmp") or \
                _ARRAY_NAME.fullmatch(entry.name):
            entry.unlink(missing_ok=True)
        elif entry.name in ("spinnaker", "logs", "figures") and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.rmdir()


def holds_lock(path: str | Path) -> bool:
    return Path(path).resolve() in _held


# -- the manifest and its checks -------------------------------------------------------


def _damaged(path: Path, what: str) -> ModelDirDamaged:
    return ModelDirDamaged(f"model dir {path} is damaged: {what}; restore it from a backup "
                           "or retrain into a fresh --model-dir")


def check_manifest(manifest, path: Path) -> dict:
    """``manifest`` if it has the schema of :data:`FORMAT_VERSION`, else ``ModelDirDamaged``."""
    _check_manifest_keys(manifest, path)
    try:
        model = SequentialModel.from_dict(manifest["model"])
    except UsageError as err:
        raise _damaged(path, f"manifest.json 'model': {err}") from None
    if manifest["parameters"].get("seed", manifest["seed"]) != manifest["seed"]:
        raise _damaged(path, f"manifest.json 'seed' {manifest['seed']} differs from its "
                       f"parameters' seed {manifest['parameters'].get('seed')}")
    layers, svm = _check_trained(manifest["trained"], model, path)
    _check_files(manifest["files"], layers, svm, path)
    return manifest


def _check_manifest_keys(manifest, path: Path) -> None:
    if not isinstance(manifest, dict):
        raise _damaged(path, f"manifest.json holds a JSON {type(manifest).__name__}, not an "
                       "object")
    required = {"format_version": int, "model": dict, "parameters": dict, "seed": int,
                "dataset": str, "backend": str, "trained": dict, "files": dict}
    for key, kind in required.items():
        if key not in manifest:
            raise _damaged(path, f"manifest.json has no '{key}'")
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            raise _damaged(path, f"manifest.json '{key}' is not a {kind.__name__}")


def _check_trained(trained: dict, model: SequentialModel, path: Path) -> tuple[list, bool]:
    """The manifest's ``trained`` entry as ``(layers, svm)``, consistent with ``model``."""
    layers, svm = trained.get("layers"), trained.get("svm")
    if not isinstance(layers, list) or not all(isinstance(n, int) and not isinstance(n, bool)
                                               for n in layers) or not isinstance(svm, bool):
        raise _damaged(path, "manifest.json 'trained' must be {\"layers\": [N, ...], "
                       "\"svm\": true|false}")
    if sorted(set(layers)) != list(range(1, len(layers) + 1)) or len(layers) > model.n_conv_layers:
        raise _damaged(path, f"manifest.json lists trained layers {layers}, the model has conv "
                       f"layers 1..{model.n_conv_layers} trained in order")
    if svm and len(layers) != model.n_conv_layers:
        raise _damaged(path, "manifest.json marks the SVM trained before all conv layers")
    return layers, svm


def _check_files(files: dict, layers: list, svm: bool, path: Path) -> None:
    """The manifest's ``files``: one well-formed entry per trained role."""
    expected = {f"layer{n}" for n in layers} | ({"svm"} if svm else set())
    if set(files) != expected:
        raise _damaged(path, f"manifest.json names files {sorted(files)}, its 'trained' "
                       f"entry needs {sorted(expected)}")
    for role, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or \
                not isinstance(entry.get("sha256"), str) or \
                not _SHA256.fullmatch(entry["sha256"]):
            raise _damaged(path, f"manifest.json entry '{role}' needs a 'name' and a 'sha256'")
        match = _ARRAY_NAME.fullmatch(entry["name"])
        if not match or match.group(1) != role:
            raise _damaged(path, f"manifest.json names '{entry['name']}' for {role}")
        inputs = entry.get("inputs", {})
        if not isinstance(inputs, dict):
            raise _damaged(path, f"manifest.json entry '{role}' has malformed 'inputs'")
        for other, digest in inputs.items():
            if other not in files or files[other].get("sha256") != digest:
                raise _damaged(path, f"{entry['name']} was trained on another {other} than "
                               "the one the manifest names")


def _upgrade_v1(manifest: dict, path: Path) -> dict:
    """A format-1 manifest (fixed names, no hashes) in format-2 form, hashed as found."""
    if not isinstance(manifest.get("trained"), dict):
        return manifest  # check_manifest reports it
    files = {}
    roles = [f"layer{n}" for n in manifest["trained"].get("layers", [])
             if isinstance(n, int)] + (["svm"] if manifest["trained"].get("svm") is True else [])
    for role in roles:
        try:
            digest = sha256((path / f"{role}.npz").read_bytes())
        except OSError:
            raise _damaged(path, f"{role}.npz is missing") from None
        files[role] = {"name": f"{role}.npz", "sha256": digest}
    return {**manifest, "format_version": FORMAT_VERSION, "files": files}


def _expected_feature_count(model: SequentialModel) -> int:
    """Features the readout of ``model`` takes (every stage's with ``"layers": "all"``)."""
    return model.n_readout_features()


def _finite(arrays: dict, key: str, name: str, path: Path) -> np.ndarray:
    value = np.asarray(arrays[key])
    if value.dtype.kind not in "fiub":
        raise _damaged(path, f"{name} '{key}' has dtype {value.dtype}, not a number")
    if not np.all(np.isfinite(value)):
        raise _damaged(path, f"{name} '{key}' holds NaN or infinite values")
    return value


def check_layer_arrays(arrays: dict, model: SequentialModel, number: int, name: str,
                       path: Path) -> None:
    """``ModelDirDamaged`` unless ``arrays`` fit conv layer ``number`` of ``model``."""
    for key in ("kernels", "weight_na", "convergence"):
        if key not in arrays:
            raise _damaged(path, f"{name} has no '{key}' array")
    layer = model.layers[model.conv_layer_positions[number - 1]]
    assert isinstance(layer, ConvLayer)
    channels = model.input_shape_of(model.conv_layer_positions[number - 1])[2]
    expected = (layer.n_kernels, *layer.kernel_shape, channels)
    kernels = _finite(arrays, "kernels", name, path)
    if kernels.ndim != 4:
        raise _damaged(path, f"{name} kernels have shape {kernels.shape}, the model needs "
                       f"{expected}")
    if kernels.shape[0] != expected[0]:
        raise _damaged(path, f"{name} has {kernels.shape[0]} kernels, the model has "
                       f"{expected[0]}")
    if kernels.shape[1:3] != expected[1:3]:
        raise _damaged(path, f"{name} kernels are {kernels.shape[1]}×{kernels.shape[2]}, the "
                       f"model's are {expected[1]}×{expected[2]}")
    if kernels.shape[3] != expected[3]:
        raise _damaged(path, f"{name} kernels have {kernels.shape[3]} input channels, the "
                       f"model has {expected[3]}")
    weight = _finite(arrays, "weight_na", name, path)
    if weight.size != 1 or not float(weight.ravel()[0]) > 0:
        raise _damaged(path, f"{name} 'weight_na' must be one positive number")
    _finite(arrays, "convergence", name, path) if np.size(arrays["convergence"]) else None


def check_svm_arrays(arrays: dict, model: SequentialModel, name: str, path: Path) -> None:
    """``ModelDirDamaged`` unless ``arrays`` are a readout of ``model``'s features: one
    SVM on all of them, or a vote of one SVM per stage (``stage<k>_`` arrays)."""
    if "n_train" not in arrays:
        raise _damaged(path, f"{name} has no 'n_train' array")
    if "stage_sizes" not in arrays:
        _check_one_svm(arrays, _expected_feature_count(model), name, path)
        return
    sizes = model.readout_stage_features()
    stored = _finite(arrays, "stage_sizes", name, path)
    if stored.tolist() != sizes:
        raise _damaged(path, f"{name} has stages of {stored.tolist()} features, the model "
                       f"reads {sizes}")
    for key in ("stage_weights", "classes", "c", "transform", "holdout_accuracy_json"):
        if key not in arrays:
            raise _damaged(path, f"{name} has no '{key}' array")
    weights = _finite(arrays, "stage_weights", name, path)
    if weights.shape != (len(sizes),) or np.any(weights < 0) or not weights[0] > 0:
        raise _damaged(path, f"{name} 'stage_weights' must be {len(sizes)} numbers >= 0, "
                       "the first > 0")
    for number, size in enumerate(sizes, start=1):
        prefix = f"stage{number}_"
        stage = {key[len(prefix):]: value for key, value in arrays.items()
                 if key.startswith(prefix)}
        _check_one_svm(stage, size, f"{name} stage {number}", path)


def _check_one_svm(arrays: dict, n_features: int, name: str, path: Path) -> None:
    for key in ("scaler_mean", "scaler_scale", "scaler_var", "coef", "intercept", "classes",
                "c", "transform"):
        if key not in arrays:
            raise _damaged(path, f"{name} has no '{key}' array")
    coef = _finite(arrays, "coef", name, path)
    classes = _finite(arrays, "classes", name, path)
    n_classes = classes.size
    if classes.ndim != 1 or n_classes < 2:
        raise _damaged(path, f"{name} has {n_classes} classes; a readout needs at least 2")
    rows = 1 if n_classes == 2 else n_classes
    if coef.shape != (rows, n_features):
        raise _damaged(path, f"{name} coef has shape {coef.shape}, the model needs "
                       f"({rows}, {n_features}) ({n_features} features)")
    if _finite(arrays, "intercept", name, path).shape != (rows,):
        raise _damaged(path, f"{name} intercept has shape {np.shape(arrays['intercept'])}, "
                       f"the model needs ({rows},)")
    for key in ("scaler_mean", "scaler_scale", "scaler_var"):
        if _finite(arrays, key, name, path).shape != (n_features,):
            raise _damaged(path, f"{name} {key} has shape {np.shape(arrays[key])}, the model "
                           f"needs ({n_features},)")
    c = _finite(arrays, "c", name, path)
    if c.size != 1 or not float(c.ravel()[0]) > 0:
        raise _damaged(path, f"{name} 'c' must be one positive number")
    if np.asarray(arrays["transform"]).dtype.kind != "U" or \
            str(arrays["transform"]) not in ("sqrt", "log1p", "none"):
        raise _damaged(path, f"{name} 'transform' is not one of sqrt, log1p, none")


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
        """The manifest, checked against the schema; clear errors when it is missing,
        unreadable, damaged or too new."""
        if not self.exists():
            raise UsageError(f"no model in {self.path}: run --mode training --layer 1 first "
                             "(or --mode all)")
        try:
            text = self.manifest_path.read_bytes()
        except OSError as err:
            raise CheckpointError(f"cannot read {self.manifest_path}: "
                                  f"{err.strerror or err}") from None
        try:
            manifest = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            raise _damaged(self.path, "manifest.json is not valid JSON") from None
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and \
                version > FORMAT_VERSION:
            raise UsageError(f"{self.path} was written by a newer spinnconv (format {version}, "
                             f"this one reads {FORMAT_VERSION}); upgrade spinnconv")
        if version == 1:
            manifest = _upgrade_v1(manifest, self.path)
        elif isinstance(manifest, dict) and version != FORMAT_VERSION:
            raise _damaged(self.path, f"manifest.json has format_version {version!r}")
        return check_manifest(manifest, self.path)

    def model(self) -> SequentialModel:
        return SequentialModel.from_dict(self.manifest()["model"])

    def lock(self, argv: list[str] | None = None):
        """The writer lock (see :func:`model_dir_lock`)."""
        return model_dir_lock(self.path, argv)

    def check_writable(self) -> None:
        """Refuse early if the directory (or its nearest existing parent) is not writable;
        creates nothing."""
        existing = self.path
        while not existing.exists():
            if existing.parent == existing:
                break
            existing = existing.parent
        if not existing.is_dir():
            raise CheckpointError(f"cannot create model dir {self.path}: {existing} is not a "
                                  "directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise CheckpointError(f"model dir {self.path} is not writable; choose another "
                                  "--model-dir or fix its permissions")

    def start(self, model: SequentialModel, params: dict, dataset: str, backend: str,
              create: bool = True) -> dict:
        """The manifest for this run: the existing one if compatible, else a new one
        (in memory: nothing is written until the first commit).

        A directory holding a different architecture, dataset or parameters is
        refused. With ``create=False`` a missing model is an error.
        """
        if not self.exists():
            if not create:
                self.manifest()  # raises the "no model" error
            self.check_writable()
            return {"format_version": FORMAT_VERSION, "model": model.to_dict(),
                    "parameters": params, "seed": params["seed"], "dataset": dataset,
                    "backend": backend, "versions": package_versions(),
                    "trained": {"layers": [], "svm": False}, "files": {}}
        manifest = self.manifest()
        stored = SequentialModel.from_dict(manifest["model"])
        if stored != model:
            raise UsageError(f"{self.path} holds a model with a different architecture "
                             f"({stored!r}); use another --model-dir or delete it")
        if manifest["dataset"] != dataset:
            raise UsageError(f"{self.path} was trained on '{manifest['dataset']}', not "
                             f"'{dataset}'; use another --model-dir")
        difference = parameter_difference(manifest["parameters"], params)
        if difference:
            raise UsageError(f"{self.path} was trained with other parameters ({difference}); "
                             "use another --model-dir, or the same --params and --seed")
        return manifest

    # -- commits ----------------------------------------------------------------
    def commit(self, base: dict, add: dict[str, dict] | None = None,
               drop: tuple[str, ...] = (), **fields) -> dict:
        """Make ``base`` plus arrays ``add`` (role -> arrays) minus roles ``drop``
        the model dir's state in one atomic step; returns the new manifest.

        Refused if the manifest on disk is no longer ``base`` (another writer
        committed in between).
        """
        add = add or {}
        with self.lock():
            on_disk = self.manifest() if self.exists() else None
            if on_disk is not None and base.get("files") is not None and \
                    (on_disk["files"] != base["files"] or on_disk["trained"] != base["trained"]):
                raise ModelDirBusy(f"model dir {self.path} was changed by another command "
                                   "while this one ran; run this command again")
            files = {role: entry for role, entry in base.get("files", {}).items()
                     if role not in drop}
            for role, arrays in add.items():
                data = npz_bytes(arrays)
                digest = sha256(data)
                name = f"{role}-{digest[:16]}.npz"
                target = self.path / name
                if not (target.is_file() and _file_sha256(target) == digest):
                    _write_guarded(target, data, fault_step="array-temp")
                _fault("array-renamed")
                files[role] = {"name": name, "sha256": digest,
                               "inputs": {other: files[other]["sha256"] for other in
                                          _inputs_of(role, files)}}
            layers = sorted(int(role[5:]) for role in files if role.startswith("layer"))
            manifest = json.loads(_json_bytes({
                **base, **fields, "format_version": FORMAT_VERSION,
                "trained": {"layers": layers, "svm": "svm" in files}, "files": files}))
            check_manifest(manifest, self.path)
            _write_guarded(self.manifest_path, _json_bytes(manifest),
                           fault_step="manifest-temp")
            _held[self.path.resolve()][2] = True
            _fault("manifest-renamed")
            self.collect_garbage()
            return manifest

    def update_trained(self, manifest: dict, layers: list[int], svm: bool, **extra) -> dict:
        """Keep only ``layers`` and (if ``svm``) the SVM of ``manifest``; commit."""
        keep = {f"layer{n}" for n in layers} | ({"svm"} if svm else set())
        drop = tuple(role for role in manifest.get("files", {}) if role not in keep)
        return self.commit(manifest, drop=drop, **extra)

    def save_layer(self, manifest: dict, number: int, arrays: dict, **fields) -> dict:
        """Commit conv layer ``number`` (and manifest ``fields``); later layers and the
        SVM are dropped with it."""
        model = SequentialModel.from_dict(manifest["model"])
        check_layer_arrays(arrays, model, number, f"layer {number}", self.path)
        drop = tuple(role for role in manifest.get("files", {})
                     if role == "svm" or (role.startswith("layer") and int(role[5:]) >= number))
        return self.commit(manifest, add={f"layer{number}": arrays}, drop=drop, **fields)

    def save_svm(self, manifest: dict, arrays: dict) -> dict:
        """Commit the SVM readout."""
        model = SequentialModel.from_dict(manifest["model"])
        check_svm_arrays(arrays, model, "svm", self.path)
        return self.commit(manifest, add={"svm": arrays})

    # -- reading ----------------------------------------------------------------
    def _read_role(self, manifest: dict, role: str) -> tuple[str, dict[str, np.ndarray]]:
        entry = manifest["files"].get(role)
        if entry is None:
            raise UsageError(f"{role} is not trained in {self.path}")
        name = entry["name"]
        try:
            data = (self.path / name).read_bytes()
        except FileNotFoundError:
            if self.exists() and self.manifest()["files"].get(role) != entry:
                raise ModelDirBusy(f"model dir {self.path} was changed by another command "
                                   "while this one read it; run this command again") from None
            raise _damaged(self.path, f"{name} (named by manifest.json) is missing") from None
        except OSError as err:
            raise CheckpointError(f"cannot read {self.path / name}: "
                                  f"{err.strerror or err}") from None
        if sha256(data) != entry["sha256"]:
            raise _damaged(self.path, f"{name} does not match its SHA-256 in manifest.json")
        try:
            return name, _parse_npz(data, name)
        except ValueError as err:
            raise _damaged(self.path, str(err)) from None

    def load_layer(self, number: int, manifest: dict | None = None) -> dict[str, np.ndarray]:
        """Conv layer ``number``'s arrays, hash- and shape-checked."""
        manifest = manifest or self.manifest()
        name, arrays = self._read_role(manifest, f"layer{number}")
        model = SequentialModel.from_dict(manifest["model"])
        check_layer_arrays(arrays, model, number, name, self.path)
        return arrays

    def load_svm(self, manifest: dict | None = None) -> dict[str, np.ndarray]:
        """The SVM's arrays, hash- and shape-checked."""
        manifest = manifest or self.manifest()
        name, arrays = self._read_role(manifest, "svm")
        check_svm_arrays(arrays, SequentialModel.from_dict(manifest["model"]), name, self.path)
        return arrays

    def verify(self, manifest: dict | None = None) -> dict:
        """Check every file the manifest names (hash, shapes, values); the manifest."""
        manifest = manifest or self.manifest()
        for number in manifest["trained"]["layers"]:
            self.load_layer(number, manifest)
        if manifest["trained"]["svm"]:
            self.load_svm(manifest)
        return manifest

    def layer_path(self, number: int, manifest: dict | None = None) -> Path:
        """Where the manifest keeps conv layer ``number``."""
        manifest = manifest or self.manifest()
        entry = manifest["files"].get(f"layer{number}")
        return self.path / (entry["name"] if entry else f"layer{number}.npz")

    # -- results ----------------------------------------------------------------
    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    def save_results(self, manifest: dict, results: dict) -> dict:
        """Write ``results.json`` stamped with the hashes of the arrays it came from."""
        stamped = {**results, "model_files": file_hashes(manifest)}
        with self.lock():
            _write_guarded(self.results_path, _json_bytes(stamped), fault_step="results-temp")
        return stamped

    def results(self, manifest: dict | None = None) -> dict | None:
        """The last test results if they belong to the arrays the manifest names."""
        try:
            results = json.loads(self.results_path.read_text())
        except (OSError, ValueError):
            return None
        manifest = manifest or self.manifest()
        if not isinstance(results, dict) or results.get("model_files") != file_hashes(manifest) \
                or not isinstance(results.get("accuracy"), (int, float)):
            return None
        return results

    # -- clean-up -----------------------------------------------------------------
    def collect_garbage(self) -> list[str]:
        """Remove temporaries and arrays the manifest does not name (lock holders only)."""
        if not holds_lock(self.path) or not self.path.is_dir():
            return []
        try:
            named = {entry["name"] for entry in self.manifest()["files"].values()} \
                if self.exists() else set()
        except (CheckpointError, UsageError):
            return []  # a damaged dir is left as it is for inspection
        removed = []
        for directory in (self.path, self.path / "logs", self.path / "figures"):
            if not directory.is_dir():
                continue
            for entry in directory.iterdir():
                stale_temp = entry.name.startswith(".") and entry.name.endswith(".tmp")
                stale_array = directory == self.path and _ARRAY_NAME.fullmatch(entry.name) \
                    and entry.name not in named
                if (stale_temp or stale_array) and entry.is_file():
                    entry.unlink(missing_ok=True)
                    removed.append(entry.name)
        return removed


def _file_sha256(path: Path) -> str:
    try:
        return sha256(path.read_bytes())
    except OSError:
        return ""


def _inputs_of(role: str, files: dict) -> list[str]:
    """Roles whose arrays ``role`` was computed from."""
    if role == "svm":
        return sorted(r for r in files if r.startswith("layer"))
    number = int(role[5:])
    return [f"layer{n}" for n in range(1, number) if f"layer{n}" in files]


def file_hashes(manifest: dict) -> dict[str, str]:
    """Role -> SHA-256 of every array file ``manifest`` names."""
    return {role: entry["sha256"] for role, entry in sorted(manifest.get("files", {}).items())}


def parameter_difference(stored: dict, params: dict) -> str:
    """The first parameter (not a runtime setting) that differs, as ``name: a here, b in
    the model dir``; empty if none does."""
    def flat(tree: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in tree.items():
            if prefix == "" and key in RUNTIME_PARAMETERS:
                continue
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    old, new = flat(stored), flat(params)
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        if (a != b) if numbers else \
                json.dumps(a, default=_json_default) != json.dumps(b, default=_json_default):
            return f"'{name}' is {json.dumps(b, default=_json_default)} here, " \
                   f"{json.dumps(a, default=_json_default)} in the model dir"
    return ""
