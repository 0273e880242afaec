"""Prefect flows of labelq (installed as ``labelq.flows``). Each flow composes library steps as tasks."""

import os

# labelq's progress (folds, epochs, rows) goes to Prefect's logs too; set before Prefect configures logging
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "labelq")
# the library also logs outside flow runs (plain Python use): that is not an error
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
