"""Default parameters of spinnconv: edit here, or override per run with ``--params FILE``.

``DEFAULTS`` apply to every dataset; ``PER_DATASET[name]`` overrides them for one
dataset. A ``--params`` file is a JSON object whose keys are names of
``DEFAULTS`` (anything else is refused); dict-valued parameters (``neuron``,
``stdp``) are merged key by key, everything else is replaced.

Units are in the names: ``_ms`` milliseconds, ``_hz`` hertz, ``_na`` nanoamperes
(weights of current-based synapses), ``_mv`` millivolts.
"""

DEFAULTS = {
    # --- simulation --------------------------------------------------------
    "seed": 0,                    # patch sampling, initial weights, Poisson codes
    "timestep_ms": 1.0,           # 1 ms is what SpiNNaker runs
    "presentation_ms": 20.0,      # input spikes of an image lie in [0, presentation_ms)
    "rest_ms": 30.0,              # silent gap after each image: membranes and currents decay
    "chunk_images": 200,          # images simulated per run() call (progress, bounded memory)
    "block_images": 1000,         # feature extraction: images per freshly built network, the
                                  # unit of work of a --jobs process (bounded memory)
    # --- encoding (first stage) --------------------------------------------
    "dog": True,                  # DoG ON/OFF filtering -> 2 input channels
    "dog_size": 7,                # DoG kernel side (odd), pixels
    "dog_sigma_center": 1.0,      # pixels
    "dog_sigma_surround": 2.0,    # pixels
    "code": "rate",               # "rate" (regular spike trains) or "latency" (one spike)
    "max_rate_hz": 500.0,         # rate code: firing rate of an input of intensity 1
    "latency_threshold": 0.1,     # latency code: inputs below this do not spike
    # --- neurons (PyNN IF_curr_exp parameters) -------------------------------
    "neuron": {
        "cm": 1.0,                # nF
        "tau_m": 10.0,            # ms
        "tau_syn_E": 2.0,         # ms
        "tau_syn_I": 2.0,         # ms
        "tau_refrac": 2.0,        # ms
        "v_rest": -65.0,          # mV
        "v_reset": -65.0,         # mV
        "v_thresh": -55.0,        # mV
        "i_offset": 0.0,          # nA
    },
    # --- network weights ----------------------------------------------------
    "calibration_percentile": 90.0,         # conv weights are calibrated after training so
    "calibration_threshold_crossings": 2.0,  # that this percentile of drive crosses threshold
                                             # this many times (see training.calibrate_weight_na)
    "target_firing_fraction": [None],  # per conv layer (the last entry for deeper ones):
                                  # weight calibrated so this fraction of the layer's neurons
                                  # fires per image (NumPy IF_curr_exp model of the layer on
                                  # its recorded input), e.g. [null, 0.05]; None: the
                                  # percentile rule (the default: a calibrated layer 2 does
                                  # not yet read out better, see docs/deep_layers.md)
    "calibration_images": 300,    # images of the layer's input the firing calibration uses
    "lateral_inhibition_na": 4.0, # WTA between maps at one position (0 disables)
    "pool_weight_na": 12.0,        # one spike in a pooling window makes the pool neuron fire
    "synapse_delay_ms": 1.0,
    # --- STDP training of one conv layer (patch network) ---------------------
    "stdp": {
        "tau_plus_ms": 20.0,
        "tau_minus_ms": 20.0,
        "a_plus": 0.02,           # fraction of w_max per pair (w_max is calibrated per layer)
        "a_minus": 0.024,
        "weight_dependence": "additive",  # hard bounds: selective kernels
    },
    "train_patches": 2000,        # windows presented per conv layer
    "train_patches_factor_by_layer": [],  # conv layer N learns on train_patches × entry N
                                  # (the last entry for deeper layers; []: × 1)
    "train_chunk_patches": 100,   # patches between weight normalisation / homeostasis steps
    "patch_min_spikes": 4,        # windows with fewer input spikes are not presented
    "patch_inhibition_na": 10.0,  # WTA among the kernels of the patch network
    "kernel_l1": 0.35,            # kernels are rescaled to this mean weight (of w_max)
    "homeostasis_mv": 0.5,        # threshold change per chunk for rate deviations (0: off)
    "random_kernels": False,      # ablation: keep the random initial kernels (no STDP)
    "layer_training": [],         # per conv layer (the last entry for deeper ones): an object
                                  # overriding this section's values and the calibration's for
                                  # that layer's training, e.g. [{}, {"kernel_l1": 0.1}];
                                  # "patch_neuron": neuron values of its patch network only
    # --- the user's own data (--dataset idx | npz | folder | events) ---------
    "data": {
        "grey": False,            # colour images averaged to one grey channel (else K channels)
        "test_fraction": 0.2,     # folder without train/ and test/: seeded stratified split
        "sensor_height": 0,       # events: sensor size in pixels (0: largest coordinate + 1)
        "sensor_width": 0,
        "event_time_scale": 1.0,  # events: recording ms -> presentation ms (0.2: 300 -> 60)
        "event_downsample": 1,    # events: tonic Downsample by this integer factor (1: off)
        "event_denoise_ms": 0.0,  # events: tonic Denoise filter time (0: off)
    },
    # --- readout ------------------------------------------------------------
    "svm_c": 0.01,                # LinearSVC regularisation
    "svm_feature_transform": "sqrt",  # spike counts -> sqrt (variance-stabilising), log1p, none
    "diagnostics_images": 1000,   # after training a layer: simulate it on this many training
                                  # images, score a linear readout of its pooled counts on a
                                  # held-out third (0 disables)
    # --- architecture: Conv/Pool layers after the encoder, then the classifier -------
    "architecture": [
        {"kind": "conv", "n_kernels": 16, "kernel_shape": [3, 3]},
        {"kind": "pool", "pool_shape": [2, 2]},
        {"kind": "classifier"},
    ],
}

PER_DATASET = {
    # event recordings (N-MNIST: 34×34, ~300 ms): ON/OFF events are the two input
    # channels, a recording's 300 ms are pressed into a 60 ms presentation
    "events": {
        "presentation_ms": 60.0,
        "data": {"event_time_scale": 0.2},
    },
    # scikit-learn's bundled 8×8 digits: small DoG, one conv layer
    "digits": {
        "dog_size": 3,
        "dog_sigma_center": 0.5,
        "dog_sigma_surround": 1.0,
        "train_patches": 2000,
        "architecture": [
            {"kind": "conv", "n_kernels": 16, "kernel_shape": [3, 3], "padding": 1},
            {"kind": "pool", "pool_shape": [2, 2]},
            {"kind": "classifier"},
        ],
    },
    # MNIST 28×28: DoG -> conv 30×5×5 -> pool 2×2 (12×12 per map) -> SVM on counts summed
    # over a two-level pyramid per map: 16 overlapping 6×6 windows (stride 2) and the
    # 16 cells of 3×3 (a second conv layer, Kheradpisheh-style, is possible but not yet
    # useful: see experiments/README.md)
    "mnist": {
        "train_patches": 3000,
        "train_patches_factor_by_layer": [1, 3],  # layer 2 and deeper: 3× the patches
        "architecture": [
            {"kind": "conv", "n_kernels": 30, "kernel_shape": [5, 5]},
            {"kind": "pool", "pool_shape": [2, 2]},
            {"kind": "classifier", "windows": [[6, 2], [3, 3]]},
        ],
    },
}

#: Values for images of other sizes (own data without an ``architecture`` in --params):
#: the first entry whose bound is >= the larger image side applies (sides of at least
#: ``MIN_IMAGE_SIDE`` pixels). Larger images need an architecture in --params.
MIN_IMAGE_SIDE = 5
BY_IMAGE_SIZE = [
    # up to 16×16 (8×8 digits-like): small DoG, conv 3×3 with padding, pool 2×2
    (16, {
        "dog_size": 3,
        "dog_sigma_center": 0.5,
        "dog_sigma_surround": 1.0,
        "architecture": [
            {"kind": "conv", "n_kernels": 16, "kernel_shape": [3, 3], "padding": 1},
            {"kind": "pool", "pool_shape": [2, 2]},
            {"kind": "classifier"},
        ],
    }),
    # up to 64×64 (28×28 MNIST-like): conv 30×5×5, pool 2×2, two-level window pyramid
    (64, {
        "train_patches": 3000,
        "architecture": [
            {"kind": "conv", "n_kernels": 30, "kernel_shape": [5, 5]},
            {"kind": "pool", "pool_shape": [2, 2]},
            {"kind": "classifier", "windows": [[6, 2], [3, 3]]},
        ],
    }),
]
