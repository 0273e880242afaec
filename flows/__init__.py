"""Prefect flows of labelq (installed as ``labelq.flows``). Each flow composes library steps as tasks."""

from labelq.offline import LOGS, set_defaults

# labelq's progress (folds, epochs, rows) goes to Prefect's logs too, and the library's logs outside flow runs are
# no error: set before Prefect configures logging
set_defaults(LOGS)
