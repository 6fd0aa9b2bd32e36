"""Run by tests/test_parallel.py under ``python -m scoop``: the same runs as the serial ones.

Usage: python -m scoop -n 2 tests/scoop_script.py OUT.json [hyper] [weights] [toy] [where] [const]
[setup]
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import parallel_helpers  # noqa: E402

from deapnn.parallel import backends, get_map, scoop_running  # noqa: E402


def main(out: str, kinds: list[str]) -> None:
    result = {"scoop_running": scoop_running()}
    if "const" in kinds:  # ship every evaluator as a SCOOP shared constant, however small
        backends.INLINE_BYTES = 0
    if "where" in kinds:
        result["where"] = sorted(set(map(tuple, get_map()(parallel_helpers.where, range(8)))))
    if "toy" in kinds:
        genomes = [[0, 1], [1, 1], [2, 3]]
        fits = get_map()(parallel_helpers.ToyEvaluator(raise_on=1), genomes)
        result["toy"] = [[list(f), getattr(f, "reason", None)] for f in fits]
    if "setup" in kinds:  # each setup error: [exception type, message], or the fitnesses
        from deapnn.core.failures import SetupError

        cases = {
            "unpicklable": lambda: get_map()(parallel_helpers.Unpicklable(), [[1, 1]]),
            "missing_module": lambda: get_map()(parallel_helpers.NeedsMissingModule(), [[1, 1]] * 3),
            "metric": lambda: get_map()(parallel_helpers.digits_evaluator(metric="acuracy"), [{}]),
            "builder": lambda: parallel_helpers.digits_evaluator(
                build=parallel_helpers.two_argument_builder),
            "after": lambda: get_map()(parallel_helpers.ToyEvaluator(), [[1, 1]]),
        }
        result["setup"] = {}
        for name, case in cases.items():
            try:
                result["setup"][name] = [list(f) for f in case()]
            except SetupError as exc:
                result["setup"][name] = [type(exc).__name__, str(exc)]
    if "hyper" in kinds:
        result["hyper"] = parallel_helpers.hyper_run("auto")
    if "weights" in kinds:
        result["weights"] = parallel_helpers.weight_run("auto")
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
