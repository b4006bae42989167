"""The batched engine against pyNN.nest: the same spikes, the same STDP weights.

The engine reproduces NEST's iaf_psc_exp and stdp_synapse in NEST's arithmetic
order, so these tests ask for identical spike trains and weights equal to float
rounding (in practice bit-identical), not for statistical agreement.
"""

import numpy as np
import pytest

from spinnconv.backends import Connections, STDPRule, get_backend
from spinnconv.config import build_model, resolve_parameters
from spinnconv.datasets import load_digits_dataset
from spinnconv.encoding import encode
from spinnconv.network import run_images
from spinnconv.spikes import LayerSpikes
from spinnconv.training import calibrate_weight_na, sample_patches, train_conv_layer

pytest.importorskip("numba")
pytest.importorskip("pyNN.nest")

NEURON = {"cm": 1.0, "tau_m": 10.0, "tau_syn_E": 2.0, "tau_syn_I": 2.0, "tau_refrac": 15.0,
          "v_rest": -65.0, "v_reset": -65.0, "v_thresh": -55.0, "i_offset": 0.0}


def run_pairing(backend_name, pre_times, teacher_times, w0=0.025, w_max=0.05,
                dependence="additive"):
    """One post neuron driven by a static 'teacher', plastic synapses from
    ``pre_times``: (post spike times, final weights in nA)."""
    backend = get_backend(backend_name)
    backend.setup(1.0, 1)
    pre = backend.spike_source([np.asarray(t, float) for t in pre_times], "pre")
    teacher = backend.spike_source([np.asarray(teacher_times, float), np.array([])], "teacher")
    post = backend.population(1, NEURON, "post")
    n = len(pre_times)
    rule = STDPRule(20.0, 20.0, 0.1, 0.12, 0.0, w_max, dependence)
    projection = backend.connect(pre, post, Connections.build(
        np.arange(n), np.zeros(n, int), np.full(n, w0), 1.0), stdp=rule)
    backend.connect(teacher, post, Connections.build([0], [0], [50.0], 1.0))
    backend.record(post)
    backend.run(max(max(map(max, pre_times)), max(teacher_times)) + 10.0)
    _, times = backend.spikes(post)
    weights = backend.weights(projection).ravel()
    backend.end()
    return np.sort(times), weights


@pytest.mark.parametrize("dependence", ["additive", "multiplicative"])
def test_stdp_pairs_equal_nest_stdp_synapse(dependence):
    """Random trains and trains placed -2..+3 ms around the post spikes (Δt = 0
    included: NEST's own treatment of it is reproduced too)."""
    rng = np.random.default_rng(3)
    teacher = np.arange(10.0, 300.0, 23.0)
    post_ms = teacher + 2.0
    trains = [np.unique(np.round(rng.uniform(2.0, 300.0, rng.poisson(12)))) for _ in range(12)]
    trains = [t if t.size else np.array([150.0]) for t in trains]
    trains += [post_ms[:4] + shift for shift in (-2, -1, 0, 1, 2, 3)]
    nest_times, nest_weights = run_pairing("nest", trains, teacher, dependence=dependence)
    times, weights = run_pairing("batched", trains, teacher, dependence=dependence)
    np.testing.assert_array_equal(nest_times, post_ms)
    np.testing.assert_array_equal(times, nest_times)
    assert np.abs(nest_weights - 0.025).max() > 1e-3  # they did learn
    np.testing.assert_allclose(weights, nest_weights, rtol=1e-12, atol=0)


def _digits(n_images, architecture=None, seed=0):
    overrides = {"architecture": architecture} if architecture else {}
    params = resolve_parameters("digits", overrides)
    data = load_digits_dataset()
    model = build_model(params, data.image_shape)
    spikes = encode(data.test_images[:n_images], params)
    return params, model, spikes


def _random_kernels(model, spikes, params, seed=0):
    """Sparse random kernels; layer 1 calibrated as training calibrates it."""
    rng = np.random.default_rng(seed)
    kernels = {}
    for number, position in enumerate(model.conv_layer_positions):
        layer = model.layers[position]
        shape = (layer.n_kernels, *layer.kernel_shape, model.input_shape_of(position)[2])
        kernel = rng.random(shape) * (rng.random(shape) < 0.5)
        weight = (calibrate_weight_na(spikes.counts(), spikes.shape, layer, kernel, params)
                  if number == 0 else 1.5)
        kernels[position] = kernel * weight
    return kernels


def _assert_same_spikes(ours: list[LayerSpikes], nest: list[LayerSpikes]):
    assert len(ours) == len(nest)
    for a, b in zip(ours, nest, strict=True):
        assert b.n_spikes > 50  # the layer is active: a real comparison
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.neuron, b.neuron)
        np.testing.assert_array_equal(a.time_ms, b.time_ms)


def test_conv_pool_spikes_equal_nest():
    """Digits conv (16 × 3×3, lateral WTA) → pool 2×2, 30 images back to back:
    every spike of both layers at the same time."""
    params, model, spikes = _digits(30)
    kernels = _random_kernels(model, spikes, params)
    ours = run_images(get_backend("batched"), model, kernels, params, spikes, quiet=True,
                      record_all=True)
    nest = run_images(get_backend("nest"), model, kernels, params, spikes, quiet=True,
                      record_all=True)
    _assert_same_spikes(ours, nest)


def test_two_conv_layers_spikes_equal_nest():
    """conv → pool → conv → pool (depth): every layer's spikes equal NEST's."""
    architecture = [
        {"kind": "conv", "n_kernels": 8, "kernel_shape": [3, 3], "padding": 1},
        {"kind": "pool", "pool_shape": [2, 2]},
        {"kind": "conv", "n_kernels": 6, "kernel_shape": [3, 3], "padding": 1},
        {"kind": "pool", "pool_shape": [2, 2]},
        {"kind": "classifier"},
    ]
    from spinnconv.backends.batched import simulate_counts

    params, model, spikes = _digits(20, architecture)
    kernels = _random_kernels(model, spikes, params, seed=1)
    ours = run_images(get_backend("batched"), model, kernels, params, spikes, quiet=True,
                      record_all=True)
    nest = run_images(get_backend("nest"), model, kernels, params, spikes, quiet=True,
                      record_all=True)
    _assert_same_spikes(ours, nest)
    for upto in (3, 4):  # the feature path, into and out of the second conv layer
        np.testing.assert_array_equal(
            simulate_counts(model, kernels, params, spikes, upto=upto, block_images=20),
            nest[upto - 1].counts(dtype=np.uint16))


def test_block_counts_equal_nest_blocks():
    """simulate_counts (blocks of 7 images, in parallel, each from rest) counts what
    NEST counts when each block is simulated by a fresh network, as count_spikes
    does; the carry-over between images within a block is kept."""
    from spinnconv.backends.batched import simulate_counts

    params, model, spikes = _digits(25)
    kernels = _random_kernels(model, spikes, params, seed=2)
    counts = simulate_counts(model, kernels, params, spikes, block_images=7)
    expected = np.concatenate([
        run_images(get_backend("nest"), model, kernels, params,
                   spikes.select(np.arange(start, min(start + 7, 25))),
                   quiet=True).counts(dtype=np.uint16)
        for start in range(0, 25, 7)])
    assert counts.dtype == np.uint16 and counts.sum() > 100
    np.testing.assert_array_equal(counts, expected)
    # one block of all 25 images differs: carry-over from image to image is real
    whole = simulate_counts(model, kernels, params, spikes, block_images=25)
    assert not np.array_equal(whole, counts)


def test_count_spikes_on_batched_equals_one_engine_call(tmp_path):
    """count_spikes on the batched backend (engine calls of ``engine_threads()``
    blocks, each call's images encoded just before it) counts what one
    simulate_counts call over all images counts, for the last layer and for the
    layers read side by side."""
    from spinnconv.backends.batched import engine_threads, simulate_counts
    from spinnconv.checkpoint import ModelDir
    from spinnconv.pipeline import Run, count_spikes

    params, model, _ = _digits(1)
    params = {**params, "block_images": 6}
    per_call = 6 * engine_threads()
    images = load_digits_dataset().test_images[:per_call * 3 + 5]  # 4 engine calls
    spikes = encode(images, params)
    kernels = _random_kernels(model, spikes, params, seed=3)
    run = Run(params=params, dataset="digits", data_dir=tmp_path,
              model_dir=ModelDir(tmp_path / "m"), backend="batched", quiet=True)
    expected = simulate_counts(model, kernels, params, spikes, block_images=6)
    assert expected.sum() > 100
    np.testing.assert_array_equal(count_spikes(run, model, kernels, images, ""), expected)
    positions = [0, len(model.spiking_layers) - 1]
    both = count_spikes(run, model, kernels, images, "", positions=positions)
    np.testing.assert_array_equal(both, np.concatenate(
        [simulate_counts(model, kernels, params, spikes, upto=1, block_images=6), expected],
        axis=1))


def test_engine_threads_start_on_the_threading_layer_that_spares_nest():
    """engine_threads() as the first numba call of a process (as count_spikes makes
    it) starts numba's threads on workqueue: OpenMP's, after a NEST kernel, crash
    NEST's next ResetKernel."""
    import os
    import subprocess
    import sys

    environment = {key: value for key, value in os.environ.items()
                   if key != "NUMBA_THREADING_LAYER"}
    result = subprocess.run(
        [sys.executable, "-c", "from spinnconv.backends.batched import engine_threads; "
         "engine_threads(); import numba; print(numba.threading_layer())"],
        capture_output=True, text=True, env=environment, timeout=120, check=True)
    assert result.stdout.strip() == "workqueue"


def test_stdp_training_equals_nest():
    """train_conv_layer (patch network, STDP, WTA, homeostasis, a fresh network per
    chunk) learns the same kernels on the batched engine as on NEST."""
    params, model, spikes = _digits(60)
    params = {**params, "train_chunk_patches": 40}
    layer = model.layers[0]
    patches = sample_patches(spikes, layer, 120, np.random.default_rng(4),
                             int(params["patch_min_spikes"]))
    results = {name: train_conv_layer(get_backend(name), patches, layer.n_kernels, params,
                                      np.random.default_rng(5), quiet=True)
               for name in ("batched", "nest")}
    ours, nest = results["batched"], results["nest"]
    np.testing.assert_array_equal(ours.wins, nest.wins)
    assert nest.wins.sum() > 20
    np.testing.assert_allclose(ours.kernels, nest.kernels, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.thresholds_mv, nest.thresholds_mv, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.convergence, nest.convergence, rtol=1e-9)
    assert ours.v_trace_mv.shape[1] == nest.v_trace_mv.shape[1] == 3


def test_changing_a_network_after_run_is_refused():
    from spinnconv.errors import UsageError

    backend = get_backend("batched")
    backend.setup(1.0, 0)
    source = backend.spike_source([np.array([5.0])], "in")
    population = backend.population(1, NEURON, "out")
    backend.connect(source, population, Connections.build([0], [0], [1.0], 1.0))
    backend.run(10.0)
    with pytest.raises(UsageError, match="after run"):
        backend.population(1, NEURON, "more")


def test_cli_all_on_batched_with_board_weights(tmp_path):
    """--mode all --backend batched --emulate-spinnaker: trains, fits and tests with
    no other simulator, on the board's 16-bit weights."""
    import json

    from spinnconv import cli

    params = tmp_path / "params.json"
    params.write_text(json.dumps({"train_patches": 300, "train_chunk_patches": 100}))
    model_dir = tmp_path / "model"
    status = cli.main(["--mode", "all", "--dataset", "digits", "--backend", "batched",
                       "--emulate-spinnaker", "--train-examples", "300", "--test-examples",
                       "60", "--quiet", "--no-plots", "--model-dir", str(model_dir),
                       "--data-dir", str(tmp_path / "data"), "--params", str(params)])
    assert status == 0
    results = json.loads((model_dir / "results.json").read_text())
    assert results["backend"] == "batched" and results["n_test"] == 60
    assert results["accuracy"] > 0.5
    logs = "".join(p.read_text() for p in (model_dir / "logs").iterdir())
    assert "--emulate-spinnaker on batched" in logs
