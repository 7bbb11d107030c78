"""SIGTERM in a sweep's main process: an interrupt, so that its exit handlers still run."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.helpers import python_script


def test_a_sweep_killed_while_it_waits_on_its_jobs_runs_its_exit_handlers(tmp_path: Path) -> None:
    """With hydra/launcher=joblib the main process only waits; SIGTERM's default would end it
    without ending the sweep's parent run (an atexit handler)."""
    marker = tmp_path / "parent-ended"
    script = textwrap.dedent(
        f"""
        import atexit, os, signal, time
        from lossbench.experiment.termination import stop_sweep_on_sigterm
        atexit.register(lambda: open({str(marker)!r}, "w").write("FAILED"))
        stop_sweep_on_sigterm()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # waiting on the jobs
        """
    )
    done = python_script(script, timeout=60)
    assert done.returncode != 0
    assert "KeyboardInterrupt: signal 15: the sweep stops" in done.stderr
    assert marker.read_text() == "FAILED"
