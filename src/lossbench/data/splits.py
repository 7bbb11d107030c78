"""Fixed, documented rules that split queries into train/dev/test when a collection has no splits.

The rule: order the query ids by ``(crc32(id as UTF-8), id)`` (a stable pseudo-random order that
does not depend on the order of the file or on Python's hash seed), then cut that order into
consecutive slices. The same ids always give the same splits, on every machine and version.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable


def hash_order(query_ids: Iterable[str]) -> list[str]:
    """``query_ids`` in the order of ``(crc32(id), id)``."""
    return sorted(set(query_ids), key=lambda qid: (zlib.crc32(qid.encode("utf-8")), qid))


def _size(total: int, percent: float) -> int:
    return math.floor(total * percent / 100 + 0.5)


def split_by_percent(
    query_ids: Iterable[str], dev_percent: float, test_percent: float, fold: int = 0
) -> dict[str, list[str]]:
    """Split into ``test`` (the first ``test_percent`` of the hash order), ``dev`` (the next
    ``dev_percent``) and ``train`` (the rest); sizes are rounded half up, dev and test get at least one.

    ``fold`` (k-fold cross-validation): the order is first rotated by ``fold`` test-sized slices,
    so fold ``f`` tests the ``f``-th slice and validates on the one after it (wrapping around).
    Folds ``0 .. k-1``, ``k`` = the number of whole test slices (:func:`number_of_folds`), test
    disjoint sets of queries, together all of them when the test size divides the count.

    For Cranfield's 225 queries with 20/20: 45 test, 45 dev, 135 train, in 5 folds.
    """
    ordered = hash_order(query_ids)
    if dev_percent < 0 or test_percent < 0 or dev_percent + test_percent >= 100:
        raise ValueError(
            f"dev_percent={dev_percent} and test_percent={test_percent} must be >= 0 and leave "
            "some queries for training (sum < 100)"
        )
    if len(ordered) < 3:
        raise ValueError(f"{len(ordered)} queries cannot be split into train, dev and test")
    n_test = max(1, _size(len(ordered), test_percent))
    n_dev = max(1, _size(len(ordered), dev_percent))
    if n_test + n_dev >= len(ordered):
        raise ValueError(f"{len(ordered)} queries leave none for training with these percentages")
    folds = number_of_folds(len(ordered), test_percent)
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise ValueError(
            f"fold={fold!r}: {len(ordered)} queries with test_percent={test_percent} make "
            f"{folds} folds of {n_test} test queries; give an integer from 0 to {folds - 1}"
        )
    start = fold * n_test
    ordered = ordered[start:] + ordered[:start]
    return {
        "test": ordered[:n_test],
        "dev": ordered[n_test : n_test + n_dev],
        "train": ordered[n_test + n_dev :],
    }


def number_of_folds(count: int, test_percent: float) -> int:
    """How many folds :func:`split_by_percent` makes of ``count`` queries: whole test slices."""
    return count // max(1, _size(count, test_percent))


def hold_out(query_ids: Iterable[str], percent: float) -> tuple[list[str], list[str]]:
    """``(held out, kept)``: the first ``percent`` of the hash order (at least one, never all) and the rest.

    Used to validate on a slice of the train queries when a collection has no dev qrels.
    """
    ordered = hash_order(query_ids)
    if len(ordered) < 2:
        raise ValueError(
            f"{len(ordered)} train queries: need at least 2 to hold some out for validation"
        )
    count = min(max(1, _size(len(ordered), percent)), len(ordered) - 1)
    return ordered[:count], ordered[count:]
