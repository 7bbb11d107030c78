"""How the command-line entry points end on an error whose message already names the fix.

A :class:`~lossbench.experiment.config_checks.ConfigurationError` (a setting that cannot work, a
sweep or experiment that does not exist) or a
:class:`~lossbench.experiment.tracking.TrackingError` (an MLflow store that cannot be used) ends the
command with one line, ``Error: <message>``, and exit status 1: a traceback through Hydra and the
stages would bury the one line that matters. ``HYDRA_FULL_ERROR=1`` shows the frames as usual.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from lossbench.experiment.config_checks import ConfigurationError
from lossbench.experiment.tracking import TrackingError


@contextmanager
def errors_in_one_line() -> Iterator[None]:
    """Turn the errors that name their fix into ``SystemExit("Error: <message>")``."""
    try:
        yield
    except (ConfigurationError, TrackingError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        raise SystemExit(f"Error: {error}") from None
