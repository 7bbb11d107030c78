"""quick_exit: the atexit handlers run and the output is flushed before the process ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "src")},
        timeout=60,
    )
    assert done.returncode == 3
    assert done.stdout == "printed, not flushed"
    assert marker.read_text() == "yes"
    assert "logged before the exit" in log_file.read_text()
