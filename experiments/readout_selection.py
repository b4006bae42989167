"""Choose the readout (window pyramid and SVM C) on a validation split of the MNIST
*training* images; no test image is used.

    python experiments/readout_selection.py --source ../shared/data/mnist \\
        --validation 10000 --out /tmp/readout_selection.json

With the public API (:class:`spinnconv.STDPConvNet`, default MNIST network,
``--backend``, ``--seed``): ``fit_layer(1, ...)`` on the fit split (the first
``train_patches`` images, as ``fit`` does), then ``transform(images, layer=1)``, the
pooled spike counts of every fit and validation image, once. Each candidate
readout (``--windows``, a JSON list of window pyramids) turns the counts into
features (``features_from_counts``); a ``SpikeCountSVM`` per ``--svm-c`` is fitted
on the fit split and scored on the validation split (``Dataset.split`` with the
seed, as ``main.py --validation-examples``). Prints one table, writes ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spinnconv import STDPConvNet, datasets  # noqa: E402
from spinnconv.model import Classifier  # noqa: E402
from spinnconv.readout import SpikeCountSVM, features_from_counts  # noqa: E402

#: Pyramids compared by default: the default readout, single scales and three-scale
#: variants (``[window, stride]`` pairs on the 12×12 pooled map).
CANDIDATES = [
    [[6, 2], [3, 3]],
    [[6, 2]],
    [[4, 2]],
    [[5, 1]],
    [[6, 2], [4, 4]],
    [[6, 2], [3, 3], [12, 1]],
    [[6, 2], [4, 2]],
    [[8, 2], [4, 2]],
]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="directory of the MNIST IDX files")
    parser.add_argument("--out", required=True, help="results JSON")
    parser.add_argument("--train", type=int, help="first N training images (default all)")
    parser.add_argument("--validation", type=int, default=10000)
    parser.add_argument("--backend", default="batched")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="SVM fits in parallel")
    parser.add_argument("--svm-c", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    parser.add_argument("--windows", type=json.loads, default=CANDIDATES,
                        help="JSON list of pyramids, each a list of [window, stride] pairs")
    return parser.parse_args(argv)


def score(counts: np.ndarray, shape, windows, c: float, fit: slice, held_out: slice,
          labels: np.ndarray) -> dict:
    """Validation accuracy of one readout (windows, C) on the pooled counts."""
    started = time.perf_counter()
    features = features_from_counts(counts, shape, Classifier(windows=windows))
    svm = SpikeCountSVM(c=c).fit(features[fit], labels[fit])
    accuracy = float(np.mean(svm.predict(features[held_out]) == labels[held_out]))
    return {"windows": windows, "svm_c": c, "features": int(features.shape[1]),
            "validation_accuracy": accuracy, "seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    data = datasets.load_dataset("mnist", args.source, args.train, 1,
                                 n_validation=args.validation, seed=args.seed)
    net = STDPConvNet(backend=args.backend, seed=args.seed)
    net.fit_layer(1, data.train_images)
    images = np.concatenate([np.asarray(data.train_images), np.asarray(data.val_images)])
    labels = np.concatenate([np.asarray(data.train_labels), np.asarray(data.val_labels)])
    counts = net.transform(images, layer=1)
    model = net.model_
    shape = model.output_shape_of(model.conv_layer_positions[0] + 1)
    fit, held_out = slice(0, data.n_train), slice(data.n_train, len(images))
    rows = Parallel(n_jobs=args.jobs)(
        delayed(score)(counts, shape, windows, c, fit, held_out, labels)
        for windows in args.windows for c in args.svm_c)
    best = max(rows, key=lambda row: row["validation_accuracy"])
    print(f"| windows | features | C | validation ({data.n_train} fit / {data.n_validation}) |")
    print("|---|---|---|---|")
    for row in rows:
        mark = " **best**" if row is best else ""
        print(f"| {row['windows']} | {row['features']} | {row['svm_c']} | "
              f"{row['validation_accuracy']:.4f}{mark} |")
    result = {"command": " ".join(["python", "experiments/readout_selection.py", *(
        argv if argv is not None else sys.argv[1:])]), "seed": args.seed,
        "backend": args.backend, "n_fit": data.n_train, "n_validation": data.n_validation,
        "rows": rows, "best": best}
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
