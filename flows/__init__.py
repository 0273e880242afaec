"""Prefect flows of labelq (installed as ``labelq.flows``). Each flow composes library steps as tasks."""
