"""SHAP's Permutation explainer in a fresh process: shap imported as is (numba compiles its
helpers on the first call) against ``pipelines.explain.import_shap`` (the helpers interpreted).

Each side runs in its own process, as the evaluate stage does: the whole first explanation is
timed, import excluded, on a cheap linear scorer (so the figure is the explainer's own cost;
evaluate's model adds the same predictions to both sides), and the two sides' SHAP values are
compared: numba may sum in another order, so they agree to rounding, not bit for bit.

    python -m bench.shap_jit [--sizes 20x20x10,100x50x30,500x100x50] [--permutations 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

CHILD = """
import json, sys, time
import numpy as np
from pipelines.explain import import_shap
rows, background, width, permutations, interpreted = json.loads(sys.argv[1])
if interpreted:
    shap = import_shap()
else:
    import shap
data = np.random.default_rng(0).random((max(rows, background), width))
weights = np.linspace(-1, 1, width)
started = time.perf_counter()
masker = shap.maskers.Independent(data[:background], max_samples=background)
explainer = shap.explainers.Permutation(lambda x: x @ weights, masker, seed=0)
values = explainer(data[:rows], max_evals=permutations * (2 * width + 1), silent=True).values
print(json.dumps({"seconds": time.perf_counter() - started, "values": values.tolist()}))
"""


def explain_in_fresh_process(size: tuple[int, int, int], permutations: int, interpreted: bool):
    arguments = json.dumps([*size, permutations, interpreted])
    done = subprocess.run(
        [sys.executable, "-c", CHILD, arguments], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20x20x10,100x50x30,500x100x50")
    parser.add_argument("--permutations", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{'rows x background x features':>30s} {'jit s':>7s} {'interpreted s':>14s} "
        f"{'ratio':>6s} {'max |diff|':>11s}"
    )
    for text in args.sizes.split(","):
        size = tuple(int(part) for part in text.split("x"))
        jit = explain_in_fresh_process(size, args.permutations, interpreted=False)
        interpreted = explain_in_fresh_process(size, args.permutations, interpreted=True)
        difference = np.abs(np.array(jit["values"]) - np.array(interpreted["values"])).max()
        ratio = jit["seconds"] / interpreted["seconds"]
        print(
            f"{text:>30s} {jit['seconds']:>7.2f} {interpreted['seconds']:>14.2f} "
            f"{ratio:>5.1f}x {difference:>11.1e}"
        )


if __name__ == "__main__":
    main()
