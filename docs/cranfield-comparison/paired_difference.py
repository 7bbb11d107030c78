"""How far apart a trained model and its untrained start are, query by query, on a test split.

For each run's artifact folder (``test.run.txt``, ``test_base.run.txt``, ``test.qrels.txt``, as
every lossbench run logs them), ranx's per-query nDCG@10 of both rankings; prints the means, the
mean of the paired differences, their standard deviation, the standard error of the mean
(sd / sqrt(n)), the queries won and lost and the paired t-test's two-sided p-value. The standard
error says which gains a split of that size can resolve at all.

With several folders whose test queries are disjoint (the folds of a cross-validation,
``dataset.collection.fold=0,1,2,3,4``), a last line pools them: every query once.

    python docs/cranfield-comparison/paired_difference.py <artifacts folder> [...]
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

from ranx import Qrels, Run, evaluate
from scipy.stats import ttest_rel

from lossbench.data.sources.formats import read_qrels, read_trec_run

METRIC = "ndcg@10"


def per_query(qrels: Qrels, path: Path) -> dict[str, float]:
    """ranx's per-query ``METRIC`` of the TREC run at ``path``."""
    run = Run({query: dict(docs) for query, docs in read_trec_run(path).items()})
    evaluate(qrels, run, METRIC, make_comparable=True)
    return dict(run.scores[METRIC])


def pairs(folder: Path) -> dict[str, tuple[float, float]]:
    """Query -> (trained, untrained) ``METRIC`` of one run."""
    qrels = Qrels({q: dict(d) for q, d in read_qrels(folder / "test.qrels.txt").items()})
    trained = per_query(qrels, folder / "test.run.txt")
    untrained = per_query(qrels, folder / "test_base.run.txt")
    return {query: (trained[query], untrained[query]) for query in untrained}


def describe(name: str, found: dict[str, tuple[float, float]]) -> str:
    """One line: n, both means, the paired difference's mean, sd, standard error, wins/losses, p."""
    trained = [found[q][0] for q in sorted(found)]
    untrained = [found[q][1] for q in sorted(found)]
    differences = [t - u for t, u in zip(trained, untrained, strict=True)]
    sd = statistics.stdev(differences)
    p_value = float(ttest_rel(trained, untrained).pvalue)
    return (
        f"{name}: n={len(differences)} trained {statistics.mean(trained):.4f} "
        f"untrained {statistics.mean(untrained):.4f} mean difference "
        f"{statistics.mean(differences):+.4f} sd {sd:.4f} se {sd / math.sqrt(len(differences)):.4f} "
        f"won {sum(d > 1e-9 for d in differences)} lost {sum(d < -1e-9 for d in differences)} "
        f"p {p_value:.3f}"
    )


if __name__ == "__main__":
    pooled: dict[str, tuple[float, float]] = {}
    folders = [Path(argument) for argument in sys.argv[1:]]
    for folder in folders:
        found = pairs(folder)
        print(describe(str(folder), found))
        if pooled.keys() & found.keys():
            raise SystemExit(
                f"{folder} tests queries another folder tested: not folds of one split"
            )
        pooled.update(found)
    if len(folders) > 1:
        print(describe(f"pooled over {len(folders)} folders", pooled))
