"""The defaults live in the package as typed dataclasses, checked once when resolved."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from spinnconv import defaults
from spinnconv.config import resolve_parameters, validate
from spinnconv.defaults import (
    DEFAULTS,
    NeuronParameters,
    Parameters,
    SimulationParameters,
    STDPParameters,
)
from spinnconv.errors import UsageError


def test_defaults_do_not_depend_on_the_current_directory(tmp_path):
    """A ``parameters.py`` (or none) in the working directory changes nothing."""
    (tmp_path / "parameters.py").write_text("raise RuntimeError('imported parameters.py')\n")
    script = ("import json, sys; from spinnconv.config import resolve_parameters; "
              "p = resolve_parameters('mnist'); assert 'parameters' not in sys.modules; "
              "print(json.dumps(p))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(resolve_parameters("mnist")))


def test_the_flat_dict_and_the_dataclasses_are_one_set_of_values():
    typed = Parameters.from_dict(DEFAULTS)
    assert typed == Parameters()
    assert typed.to_dict() == DEFAULTS
    assert isinstance(typed.neuron, NeuronParameters) and typed.neuron.v_thresh == -55.0
    assert isinstance(typed.stdp, STDPParameters) and typed.stdp.weight_dependence == "additive"
    assert isinstance(typed.simulation, SimulationParameters)
    assert typed.simulation.timestep_ms == DEFAULTS["timestep_ms"]
    flat = {f.name for group in (typed.simulation, typed.encoding, typed.network,
                                 typed.training, typed.readout)
            for f in dataclasses.fields(group)}
    assert flat | {"neuron", "stdp", "data", "architecture"} == set(DEFAULTS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.neuron.cm = 2.0


def test_resolved_parameters_are_typed_and_overrides_reach_the_fields():
    params = resolve_parameters("digits", {"neuron": {"tau_m": 15.0}, "code": "latency"})
    typed = validate(params)
    assert typed.neuron.tau_m == 15.0 and typed.neuron.cm == 1.0  # merged key by key
    assert typed.encoding.code == "latency"
    assert typed.encoding.dog_size == defaults.PER_DATASET["digits"]["dog_size"]
    assert typed.architecture == params["architecture"]


@pytest.mark.parametrize("params, message", [
    ({"stdp": {"weight_dependence": "hebbian"}},
     "'stdp.weight_dependence' must be one of: multiplicative, additive; got 'hebbian'"),
    ({"seed": 1.5}, "'seed' must be an integer"),
    ({"timestep_ms": 0}, "'timestep_ms' must be > 0"),
    ({"neuron": {"tau_refrac": -1.0}}, "'neuron.tau_refrac' must be >= 0"),
    ({"data": {"grey": 1}}, "'data.grey' must be true or false"),
    ({"svm_c": 1e12}, "'svm_c' must be at most 1e\\+09 in magnitude"),
    ({"target_firing_fraction": 0.1}, "'target_firing_fraction' must be a list"),
])
def test_each_field_is_checked_against_its_type_and_range(params, message):
    with pytest.raises(UsageError, match=message):
        resolve_parameters("digits", params)


def test_a_missing_value_is_named():
    broken = {name: value for name, value in DEFAULTS.items() if name != "rest_ms"}
    with pytest.raises(UsageError, match="parameter 'rest_ms' is missing"):
        Parameters.from_dict(broken)


def test_a_classifier_without_grid_or_windows_takes_the_default_readout():
    """A --params architecture's plain classifier reads out as the dataset's default
    does (MNIST: windows 6/2 + 4/2); "windows": null keeps one feature per neuron."""
    from spinnconv.config import resolve_parameters

    convs = [{"kind": "conv", "n_kernels": 30, "kernel_shape": [5, 5]},
             {"kind": "pool", "pool_shape": [2, 2]},
             {"kind": "conv", "n_kernels": 100, "kernel_shape": [5, 5]},
             {"kind": "pool", "pool_shape": [2, 2]}]
    plain = resolve_parameters("mnist", {"architecture": [*convs, {"kind": "classifier"}]})
    assert plain["architecture"][-1] == {"kind": "classifier", "windows": [[6, 2], [4, 2]]}
    per_neuron = resolve_parameters(
        "mnist", {"architecture": [*convs, {"kind": "classifier", "windows": None}]})
    assert per_neuron["architecture"][-1] == {"kind": "classifier", "windows": None}
    gridded = resolve_parameters("mnist", {"architecture": [*convs, {"kind": "classifier",
                                                                    "grid": 2}]})
    assert gridded["architecture"][-1] == {"kind": "classifier", "grid": 2}
    # own 28×28 data: the MNIST-like default's windows; digits' default has none
    own = resolve_parameters("npz", {"architecture": [*convs, {"kind": "classifier"}]},
                             image_shape=(28, 28))
    assert own["architecture"][-1]["windows"] == [[6, 2], [4, 2]]
    digits = resolve_parameters("digits", {"architecture": [convs[0], {"kind": "classifier"}]})
    assert digits["architecture"][-1] == {"kind": "classifier"}
    big = resolve_parameters("npz", {"architecture": [*convs, {"kind": "classifier"}]},
                             image_shape=(200, 200))  # no default for the size: as written
    assert big["architecture"][-1] == {"kind": "classifier"}
