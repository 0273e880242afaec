"""The environment labelq runs in, in one place: model and dataset hubs offline, no telemetry, Prefect's
temporary server without its UI and with time to start on 2 cores, and labelq's progress lines in
Prefect's logs. Each is a default: a variable already set wins.

The command line (``labelq.cli``) sets ``ENV``; the flows package (``labelq.flows``) the log settings a
flow needs when it is imported on its own; a scheduled run gets ``RUN_ENV`` (``flows/schedule.py``);
the tests and the bench scripts set theirs from here too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

HUBS = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # nothing is downloaded from a model or dataset hub at run time
LOGS = {"PREFECT_LOGGING_EXTRA_LOGGERS": "labelq", "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore"}
PREFECT = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",  # the temporary server takes 10-17 s to start on 2 cores
}
ENV = {**HUBS, **PREFECT, **LOGS}
RUN_ENV = {**HUBS, "PREFECT_LOGGING_EXTRA_LOGGERS": "labelq"}  # a scheduled run's job variables


def set_defaults(env: Mapping[str, str] = ENV) -> None:
    """Set each of ``env``'s variables that is not set already."""
    for var, value in env.items():
        os.environ.setdefault(var, value)
