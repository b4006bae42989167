"""SpiNNaker through sPyNNaker: one module per job.

* :mod:`.backend` -- :class:`SpiNNakerBackend`, the ``pyNN.spiNNaker`` backend;
* :mod:`.machine` -- machine options, the run-private config, reachability;
* :mod:`.quantisation` -- weights as the board stores them (16-bit), and the
  functions that let a software backend emulate it;
* :mod:`.native` -- a conv net on sPyNNaker's local-only convolution;
* :mod:`.resources` -- what a mapped network takes (cores, SDRAM, routes), as tables;
* :mod:`.errors` -- sPyNNaker's exceptions as one line naming the layer;
* :mod:`.deploy` -- :func:`deploy`, mapping a trained network and reporting it.

Importing this package does not import sPyNNaker; using the backend does.
"""

from .backend import SpiNNakerBackend
from .deploy import CONV_MODES, deploy, probe_spike_times
from .errors import translate_spinnaker_error
from .native import (
    DEFAULT_NATIVE_ATOMS_PER_CORE,
    build_native_network,
    native_atoms_per_core,
    native_problems,
)
from .quantisation import (
    board_training_options,
    max_summed_weight_equal_delays,
    plastic_weight_step_on_board,
    plastic_weights_on_board,
    quantise_weights_like_spinnaker,
    ring_buffer_left_shift,
    spinnaker_quantisation,
    spinnaker_stdp_amplitudes,
    spinnaker_weight_quantiser,
    spinnaker_weight_scale,
)
from .resources import format_report, format_resource_report

__all__ = [
    "CONV_MODES",
    "DEFAULT_NATIVE_ATOMS_PER_CORE",
    "SpiNNakerBackend",
    "board_training_options",
    "build_native_network",
    "deploy",
    "format_report",
    "format_resource_report",
    "max_summed_weight_equal_delays",
    "native_atoms_per_core",
    "native_problems",
    "plastic_weight_step_on_board",
    "plastic_weights_on_board",
    "probe_spike_times",
    "quantise_weights_like_spinnaker",
    "ring_buffer_left_shift",
    "spinnaker_quantisation",
    "spinnaker_stdp_amplitudes",
    "spinnaker_weight_quantiser",
    "spinnaker_weight_scale",
    "translate_spinnaker_error",
]
