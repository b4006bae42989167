"""SVM readout fit: the readout's solver (one liblinear copy of the data for all
classes, the default; or classes in two threads, a copy each) against a plain
primal ``LinearSVC``, side by side.

Both fit the same model (sqrt, standardise, L2 squared-hinge one-vs-rest, C =
``svm_c``) on the first ``--fit`` images of a features file and are scored on its
last ``--held-out`` images (training images the fit did not see: never the test set).

    # features of the first 12000 MNIST training images, from a model dir whose
    # conv layers are trained (the pipeline's own feature extraction)
    python benchmarks/svm_fit.py --extract 12000 --dataset mnist --data-dir data \\
        --model-dir model --features /tmp/features.npz
    python benchmarks/svm_fit.py --features /tmp/features.npz --fit 10000 --held-out 2000

Peak memory is the process's peak during the fit (the first solver's buffers are
freed before the second: run one per process with ``--only`` for a clean figure);
CPU time is the process's, all threads together.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def extract(args: argparse.Namespace) -> None:
    from spinnconv.cli import build_parser, make_run
    from spinnconv.commands import extract_features

    run = make_run(build_parser().parse_args([
        "--mode", "testing", "--dataset", args.dataset, "--data-dir", args.data_dir,
        "--model-dir", args.model_dir, "--backend", args.backend, "--jobs", str(args.jobs),
        "--train-examples", str(args.extract), "--quiet",
        *(["--params", args.params] if args.params else [])]))
    data = run.load()
    started = time.perf_counter()
    features, _ = extract_features(run, run.model(data.image_shape), data.train_images, "")
    print(f"features of {len(features)} training images: {time.perf_counter() - started:.0f} s")
    np.savez(args.features, features=features, labels=data.train_labels)


def compare(args: argparse.Namespace) -> None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.svm import LinearSVC

    from spinnconv.pipeline import peak_memory_mb, reset_peak_memory
    from spinnconv.readout import SpikeCountSVM

    arrays = np.load(args.features)
    features, labels = arrays["features"], arrays["labels"]
    if args.fit + args.held_out > len(features):
        sys.exit(f"--fit + --held-out > {len(features)} images in {args.features}")
    fit, held_out = slice(0, args.fit), slice(len(features) - args.held_out, None)
    solvers = {
        "primal LinearSVC": lambda: make_pipeline(
            FunctionTransformer(np.sqrt), StandardScaler(),
            LinearSVC(C=args.c, max_iter=5000, dual="auto", random_state=0)),
        "readout (dual, one copy)": lambda: SpikeCountSVM(c=args.c, transform="sqrt"),
        "readout (dual, 2 threads)": lambda: SpikeCountSVM(c=args.c, transform="sqrt",
                                                           n_jobs=2),
    }
    print(f"{len(features[fit])} images fitted, {features.shape[1]} features, "
          f"{args.held_out} held out; C = {args.c}")
    for name, make in solvers.items():
        if args.only and args.only not in name:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            reset_peak_memory()
            started, cpu_started = time.perf_counter(), time.process_time()
            model = make().fit(features[fit], labels[fit])
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        print(f"{name:26s} fit {seconds:6.1f} s ({cpu_seconds:.1f} s CPU), peak memory "
              f"{peak_memory_mb():.0f} MB, held-out accuracy "
              f"{model.score(features[held_out], labels[held_out]):.4f}, train accuracy "
              f"{model.score(features[fit], labels[fit]):.4f}"
              f"{'' if converged else ' (not converged)'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", required=True, help=".npz with features and labels")
    parser.add_argument("--extract", type=int, help="first write the features of this many "
                        "training images (needs --model-dir with trained conv layers)")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--model-dir", default="model")
    parser.add_argument("--backend", default="brian2")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--params", help="--params file of the model (with --extract)")
    parser.add_argument("--fit", type=int, default=10000)
    parser.add_argument("--held-out", type=int, default=2000)
    parser.add_argument("--c", type=float, default=0.01)
    parser.add_argument("--only", help="fit only the solver whose name contains this "
                        "(e.g. 'primal', 'one copy', 'threads'), for its own peak memory")
    args = parser.parse_args()
    if args.extract:
        extract(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
