"""The model dir never lies: atomic commits, hashes and shapes checked on load, a writer
lock, crashes (a real SIGKILL) at every step of a save, disk full, tampering."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, snapshot
from test_config_readout_checkpoint import layer_arrays, svm_arrays

from spinnconv import checkpoint
from spinnconv.checkpoint import FAULT_ENV, FAULT_STEPS, ModelDir, model_dir_lock
from spinnconv.config import build_model, resolve_parameters
from spinnconv.errors import CheckpointError, ModelDirBusy, ModelDirDamaged


def digits_model():
    params = resolve_parameters("digits")
    return build_model(params, (8, 8)), params


def trained_dir(path: Path) -> tuple[ModelDir, dict]:
    """A model dir with layer 1 and the SVM committed (arrays of the right shapes)."""
    model, params = digits_model()
    directory = ModelDir(path)
    manifest = directory.start(model, params, "digits", "nest")
    manifest = directory.save_layer(manifest, 1, layer_arrays(0.5))
    manifest = directory.save_svm(manifest, svm_arrays(model))
    return directory, manifest


def tree(path: Path) -> dict[str, bytes]:
    return {name: data for name, data in snapshot(path).items() if name != ".lock"}


# -- commits ----------------------------------------------------------------------------

def test_commit_names_content_addressed_files_with_their_hashes(tmp_path):
    directory, manifest = trained_dir(tmp_path / "m")
    entry = manifest["files"]["layer1"]
    data = (directory.path / entry["name"]).read_bytes()
    assert entry["name"] == f"layer1-{checkpoint.sha256(data)[:16]}.npz"
    assert entry["sha256"] == checkpoint.sha256(data)
    assert manifest["files"]["svm"]["inputs"] == {"layer1": entry["sha256"]}
    assert json.loads(directory.manifest_path.read_text()) == manifest
    np.testing.assert_array_equal(directory.load_layer(1)["kernels"], 0.5)


def test_retraining_a_layer_drops_the_svm_and_the_old_file_in_one_commit(tmp_path):
    directory, manifest = trained_dir(tmp_path / "m")
    old = manifest["files"]["layer1"]["name"]
    manifest = directory.save_layer(manifest, 1, layer_arrays(0.25))
    assert manifest["trained"] == {"layers": [1], "svm": False}
    assert set(manifest["files"]) == {"layer1"}
    names = sorted(p.name for p in directory.path.glob("*.npz"))
    assert names == [manifest["files"]["layer1"]["name"]] and old not in names
    with pytest.raises(Exception, match="svm is not trained"):
        directory.load_svm()


def test_nothing_is_written_before_the_first_commit(tmp_path):
    model, params = digits_model()
    directory = ModelDir(tmp_path / "fresh")
    directory.start(model, params, "digits", "nest")
    assert not directory.path.exists()
    with model_dir_lock(directory.path):
        assert (directory.path / ".lock").is_file()
    assert not directory.path.exists()  # created by the lock, nothing committed: removed


def test_stale_results_are_not_reported(tmp_path):
    directory, manifest = trained_dir(tmp_path / "m")
    directory.save_results(manifest, {"accuracy": 0.9})
    assert directory.results()["accuracy"] == 0.9
    manifest = directory.save_layer(manifest, 1, layer_arrays(0.3))
    assert directory.results() is None  # computed from arrays the manifest no longer names


def test_format_1_dirs_are_read_and_upgraded_on_the_next_commit(tmp_path):
    model, params = digits_model()
    path = tmp_path / "old"
    path.mkdir()
    checkpoint.write_npz(path / "layer1.npz", layer_arrays(0.5))
    (path / "manifest.json").write_text(json.dumps({
        "format_version": 1, "model": model.to_dict(), "parameters": params, "seed": 0,
        "dataset": "digits", "backend": "nest", "trained": {"layers": [1], "svm": False}}))
    directory = ModelDir(path)
    np.testing.assert_array_equal(directory.load_layer(1)["kernels"], 0.5)
    manifest = directory.save_svm(directory.manifest(), svm_arrays(model))
    on_disk = json.loads(directory.manifest_path.read_text())
    assert on_disk["format_version"] == checkpoint.FORMAT_VERSION
    assert on_disk["files"]["layer1"]["name"] == "layer1.npz" and manifest["trained"]["svm"]


# -- crashes ----------------------------------------------------------------------------

_SAVE = textwrap.dedent("""
    import sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    from spinnconv.checkpoint import ModelDir
    from test_config_readout_checkpoint import layer_arrays
    directory = ModelDir({path!r})
    directory.save_layer(directory.manifest(), 1, layer_arrays(0.125))
""")


def _save_in_subprocess(path: Path, fault: str | None) -> subprocess.CompletedProcess:
    code = _SAVE.format(repo=str(REPO), tests=str(REPO / "tests"), path=str(path))
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("step", [s for s in FAULT_STEPS if s != "results-temp"])
def test_sigkill_at_each_step_leaves_the_before_or_the_after_state(tmp_path, step):
    before_dir, _ = trained_dir(tmp_path / "before")
    after_dir = tmp_path / "after"
    shutil.copytree(before_dir.path, after_dir)
    assert _save_in_subprocess(after_dir, None).returncode == 0
    before, after = tree(before_dir.path), tree(after_dir)
    crashed = tmp_path / "crashed"
    shutil.copytree(before_dir.path, crashed)
    result = _save_in_subprocess(crashed, step)
    assert result.returncode == -signal.SIGKILL, result.stderr
    manifest = json.loads((crashed / "manifest.json").read_text())
    state = "after" if manifest == json.loads(after["manifest.json"]) else "before"
    if state == "before":
        assert manifest == json.loads(before["manifest.json"])
    # what the manifest names is intact; the next writer removes the leftovers
    directory = ModelDir(crashed)
    kernels = directory.load_layer(1)["kernels"]
    np.testing.assert_array_equal(kernels, 0.5 if state == "before" else 0.125)
    assert directory.manifest()["trained"]["svm"] is (state == "before")
    with directory.lock():
        pass
    assert tree(crashed) == (before if state == "before" else after), step
    expected = {"array-temp": "before", "array-renamed": "before", "manifest-temp": "before",
                "manifest-renamed": "after"}[step]
    assert state == expected


def test_sigkill_while_writing_results_keeps_the_old_results(tmp_path):
    directory, manifest = trained_dir(tmp_path / "m")
    directory.save_results(manifest, {"accuracy": 0.5})
    before = tree(directory.path)
    code = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(REPO)!r}]
        from spinnconv.checkpoint import ModelDir
        d = ModelDir({str(directory.path)!r})
        d.save_results(d.manifest(), {{"accuracy": 0.9}})
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,
                            env={**os.environ, FAULT_ENV: "results-temp"}, check=False)
    assert result.returncode == -signal.SIGKILL
    assert directory.results()["accuracy"] == 0.5
    with directory.lock():
        pass
    assert tree(directory.path) == before


# -- disk full --------------------------------------------------------------------------

@pytest.mark.parametrize("failing_file", [".layer1-", ".manifest.json."])
def test_disk_full_during_a_commit_changes_nothing(tmp_path, monkeypatch, failing_file):
    directory, manifest = trained_dir(tmp_path / "m")
    before = tree(directory.path)
    real_fsync = os.fsync
    failed = []

    def fsync(fd):
        if failing_file in os.readlink(f"/proc/self/fd/{fd}"):
            failed.append(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    with pytest.raises(CheckpointError, match="No space left"):
        directory.save_layer(manifest, 1, layer_arrays(0.75))
    monkeypatch.undo()
    assert failed
    with directory.lock():
        pass
    assert tree(directory.path) == before
    np.testing.assert_array_equal(directory.load_layer(1)["kernels"], 0.5)
    assert directory.manifest()["trained"]["svm"] is True
    directory.save_layer(manifest, 1, layer_arrays(0.75))  # with space again it works
    np.testing.assert_array_equal(directory.load_layer(1)["kernels"], 0.75)


# -- the lock ---------------------------------------------------------------------------

_HOLD = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{repo!r}]
    from spinnconv.checkpoint import model_dir_lock
    with model_dir_lock({path!r}, ["main.py", "--mode", "training", "--layer", "1"]):
        print("held", flush=True)
        time.sleep(60)
""")


def test_second_writer_is_refused_naming_the_holder_and_a_dead_holder_frees_it(tmp_path):
    directory, manifest = trained_dir(tmp_path / "m")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD.format(repo=str(REPO),
                                                                  path=str(directory.path))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ModelDirBusy, match=rf"in use by pid {holder.pid} "
                           r"\(main.py --mode training --layer 1\)"):
            directory.save_svm(manifest, svm_arrays(digits_model()[0]))
    finally:
        holder.kill()
        holder.wait()
    with directory.lock(["again"]):  # the kernel released the dead holder's lock
        assert json.loads((directory.path / ".lock").read_text())["argv"] == ["again"]


def test_a_commit_on_a_manifest_changed_underneath_is_refused(tmp_path):
    directory, manifest = trained_dir(tmp_path / "m")
    directory.save_layer(manifest, 1, layer_arrays(0.2))  # another command committed
    with pytest.raises(ModelDirBusy, match="changed by another command"):
        directory.save_svm(manifest, svm_arrays(digits_model()[0]))


def test_the_lock_holder_removes_leftovers_and_keeps_everything_else(tmp_path):
    directory, _ = trained_dir(tmp_path / "m")
    keep = tree(directory.path)
    (directory.path / ".layer1-abc.npz.x1.tmp").write_bytes(b"half")
    (directory.path / ".manifest.json.y2.tmp").write_bytes(b"half")
    (directory.path / "layer1-0123456789abcdef.npz").write_bytes(b"unreferenced")
    (directory.path / "notes.txt").write_text("mine")
    with directory.lock():
        pass
    assert tree(directory.path) == {**keep, "notes.txt": b"mine"}


# -- damage -----------------------------------------------------------------------------

def _rewrite_manifest(directory: ModelDir, change) -> None:
    manifest = json.loads(directory.manifest_path.read_text())
    change(manifest)
    directory.manifest_path.write_text(json.dumps(manifest))


def _replace_array(directory: ModelDir, role: str, data: bytes) -> None:
    """Put ``data`` in place of ``role``'s file and re-hash it in the manifest, as a
    consistent but wrong dir would be."""
    def change(manifest):
        manifest["files"][role]["sha256"] = checkpoint.sha256(data)
        (directory.path / manifest["files"][role]["name"]).write_bytes(data)
        for entry in manifest["files"].values():
            if role in entry.get("inputs", {}):
                entry["inputs"][role] = checkpoint.sha256(data)
    _rewrite_manifest(directory, change)


@pytest.mark.parametrize("content,words", [
    (os.urandom(300), "not valid JSON"),
    (b"[1, 2, 3]", "JSON list"),
    (b'{"format_version": 2}', "has no 'model'"),
    (b'{"format_version": "2"}', "format_version"),
])
def test_broken_manifests_are_reported_as_damage(tmp_path, content, words):
    directory, _ = trained_dir(tmp_path / "m")
    directory.manifest_path.write_bytes(content)
    with pytest.raises(ModelDirDamaged, match=f"model dir .* is damaged: .*{words}"):
        directory.manifest()


@pytest.mark.parametrize("change,words", [
    (lambda m: m.pop("files"), "has no 'files'"),
    (lambda m: m["trained"].update(layers=[1, 2]), "trained layers"),
    (lambda m: m["trained"].update(svm="yes"), "'trained' must be"),
    (lambda m: m["files"].pop("svm"), "names files"),
    (lambda m: m["files"]["layer1"].update(name="../../etc/passwd"), "names '../../etc/passwd'"),
    (lambda m: m["files"]["svm"]["inputs"].update(layer1="0" * 64), "trained on another layer1"),
    (lambda m: m["model"]["layers"][0].update(kind="dense"), "unknown layer kind"),
])
def test_inconsistent_manifests_are_reported_as_damage(tmp_path, change, words):
    directory, _ = trained_dir(tmp_path / "m")
    _rewrite_manifest(directory, change)
    with pytest.raises(ModelDirDamaged, match=words):
        directory.manifest()


def test_a_changed_array_fails_its_hash(tmp_path):
    directory, manifest = trained_dir(tmp_path / "m")
    path = directory.path / manifest["files"]["layer1"]["name"]
    checkpoint.write_npz(path, layer_arrays(0.9))
    with pytest.raises(ModelDirDamaged, match="does not match its SHA-256"):
        directory.load_layer(1)
    path.unlink()
    with pytest.raises(ModelDirDamaged, match="is missing"):
        directory.load_layer(1)


def _npz(arrays) -> bytes:
    return checkpoint.npz_bytes(arrays)


@pytest.mark.parametrize("arrays,words", [
    (layer_arrays(0.5, n_kernels=7), "has 7 kernels, the model has 16"),
    ({**layer_arrays(), "kernels": np.full((16, 3, 3, 2), np.nan)}, "NaN"),
    ({**layer_arrays(), "kernels": np.ones((16, 3, 3, 1))}, "1 input channels, the model has 2"),
    ({**layer_arrays(), "kernels": np.ones((16, 5, 5, 2))}, "5×5, the model's are 3×3"),
    ({**layer_arrays(), "kernels": np.ones((16, 9))}, "shape"),
    ({**layer_arrays(), "kernels": np.array(["a"] * 16)}, "not a number"),
    ({"kernels": np.ones((16, 3, 3, 2)), "convergence": np.ones(2)}, "no 'weight_na'"),
    ({**layer_arrays(), "weight_na": np.asarray(-1.0)}, "weight_na"),
])
def test_arrays_that_do_not_fit_the_model_are_reported(tmp_path, arrays, words):
    directory, _ = trained_dir(tmp_path / "m")
    _replace_array(directory, "layer1", _npz(arrays))
    with pytest.raises(ModelDirDamaged, match=f"is damaged: .*{words}"):
        directory.load_layer(1)


def test_svm_of_the_wrong_shape_is_reported(tmp_path):
    directory, _ = trained_dir(tmp_path / "m")
    arrays = svm_arrays(digits_model()[0])
    _replace_array(directory, "svm", _npz({**arrays, "coef": np.zeros((10, 7))}))
    with pytest.raises(ModelDirDamaged, match=r"coef has shape \(10, 7\), the model needs"):
        directory.load_svm()


@pytest.mark.parametrize("data", [os.urandom(500), b"PK\x03\x04garbage", b""])
def test_garbage_npz_is_damage_without_numpy_hints(tmp_path, data):
    directory, _ = trained_dir(tmp_path / "m")
    _replace_array(directory, "layer1", data)
    with pytest.raises(ModelDirDamaged) as info:
        directory.load_layer(1)
    assert "not a valid .npz" in str(info.value) and "allow_pickle" not in str(info.value)


def test_pickled_object_arrays_are_refused_without_numpy_hints(tmp_path):
    import io

    directory, _ = trained_dir(tmp_path / "m")
    buffer = io.BytesIO()
    np.savez(buffer, kernels=np.array([{"a": 1}], dtype=object))
    _replace_array(directory, "layer1", buffer.getvalue())
    with pytest.raises(ModelDirDamaged) as info:
        directory.load_layer(1)
    assert "Python objects" in str(info.value) and "allow_pickle" not in str(info.value)


def test_npz_holding_one_array_is_damage(tmp_path):
    import io

    directory, _ = trained_dir(tmp_path / "m")
    buffer = io.BytesIO()
    np.save(buffer, np.ones(3))
    _replace_array(directory, "layer1", buffer.getvalue())
    with pytest.raises(ModelDirDamaged, match="not an .npz archive|not a valid .npz"):
        directory.load_layer(1)


def test_library_logs_stay_off_stderr(capsys):
    import logging

    from spinnconv import logs

    logs.quiet_libraries(capture_logs=True)
    try:
        raise RuntimeError("board gone")
    except RuntimeError:
        logging.getLogger("spynnaker.pyNN").exception("Calling end before setup makes no sense")
    assert capsys.readouterr().err == ""
    assert any("Calling end before setup" in line for line in logs.library_log.lines)
    assert any("RuntimeError: board gone" in line for line in logs.library_log.lines)


def test_lock_file_descriptor_is_not_inherited(tmp_path):
    directory, _ = trained_dir(tmp_path / "m")
    with directory.lock():
        handle = checkpoint._held[directory.path.resolve()][0]
        assert not os.get_inheritable(handle)


def test_a_reader_overtaken_by_a_commit_is_told_to_retry_not_that_the_dir_is_damaged(tmp_path):
    directory, old = trained_dir(tmp_path / "m")
    directory.save_layer(old, 1, layer_arrays(0.2))  # the commit removes the old layer file
    with pytest.raises(ModelDirBusy, match="changed by another command while this one read"):
        directory.load_layer(1, old)
    np.testing.assert_array_equal(directory.load_layer(1)["kernels"], 0.2)
