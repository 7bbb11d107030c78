"""The artifact folders of a cross-validation sweep, one line per (loss, seed): ``loss seed folder...``
with the folders in fold order, for ``docs/cranfield-comparison/paired_difference.py``.

    python docs/cranfield-cv-comparison/fold_folders.py sqlite:///<root>/mlflow.db compare_losses_cranfield_cv |
      while read loss seed folders; do echo "== $loss $seed"
        python docs/cranfield-comparison/paired_difference.py $folders | tail -1; done

Only FINISHED runs of a local artifact store; a (loss, seed) appears once per fold (the latest run).
"""

from __future__ import annotations

import sys
from urllib.parse import urlparse

from mlflow.tracking import MlflowClient


def fold_folders(uri: str, experiment: str) -> dict[tuple[str, int], dict[int, str]]:
    """(loss, seed) -> fold -> the run's local artifact folder."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} in {uri}")
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'")
    folders: dict[tuple[str, int], dict[int, str]] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        tags = run.data.tags
        if "fold" not in tags or "loss" not in tags:
            continue  # the sweep's parent, comparisons
        key = (tags["loss"], int(tags["seed"]))
        folders.setdefault(key, {})[int(tags["fold"])] = urlparse(run.info.artifact_uri).path
    return folders


def main() -> None:
    uri, experiment = sys.argv[1:3]
    for (loss, seed), by_fold in sorted(fold_folders(uri, experiment).items()):
        print(loss, seed, " ".join(by_fold[fold] for fold in sorted(by_fold)))


if __name__ == "__main__":
    main()
