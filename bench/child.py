"""The environment a benchmark runs in, and gives the processes it starts: offline (no model hub,
no network), quiet (no tokenizer threads, no MLflow progress bars), with the repository on
``PYTHONPATH`` so that a child imports this checkout's code."""

from __future__ import annotations

import os

from bench.record import REPO

OFFLINE_ENV = {
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def set_offline_defaults() -> None:
    """This process: each of :data:`OFFLINE_ENV` unless the caller set it already."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def child_env() -> dict[str, str]:
    """This environment plus the repository on ``PYTHONPATH`` and :data:`OFFLINE_ENV`."""
    env = dict(os.environ)
    paths = [str(REPO / "src"), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(paths), **OFFLINE_ENV)
    return env
