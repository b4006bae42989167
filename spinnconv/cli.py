"""Command line: parse, validate, dispatch to :mod:`spinnconv.commands`, map errors to exit codes.

Exit codes: 0 success, 2 usage errors (bad options, wrong order of modes),
1 runtime failures (corrupt data, I/O, simulator), 130 interrupted.
Errors print one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import atexit
import re
import shutil
import sys
import time
from pathlib import Path

from . import interrupt
from .backends import BACKENDS
from .checkpoint import ModelDir, parameter_difference
from .config import (
    build_model,
    check_backend_options,
    override_parameters,
    read_params_file,
    resolve_parameters,
)
from .datasets import DATASETS, OWN_DATASETS
from .errors import ModelDirDamaged, SpinnconvError, UsageError
from .logs import library_log, program_name, quiet_libraries
from .validation import strict_int

MODES = ("loaddata", "training", "testing", "plot", "deploy", "info", "all")
#: Modes that write to the model dir (they hold its lock).
WRITING_MODES = ("training", "testing", "plot", "deploy", "all")
DEFAULT_DATASET, DEFAULT_BACKEND = "digits", "brian2"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=program_name().removeprefix("python "), description=(
        "Spiking convolutional network trained layer by layer with STDP, read out by a "
        "linear SVM, simulated through PyNN."))
    parser.add_argument("--mode", required=True, choices=MODES,
                        help="loaddata | training (with --layer) | testing | plot | deploy | "
                        "info | all")
    parser.add_argument("--layer", help="with --mode training: conv layer number (1, 2, ...) "
                        "or 'svm'")
    parser.add_argument("--dataset", choices=DATASETS,
                        help="digits (bundled 8×8, default), mnist, or your own data with "
                        "--source: idx (IDX folder), npz (file), folder (a sub-folder of "
                        "images per class), events (N-MNIST-style recordings); an existing "
                        "model dir remembers its own")
    parser.add_argument("--backend", choices=tuple(BACKENDS),
                        help="PyNN simulator, or batched: a numba engine with NEST's "
                        "semantics (default brian2, or the one that trained an existing "
                        "model dir)")
    parser.add_argument("--source", help="mnist, with loaddata/all: folder holding the four "
                        "MNIST IDX .gz files to copy; idx/npz/folder/events, every mode: the "
                        "file or folder read in place")
    parser.add_argument("--data-dir", default="data", help="where datasets live (default data/)")
    parser.add_argument("--model-dir", default="model", help="checkpoint folder (default model/)")
    parser.add_argument("--seed", type=strict_int, help="random seed (default: 0)")
    parser.add_argument("--train-examples", type=strict_int,
                        help="use the first N training images")
    parser.add_argument("--test-examples", type=strict_int, help="use the first N test images")
    parser.add_argument("--validation-examples", type=strict_int, metavar="N",
                        help="hold out N training images (seeded) as a validation split: "
                        "not trained on, their accuracy is reported")
    parser.add_argument("--params", help="JSON file overriding default parameters "
                        "(names of spinnconv/defaults.py)")
    parser.add_argument("--jobs", type=strict_int, default=1,
                        help="simulator processes that share the images (default 1)")
    parser.add_argument("--dask-scheduler", metavar="ADDRESS",
                        help="simulate the images on the workers of this Dask cluster "
                        "(e.g. tcp://host:8786) instead of --jobs local processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--no-plots", action="store_true",
                        help="do not write figures to <model-dir>/figures after each mode")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    spinnaker = parser.add_argument_group("SpiNNaker (--backend spinnaker, --mode deploy)")
    machine = spinnaker.add_mutually_exclusive_group()
    machine.add_argument("--virtual-board", type=strict_int, choices=(3, 5),
                         help="map on a virtual 4-chip (3) or 48-chip (5) board, no hardware")
    machine.add_argument("--spinnaker-host", metavar="IP", help="a directly attached board")
    machine.add_argument("--spalloc-server", metavar="URL", help="a shared machine via spalloc")
    spinnaker.add_argument("--spinnaker-conv", choices=("auto", "native", "fromlist"),
                           default="auto", help="conv layers as sPyNNaker's native "
                           "ConvolutionConnector or FromList; auto maps both, keeps the cheaper")
    spinnaker.add_argument("--emulate-spinnaker", action="store_true",
                           help="on batched/brian2/nest: train and run as the board would. "
                           "It changes training too: STDP with 16-bit plastic weights learns "
                           "other kernels than a run without it; inference uses the weights "
                           "the board would use")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if args.mode == "training":
        if args.layer is None:
            raise UsageError("--mode training needs --layer N (a conv layer number) or "
                             "--layer svm")
        if args.layer != "svm" and (not re.fullmatch(r"[0-9]{1,6}", args.layer)
                                    or int(args.layer) < 1):
            raise UsageError(f"--layer must be a positive number or 'svm', got {args.layer!r}")
    elif args.layer is not None:
        raise UsageError("--layer only goes with --mode training")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    for name in ("train_examples", "test_examples", "validation_examples"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def resolve_settings(args: argparse.Namespace) -> tuple[str, str, dict]:
    """``(dataset, backend, parameters)``: from the model dir's manifest if it has one
    (explicit flags must agree with it), else from the flags and the defaults."""
    overrides = read_params_file(args.params) if args.params else {}
    if args.seed is not None:
        overrides = {**overrides, "seed": args.seed}
    model_dir = ModelDir(args.model_dir)
    if args.mode == "loaddata" or not model_dir.exists():
        dataset = args.dataset or DEFAULT_DATASET
        return dataset, args.backend or DEFAULT_BACKEND, resolve_parameters(dataset, overrides)
    manifest = model_dir.manifest()
    where = model_dir.path
    if args.dataset is not None and args.dataset != manifest["dataset"]:
        raise UsageError(f"--dataset {args.dataset} conflicts with {where}, which was trained "
                         f"on '{manifest['dataset']}'; drop --dataset or use another --model-dir")
    dataset = manifest["dataset"]
    if args.backend is not None and args.backend != manifest["backend"] and \
            args.mode in ("training", "all"):
        raise UsageError(f"--backend {args.backend} conflicts with {where}, which was trained "
                         f"with --backend {manifest['backend']}; drop --backend or use another "
                         "--model-dir (testing and deploy may use another backend)")
    backend = args.backend or manifest["backend"]
    try:
        stored = resolve_parameters(dataset, manifest["parameters"],
                                    where=str(model_dir.manifest_path))
    except UsageError as err:
        raise ModelDirDamaged(f"model dir {where} is damaged: its parameters are invalid "
                              f"({err}); retrain into a fresh --model-dir") from None
    try:
        built = build_model(stored, tuple(manifest["model"]["input_shape"][:2]))
    except UsageError as err:
        built = err
    if "architecture" in manifest["parameters"] and built != model_dir.model():
        raise ModelDirDamaged(f"model dir {where} is damaged: manifest.json 'model' is not the "
                              "architecture its parameters describe; retrain into a fresh "
                              "--model-dir")
    params = override_parameters(stored, overrides)
    difference = parameter_difference(stored, params)
    if difference:
        raise UsageError(f"{where} was trained with other parameters ({difference}); drop "
                         "--params/--seed, or use another --model-dir")
    return dataset, backend, params


def make_run(args: argparse.Namespace):
    from .pipeline import Run

    dataset, backend, params = resolve_settings(args)
    machine = {key: value for key, value in (("virtual_board", args.virtual_board),
                                             ("host", args.spinnaker_host),
                                             ("spalloc_server", args.spalloc_server))
               if value is not None}
    check_backend_options(params, backend, args.emulate_spinnaker,
                          training=args.mode in ("training", "all") and args.layer != "svm")
    overrides = read_params_file(args.params) if args.params else {}
    if args.seed is not None:
        overrides = {**overrides, "seed": args.seed}
    source = Path(args.source) if args.source and dataset in OWN_DATASETS else None
    return Run(params=params, dataset=dataset, data_dir=Path(args.data_dir),
               model_dir=ModelDir(args.model_dir), backend=backend, machine=machine,
               emulate_spinnaker=args.emulate_spinnaker, jobs=args.jobs,
               dask_scheduler=args.dask_scheduler,
               n_train=args.train_examples, n_test=args.test_examples, source=source,
               n_validation=args.validation_examples, overrides=overrides,
               quiet=args.quiet or not sys.stderr.isatty(), plots=not args.no_plots)


def preflight(args: argparse.Namespace, run) -> None:
    """Checks that need the data and the model, run before anything is written."""
    from .validation import check_run

    if args.mode not in ("training", "all"):
        return
    data = run.load()
    model = run.model_for(data)
    if args.mode == "training" and args.layer != "svm":
        number = int(args.layer)
        if not 1 <= number <= model.n_conv_layers:
            raise UsageError(f"--layer {number} does not exist: the model has conv layers "
                             f"1..{model.n_conv_layers} (and 'svm')")
    needs_svm = args.mode == "all" or args.layer == "svm"
    check_run(run.params, model, data.n_train, data.train_labels if needs_svm else None,
              images=data.train_images)
    if run.model_dir.exists() or args.mode == "all" or args.layer == "1":
        run.model_dir.check_writable()


def dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    from . import commands

    started = time.perf_counter()
    run = make_run(args)
    if run.dask_scheduler and args.mode in ("training", "testing", "all"):
        from .parallel import connect

        connect(run.dask_scheduler)  # an unreachable cluster fails before anything is written
    if args.mode not in WRITING_MODES:
        _run_mode(args, run, argv)
        if args.mode != "info":
            commands.write_run_log(run, argv, time.perf_counter() - started)
        return 0
    if args.mode != "all":  # --mode all: once load_data has made the data available
        preflight(args, run)
    spinnaker_dir = run.model_dir.path / "spinnaker"
    spinnaker_existed = spinnaker_dir.exists()
    try:
        with run.model_dir.lock([program_name(), *argv]):
            _run_mode(args, run, argv)  # a failed command writes no log: the dir is as it was
            run.lines += library_log.lines
            commands.write_run_log(run, argv, time.perf_counter() - started)
    except BaseException:
        if not spinnaker_existed:  # a failed command leaves no sPyNNaker config behind
            shutil.rmtree(spinnaker_dir, ignore_errors=True)
        raise
    return 0


def _run_mode(args: argparse.Namespace, run, argv: list[str]) -> None:
    from . import commands

    if args.mode == "info":
        print(commands.info(run))
        return
    if args.mode == "deploy":
        commands.deploy(run, args.spinnaker_conv)
        return
    if args.mode == "plot":
        written = commands.plot(run)
        run.log(f"{len(written)} figures in {run.model_dir.path / 'figures'}")
        return
    if args.mode in ("loaddata", "all"):
        commands.load_data(run, args.source)
        if args.mode == "all":
            preflight(args, run)
    if args.mode == "training":
        if args.layer == "svm":
            commands.train_svm(run)
        else:
            commands.train_layer(run, int(args.layer))
    if args.mode == "all":
        started = time.perf_counter()
        n_layers = run.model_for(run.load()).n_conv_layers
        for number in range(1, n_layers + 1):
            commands.train_layer(run, number)
            interrupt.check()
        commands.train_svm(run)
        interrupt.check()
        results = commands.test(run)
        seconds = time.perf_counter() - started
        record = commands.write_record(run, argv, results, seconds)
        run.log(f"total: {seconds:.1f} s, peak memory {record['peak_memory_bound_mb']:.0f} MB "
                f"(main process and --jobs workers); phases in "
                f"{run.model_dir.path / 'record.json'}")
    if args.mode in ("testing", "all"):
        results = results if args.mode == "all" else commands.test(run)
        run.log(f"test images: {results['n_test']}, backend {results['backend']}, "
                f"{results['seconds']:.1f} s; results in {run.model_dir.path / 'results.json'}")
        if results.get("validation_accuracy") is not None:
            run.log(f"validation accuracy: {results['validation_accuracy']:.4f} "
                    f"({results['n_validation']} training images held out)")
        run.log(f"accuracy: {results['accuracy']:.4f}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``main.py`` and the ``spinnconv`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    quiet_libraries(capture_logs=not args.debug)
    interrupt.install()  # SIGTERM like Ctrl-C: unwind, drop temporary files, keep checkpoints
    try:
        _check_args(args)
        status = dispatch(args, argv)
        interrupt.check()  # a signal swallowed by a library callback still counts
        return status
    except SpinnconvError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; earlier checkpoints are intact, run the same command "
              "again to redo the interrupted stage", file=sys.stderr)
        return 130
    finally:
        if not args.debug:
            _drop_exit_reports()


def _drop_exit_reports() -> None:
    """sPyNNaker repeats its warnings on stderr at exit; they are in the run log."""
    log = sys.modules.get("spinn_utilities.log")
    if log is not None:
        atexit.unregister(log.FormatAdapter.atexit_handler)


if __name__ == "__main__":
    sys.exit(main())
