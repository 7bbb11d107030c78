"""quick_exit: the atexit handlers run and the output is flushed before the process ends."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.helpers import python_script


def test_quick_exit_runs_atexit_handlers_flushes_and_keeps_the_status(tmp_path: Path) -> None:
    marker = tmp_path / "atexit-ran"
    log_file = tmp_path / "run.log"
    script = textwrap.dedent(
        f"""
        import atexit, logging, sys
        from lossbench.experiment.quick_exit import quick_exit
        atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))
        logging.basicConfig(filename={str(log_file)!r}, level=logging.INFO)
        logging.getLogger("lossbench").info("logged before the exit")
        sys.stdout.write("printed, not flushed")  # no newline: still in the buffer
        quick_exit(3)
        print("never reached")
        """
    )
    done = python_script(script, timeout=60)
    assert done.returncode == 3
    assert done.stdout == "printed, not flushed"
    assert marker.read_text() == "yes"
    assert "logged before the exit" in log_file.read_text()


def test_quick_exit_shuts_a_joblib_pool_down_before_joining_its_workers() -> None:
    """Loky stops its workers in a threading exit hook; multiprocessing's atexit handler joins them.
    Skipping the hook left a sweep of hydra/launcher=joblib waiting on idle workers after its jobs."""
    script = textwrap.dedent(
        """
        import threading
        from joblib.externals.loky import get_reusable_executor
        from lossbench.experiment.quick_exit import quick_exit
        threading._register_atexit(lambda: print("threading exit hook ran", flush=True))
        pool = get_reusable_executor(max_workers=1, timeout=600)  # idle workers would wait 10 min
        assert pool.submit(sum, [1, 2]).result() == 3
        quick_exit(0)
        """
    )
    done = python_script(script, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "threading exit hook ran\n"
