"""Tabulate a small finite MLP space on scikit-learn's digits: every network trained once.

The space (432 genomes on the grid, 312 distinct networks after canonicalisation: slot order of
the two hidden layers and the activation of a network without hidden layers do not matter) is
evaluated with :class:`deapnn.keras.evaluator.KerasEvaluator` - a few epochs, validation accuracy,
seeded per genome - and written as JSON. ``benchmarks/tabulated.py`` then compares search
strategies against this table at no training cost.

To reproduce: ``python benchmarks/make_digits_table.py``
(writes ``benchmarks/data/digits_mlp_table.json``; about 15 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deapnn.data import load_digits  # noqa: E402
from deapnn.hparams.genome import make_genome  # noqa: E402
from deapnn.keras.models import mlp_space  # noqa: E402
from deapnn.hparams.space import SearchSpace  # noqa: E402

TABLE = Path(__file__).parent / "data" / "digits_mlp_table.json"


def table_space() -> SearchSpace:
    """The tabulated space: 3 optimizers x 2 learning rates x 2 batch sizes x 2 activations
    x 2 input dropouts x 3 x 3 layer widths (0 = no layer) for two hidden slots."""
    return mlp_space(layers=2, optimizer=["adam", "adamax", "nadam"], learning_rate=[1e-3, 1e-2],
                     initializer=["glorot_uniform"], activation=["relu", "elu"],
                     batch_size=[16, 64], use_bias=[True], batch_norm=[False],
                     input_dropout=[0.0, 0.2], neurons=[0, 32, 128], dropout=[0.0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="data split and Keras base seed")
    parser.add_argument("--limit", type=int, default=None, help="only the first N networks")
    parser.add_argument("--out", type=Path, default=TABLE)
    args = parser.parse_args()

    from deapnn.keras import KerasEvaluator

    space = table_space()
    loader = functools.partial(load_digits, seed=args.seed)
    evaluator = KerasEvaluator(loader, max_epochs=args.epochs, seed=args.seed,
                               steps_per_execution=8)
    genomes, seen = [], set()
    for values in space.grid():
        genome = make_genome(space, values)
        if genome.key() not in seen:
            seen.add(genome.key())
            genomes.append(genome)
    if args.limit:
        genomes = genomes[:args.limit]
    print(f"{space.size} genomes on the grid, {len(seen)} distinct networks; "
          f"training {len(genomes)}")
    entries, start = [], time.perf_counter()
    for i, genome in enumerate(genomes, 1):
        record = evaluator.evaluate(genome)
        entries.append({"genome": space.canonicalize(genome), "accuracy": record.score,
                        "params": record.params, "failure": record.reason,
                        "seconds": round(record.seconds, 3)})
        if i % 25 == 0 or i == len(genomes):
            best = max(e["accuracy"] or 0.0 for e in entries)
            print(f"{i:4d}/{len(genomes)}  best so far {best:.4f}  "
                  f"{time.perf_counter() - start:6.0f} s", flush=True)
    table = {
        "description": "validation accuracy of every distinct network of table_space() on "
                       "sklearn digits (train/val/test 1079/359/359)",
        "command": "python benchmarks/make_digits_table.py " + f"--epochs {args.epochs} "
                   f"--seed {args.seed}",
        "epochs": args.epochs,
        "seed": args.seed,
        "grid_size": space.size,
        "distinct": len(seen),
        "seconds": round(time.perf_counter() - start, 1),
        "space": space.to_dict(),
        "entries": entries,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=0) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
