"""The Poisson code: seeded random spike trains, per image, reachable from --params."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO, accuracy_of, run_cli

from spinnconv import encoding as en
from spinnconv.checkpoint import ModelDir
from spinnconv.config import resolve_parameters
from spinnconv.errors import UsageError
from spinnconv.logs import program_name

PARAMS = {"dog": False, "dog_size": 3, "dog_sigma_center": 0.5, "dog_sigma_surround": 1.0,
          "code": "poisson", "presentation_ms": 20.0, "timestep_ms": 1.0,
          "latency_threshold": 0.1, "max_rate_hz": 500.0, "seed": 5}


def _images(n: int = 6) -> np.ndarray:
    return (np.random.default_rng(0).random((n, 8, 8)) * 255).astype(np.uint8)


def _same(a, b) -> bool:
    return a.n_images == b.n_images and all(
        np.array_equal(getattr(a, name), getattr(b, name)) for name in
        ("image", "neuron", "time_ms"))


def test_poisson_spikes_are_random_around_the_rate_and_seeded():
    bright = np.full((2, 10, 10), 255, dtype=np.uint8)  # p = 0.5 per 1 ms step, 20 steps
    spikes = en.encode(bright, PARAMS)
    counts = spikes.counts()
    assert 9.0 < counts.mean() < 11.0 and counts.std() > 1.0  # a regular train has std 0
    assert spikes.time_ms.max() < PARAMS["presentation_ms"]
    assert np.allclose(spikes.time_ms, np.round(spikes.time_ms))  # on the time grid
    np.testing.assert_array_equal(counts[0], counts[1])  # same image: same draws
    assert _same(spikes, en.encode(bright, PARAMS))
    assert not _same(spikes, en.encode(bright, {**PARAMS, "seed": 6}))
    assert not _same(spikes, en.encode(bright, {**PARAMS, "code": "rate"}))


def test_an_images_poisson_spikes_do_not_depend_on_the_batch():
    images = _images()
    whole = en.encode(images, PARAMS)
    for start, stop in ((0, 1), (2, 5), (5, 6)):
        assert _same(en.encode(images[start:stop], PARAMS), whole.select(range(start, stop)))


def test_poisson_needs_a_seed_and_a_valid_rate():
    params = {k: v for k, v in PARAMS.items() if k != "seed"}
    with pytest.raises(UsageError, match="needs a 'seed'"):
        en.encode(_images(1), params)
    generator = np.random.default_rng(1)  # an explicit generator replaces the seed
    assert en.encode(_images(2), params, rng=generator).n_spikes > 0
    with pytest.raises(UsageError, match="'max_rate_hz' must be at most 1000 Hz"):
        resolve_parameters("digits", {"code": "poisson", "max_rate_hz": 2000.0})
    assert resolve_parameters("digits", {"code": "poisson"})["code"] == "poisson"


def test_program_name_is_the_command_the_user_ran():
    assert program_name("main.py") == "python main.py"
    assert program_name("/opt/spinnconv/main.py") == "python /opt/spinnconv/main.py"
    assert program_name("/venv/bin/spinnconv") == "spinnconv"


def test_cli_trains_and_tests_with_the_poisson_code(tmp_path):
    """``--params {"code": "poisson"}`` runs the whole pipeline; the seed fixes the
    kernels; the log names the command as run."""
    params = tmp_path / "poisson.json"
    params.write_text(json.dumps({"code": "poisson", "train_patches": 300,
                                  "diagnostics_images": 0}))
    kernels = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        model_dir = tmp_path / name
        result = run_cli("--mode", "all", "--backend", "batched", "--dataset", "digits",
                         "--params", str(params), "--seed", seed, "--train-examples", "120",
                         "--test-examples", "60", "--no-plots", "--model-dir", str(model_dir),
                         timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        assert accuracy_of(result) > 0.5
        assert ModelDir(model_dir).manifest()["parameters"]["code"] == "poisson"
        kernels[name] = ModelDir(model_dir).load_layer(1)["kernels"]
    np.testing.assert_array_equal(kernels["a"], kernels["b"])
    assert not np.allclose(kernels["a"], kernels["c"])
    log = next((tmp_path / "a" / "logs").glob("*_all.log")).read_text()
    assert log.startswith(f"command: python {REPO / 'main.py'} --mode all ")
    record = json.loads((tmp_path / "a" / "record.json").read_text())
    assert record["command"].startswith(f"python {REPO / 'main.py'} --mode all ")
