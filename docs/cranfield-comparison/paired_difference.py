"""How far apart a trained model and its untrained start are, query by query, on one test split.

For each run's artifact folder (``test.run.txt``, ``test_base.run.txt``, ``test.qrels.txt``, as
every lossbench run logs them), ranx's per-query nDCG@10 of both rankings; prints the mean of the
paired differences, their standard deviation, the standard error of the mean (sd / sqrt(n)) and the
queries won and lost. The standard error says which gains a split of that size can resolve at all.

    python docs/cranfield-comparison/paired_difference.py <artifacts folder> [...]
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

from ranx import Qrels, Run, evaluate

from lossbench.data.sources.formats import read_qrels, read_trec_run

METRIC = "ndcg@10"


def per_query(qrels: Qrels, path: Path) -> dict[str, float]:
    """ranx's per-query ``METRIC`` of the TREC run at ``path``."""
    run = Run({query: dict(docs) for query, docs in read_trec_run(path).items()})
    evaluate(qrels, run, METRIC, make_comparable=True)
    return dict(run.scores[METRIC])


def describe(folder: Path) -> str:
    """One line: n, mean paired difference (trained - untrained), sd, standard error, wins/losses."""
    qrels = Qrels({q: dict(d) for q, d in read_qrels(folder / "test.qrels.txt").items()})
    trained = per_query(qrels, folder / "test.run.txt")
    untrained = per_query(qrels, folder / "test_base.run.txt")
    differences = [trained[query] - untrained[query] for query in sorted(untrained)]
    mean, sd = statistics.mean(differences), statistics.stdev(differences)
    wins = sum(d > 1e-9 for d in differences)
    losses = sum(d < -1e-9 for d in differences)
    return (
        f"{folder}: n={len(differences)} mean {mean:+.4f} sd {sd:.4f} "
        f"se {sd / math.sqrt(len(differences)):.4f} won {wins} lost {losses}"
    )


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(describe(Path(argument)))
