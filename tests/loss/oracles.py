"""Independent float64 oracles of the losses, shared by the golden tests.

Written from the formulas in the loss docstrings (each from its paper) with plain Python loops over
the real entries only (no masks, no torch), so they share no code with the library; plus the input
cases every scoring loss is checked on (ties, padding, all-zero targets, an all-padding query).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tests.helpers import Lists

# --------------------------------------------------------------------------------------------------
# Oracle helpers (float64, plain Python)
# --------------------------------------------------------------------------------------------------


def lse(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def softmax(values: list[float]) -> list[float]:
    norm = lse(values)
    return [math.exp(v - norm) for v in values]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def pairwise_oracle(
    term: Callable[[float, float, float, float], float],
) -> Callable[[Lists], float]:
    def oracle(lists: Lists) -> float:
        values = []
        for s, t in lists:
            for i in range(len(s)):
                for j in range(len(s)):
                    if t[i] > t[j]:
                        values.append(term(s[i], s[j], t[i], t[j]))
        return mean(values)

    return oracle


def ranknet_oracle(temperature: float = 1.0) -> Callable[[Lists], float]:
    return pairwise_oracle(lambda si, sj, ti, tj: math.log1p(math.exp(-(si - sj) * temperature)))


def constant_margin_oracle(margin: float) -> Callable[[Lists], float]:
    return pairwise_oracle(lambda si, sj, ti, tj: ((si - sj) - margin) ** 2)


supervised_margin_oracle = pairwise_oracle(lambda si, sj, ti, tj: ((si - sj) - (ti - tj)) ** 2)


def per_query_oracle(fn: Callable[[list[float], list[float]], float]) -> Callable[[Lists], float]:
    """Mean of ``fn(s, t)`` over queries with at least one real candidate."""
    return lambda lists: mean([fn(s, t) for s, t in lists if s])


def kl_oracle(temperature: float = 1.0) -> Callable[[Lists], float]:
    def kl(s: list[float], t: list[float]) -> float:
        p = softmax(t)
        r = softmax([v / temperature for v in s])
        return sum(
            pi * (math.log(pi) - math.log(ri)) for pi, ri in zip(p, r, strict=True) if pi > 0
        )

    return per_query_oracle(kl)


def infonce_oracle(temperature: float = 1.0) -> Callable[[Lists], float]:
    def ce(s: list[float], t: list[float]) -> float:
        best = t.index(max(t))  # first on ties
        return lse([v / temperature for v in s]) - s[best] / temperature

    return per_query_oracle(ce)


def _pearson_loss(s: list[float], t: list[float]) -> float:
    ms, mt = mean(s), mean(t)
    cs, ct = [v - ms for v in s], [v - mt for v in t]
    num = sum(a * b for a, b in zip(cs, ct, strict=True))
    ns = max(math.sqrt(sum(a * a for a in cs)), 1e-8)
    nt = max(math.sqrt(sum(b * b for b in ct)), 1e-8)
    return 1.0 - num / (ns * nt)


pearson_oracle = per_query_oracle(_pearson_loss)


def listnet_oracle(temperature: float = 1.0) -> Callable[[Lists], float]:
    def ce(s: list[float], t: list[float]) -> float:
        p = softmax(t)
        log_r = [v / temperature - lse([w / temperature for w in s]) for v in s]
        return -sum(pi * lr for pi, lr in zip(p, log_r, strict=True))

    return per_query_oracle(ce)


def true_ranking(t: list[float]) -> list[int]:
    """Indices sorted by descending target, ties by position (earlier first)."""
    return sorted(range(len(t)), key=lambda i: (-t[i], i))


def _listmle_loss(s: list[float], t: list[float]) -> float:
    order = true_ranking(t)
    return sum(lse([s[k] for k in order[i:]]) - s[order[i]] for i in range(len(order)))


listmle_oracle = per_query_oracle(_listmle_loss)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def smooth_ranks(s: list[float], temperature: float) -> list[float]:
    return [
        1.0 + sum(sigmoid((s[b] - s[a]) / temperature) for b in range(len(s)) if b != a)
        for a in range(len(s))
    ]


def approx_ndcg_oracle(
    temperature: float = 1.0, scale_gains: bool = True
) -> Callable[[Lists], float]:
    def loss(s: list[float], t: list[float]) -> float:
        t = [max(v, 0.0) for v in t]
        gains = [2.0**v - 1.0 if scale_gains else v for v in t]
        ranks = smooth_ranks(s, temperature)
        dcg = sum(g / math.log2(1.0 + r) for g, r in zip(gains, ranks, strict=True))
        ideal = sorted(gains, reverse=True)
        idcg = sum(g / math.log2(2.0 + i) for i, g in enumerate(ideal))
        return 1.0 - dcg / max(idcg, 1e-12)

    return per_query_oracle(loss)


def approx_mrr_oracle(temperature: float = 1.0) -> Callable[[Lists], float]:
    def loss(s: list[float], t: list[float]) -> float:
        ranks = smooth_ranks(s, temperature)
        return 1.0 - max(min(v, 1.0) / r for v, r in zip(t, ranks, strict=True))

    return per_query_oracle(loss)


def approx_rank_mse_oracle(
    temperature: float = 1.0, discount: str | None = None
) -> Callable[[Lists], float]:
    def oracle(lists: Lists) -> float:
        errors = []
        for s, t in lists:
            ranks = smooth_ranks(s, temperature)
            true = [0] * len(t)
            for position, index in enumerate(true_ranking(t), start=1):
                true[index] = position
            for r, big_r in zip(ranks, true, strict=True):
                weight = {None: 1.0, "log2": 1.0 / math.log2(big_r + 1), "reciprocal": 1.0 / big_r}
                errors.append(weight[discount] * (r - big_r) ** 2)
        return mean(errors)

    return oracle


# --------------------------------------------------------------------------------------------------
# Scoring losses: cases with ties, padding, all-zero targets, an all-padding query, (Q, D, T) targets
# --------------------------------------------------------------------------------------------------

NEG = -1e4  # a huge padded score: must change nothing

SCORING_CASES = {
    "ties": (
        [[2.0, 0.5, -1.0, 0.3], [0.1, 0.4, 0.2, -0.5]],
        [[2.0, 1.0, 1.0, 0.0], [0.0, 3.0, 3.0, 1.0]],
        [[True] * 4, [True] * 4],
    ),
    "padding": (
        [[1.5, -0.5, 0.7, 1e4], [0.3, 2.0, NEG, 1e4]],
        [[1.0, 0.0, 2.0, 5.0], [1.0, 1.0, 9.0, 3.0]],
        [[True, True, True, False], [True, True, False, False]],
    ),
    "padding_in_the_middle": (
        [[0.2, 1e4, -0.4, 0.9]],
        [[0.0, 7.0, 2.0, 1.0]],
        [[True, False, True, True]],
    ),
    "all_zero_targets": (
        [[0.3, -0.2, 1.1], [0.5, 0.5, 0.0]],
        [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
        [[True] * 3, [True] * 3],
    ),
    "all_padding_query": (
        [[0.3, -1.2, 0.8], [1e4, NEG, 3.0]],
        [[1.0, 0.0, 2.0], [1.0, 2.0, 0.0]],
        [[True, True, True], [False, False, False]],
    ),
    "graded": (
        [[0.9, 0.1, -0.3, 0.4, 1.7]],
        [[3.0, 0.0, 1.0, 2.0, 1.0]],
        [[True] * 5],
    ),
}
