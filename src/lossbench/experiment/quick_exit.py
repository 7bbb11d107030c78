"""End a finished command-line run without Python's interpreter teardown.

After a run, Python's normal exit destroys every module object of torch, Lightning, transformers
and MLflow one at a time (seconds on a small machine: ``bench/RESULTS.md``), spent on memory the
operating system reclaims anyway. :func:`quick_exit` does what a
finished run still needs from the exit, in the interpreter's order (the threading module's exit
hooks, then the ``atexit`` handlers; flushing the log handlers and the standard streams) and then
ends the process at once, like C's ``quick_exit``. The threading hooks matter to a sweep run by
Hydra's joblib launcher: loky shuts its worker processes down in one, and multiprocessing's
``atexit`` handler then joins them; without it that join waits out the workers' idle timeout.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from typing import NoReturn


def quick_exit(status: int = 0) -> NoReturn:
    """Run the exit hooks of ``threading`` and ``atexit``, flush logs and streams, and end the
    process with ``status``."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # its exit hooks, then non-daemon threads
        atexit._run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to flush to
                stream.flush()
    finally:
        os._exit(status)
