"""One-epoch MNIST fitness with a constant learning rate vs one decayed to zero over the epoch.

``KerasEvaluator(lr_schedule=...)`` changes only the learning rate's course during the
evaluation's budget; the genome is the same. This script scores a few fixed MLP genomes of the
default space both ways (same seed, same 55000/5000 split) and prints the difference, so the
effect of budget-aware evaluation on the fitness scale is measured, not assumed.

To reproduce: ``python benchmarks/lr_schedule_mnist.py``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deapnn.data import load_mnist  # noqa: E402
from deapnn.hparams.genome import make_genome  # noqa: E402
from deapnn.keras.models import MLP_SPACE  # noqa: E402
from deapnn.keras import KerasEvaluator  # noqa: E402

RESULTS = Path(__file__).parent / "results"

_BASE = dict(optimizer="adam", learning_rate=1e-3, initializer="he_uniform", activation="relu",
             batch_size=32, use_bias=True, batch_norm=False, input_dropout=0.0,
             neurons0=1024, dropout0=0.0, neurons1=1024, dropout1=0.0, neurons2=0, dropout2=0.0,
             neurons3=0, dropout3=0.0, neurons4=0, dropout4=0.0)

#: (label, changes to _BASE): one narrow and three wide genomes of MLP_SPACE
GENOMES = [
    ("512, adam 1e-3", dict(neurons1=0, neurons0=512)),
    ("1024-1024, adam 1e-3", {}),
    ("1024-1024, adam 2e-3", dict(learning_rate=2e-3)),
    ("1024-1024 + batch norm, adam 3e-3", dict(batch_norm=True, learning_rate=3e-3,
                                               initializer="glorot_uniform")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "lr_schedule_mnist.json")
    args = parser.parse_args()
    loader = functools.partial(load_mnist, validation=5000)
    rows = []
    print(f"{'genome':<36}{'constant':>10}{'linear':>10}{'gain':>8}")
    for label, changes in GENOMES:
        genome = make_genome(MLP_SPACE, {**_BASE, **changes})
        row = {"genome": genome.as_dict(), "label": label}
        for schedule in ("constant", "linear"):
            evaluator = KerasEvaluator(loader, max_epochs=1, seed=args.seed,
                                       steps_per_execution=32, lr_schedule=schedule)
            start = time.perf_counter()
            record = evaluator.evaluate(genome)
            row[schedule] = {"val_accuracy": record.score, "failure": record.reason,
                             "seconds": time.perf_counter() - start}
        gain = row["linear"]["val_accuracy"] - row["constant"]["val_accuracy"]
        row["gain"] = gain
        rows.append(row)
        print(f"{label:<36}{row['constant']['val_accuracy']:>10.4f}"
              f"{row['linear']['val_accuracy']:>10.4f}{gain:>+8.4f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python benchmarks/lr_schedule_mnist.py",
                                    "cpu_count": os.cpu_count(), "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
