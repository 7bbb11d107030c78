"""Result bookkeeping: one JSON file per benchmark invocation, naming the command and the commit.

Every figure of ``bench/RESULTS.md`` is rendered by :mod:`bench.summary` from one of these files,
and every ratio in a file was measured inside the invocation that wrote it (a file is written
whole, never merged with an earlier one). A file records:

* ``benchmark``: its name (``train_step_cpu``, ``sweep_cpu_before``, ...);
* ``command``: how to run it again (``python -m bench.train_step --rounds 5``);
* ``commit`` / ``dirty``: the git commit of the code that ran, and whether the working tree had
  uncommitted changes then (a figure from a dirty tree cannot be traced: :mod:`bench.summary`
  says so beside it);
* ``machine``: date, CPU, cores, library versions, and the 1-minute load average at the start and
  at the end (the machine is shared: a load near the core count means noisy timings).

Full-mode results go to ``bench/results/`` (committed); ``--quick`` results, which only check that
a script works, go to ``bench/results/quick/`` (ignored by git).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = Path(os.environ.get("LOSSBENCH_BENCH_RESULTS", BENCH_DIR / "results"))
"""Where full-mode results go (committed; ``$LOSSBENCH_BENCH_RESULTS`` elsewhere, for tests)."""
QUICK_DIR = RESULTS_DIR / "quick"
"""Where ``--quick`` results go (ignored by git: a check, not a figure)."""
WORK_DIR = Path(os.environ.get("LOSSBENCH_BENCH_DIR", "/tmp/lossbench-bench"))
"""Scratch space (temp models, MLflow stores, caches): never inside the repository."""


def load_average() -> float | None:
    """The 1-minute load average (how busy the machine was: timings under load are noisy)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


STARTED = {
    "date": _dt.datetime.now().isoformat(timespec="seconds"),
    "load_average_1m": load_average(),
}
"""When this process started benchmarking (this module is imported first) and the load then."""


def results_dir(quick: bool) -> Path:
    """``bench/results`` for full-mode figures, ``bench/results/quick`` for checks."""
    return QUICK_DIR if quick else RESULTS_DIR


def git(*args: str) -> str | None:
    """Output of ``git <args>`` in the repository, or None where git or the repository is missing."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def code_version() -> dict[str, Any]:
    """The commit checked out now and whether the tree differs from it (results excluded)."""
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", ".", ":!bench/results")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


CODE_AT_START = code_version()
"""The code when this process started: a result is clean only if it is unchanged at the end."""


def code_that_ran() -> dict[str, Any]:
    """The commit at the start, dirty if the tree differed from it at the start or at the end.

    A benchmark runs for minutes and some start fresh processes that import the code later, so an
    edit or a commit made while it ran means its figures cannot be traced to one commit.
    """
    now = code_version()
    dirty = [CODE_AT_START["dirty"], now["dirty"], now["commit"] != CODE_AT_START["commit"]]
    return {
        "commit": CODE_AT_START["commit"],
        "dirty": None if None in dirty[:2] else any(dirty),
    }


def command_line(argv: list[str] | None = None) -> str:
    """``python -m bench.<script> <args>``: the command that produced a result."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    args = sys.argv[1:] if argv is None else argv
    if spec is not None and spec.name:
        head = ["python", "-m", spec.name.removesuffix(".__main__")]
    else:
        head = ["python", sys.argv[0]]
    return shlex.join([*head, *args])


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` is often empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM")
"""Environment variables that change how many threads a benchmark uses (recorded when set)."""


def machine_info() -> dict[str, Any]:
    """Date, CPU, cores, load at start and now, GPU, library versions."""
    import torch
    import transformers

    info: dict[str, Any] = {
        "started": STARTED["date"],
        "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m_start": STARTED["load_average_1m"],
        "load_average_1m_end": load_average(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "environment": {name: os.environ[name] for name in THREAD_SETTINGS if name in os.environ},
    }
    try:
        import lightning

        info["lightning"] = lightning.__version__
    except ImportError:  # pragma: no cover - a lossbench dependency
        pass
    return info


def write_result(
    name: str, payload: dict[str, Any], quick: bool, argv: list[str] | None = None
) -> Path:
    """Write ``payload`` with the command, commit and machine to ``<results>/<name>.json``.

    The file is replaced whole: a table never mixes rows of two invocations.
    """
    out_dir = results_dir(quick)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    document = {
        "benchmark": name,
        "command": command_line(argv),
        **code_that_ran(),
        "quick": quick,
        "machine": machine_info(),
        **payload,
    }
    path.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def read_results(folder: Path) -> dict[str, dict[str, Any]]:
    """Every ``*.json`` result in ``folder``, by benchmark name."""
    documents = {}
    for path in sorted(folder.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        documents[document.get("benchmark", path.stem)] = document
    return documents
