"""labelq: find, fix and prove label errors in datasets.

The stages are plain functions over Arrow tables and numpy arrays; ``labelq.audit`` runs them all
in-process, and ``labelq.flows.audit.audit_flow`` runs them as a Prefect flow. Heavy dependencies
(torch, cleanlab, duckdb, matplotlib) are imported by the modules that use them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import InputError, LabelqError, MissingDependencyError, SourceNotFoundError, StoreError  # noqa: E402


def __getattr__(name: str):
    # lazy entry points keep `import labelq` fast
    lazy = {
        "audit": ("pipeline", "audit"),
        "AuditConfig": ("pipeline", "AuditConfig"),
        "load_examples": ("ingest", "load_examples"),
        "IngestOptions": ("ingest", "IngestOptions"),
        "cross_val_pred_probs": ("predict", "cross_val_pred_probs"),
        "load_pred_probs": ("predict", "load_pred_probs"),
        "find_label_issues": ("detect", "find_label_issues"),
        "Store": ("store", "Store"),
        "run_query": ("sql", "run_query"),
        "relabel": ("relabel", "relabel"),
        "RelabelConfig": ("relabel", "RelabelConfig"),
        "apply_reviews": ("relabel.review", "apply_reviews"),
        "export_review": ("relabel.review", "export_review"),
        "export_training": ("relabel.export", "export_training"),
    }
    if name in lazy:
        import importlib

        module, attr = lazy[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'labelq' has no attribute {name!r}")


__all__ = [
    "__version__",
    "audit",
    "AuditConfig",
    "load_examples",
    "IngestOptions",
    "cross_val_pred_probs",
    "load_pred_probs",
    "find_label_issues",
    "Store",
    "run_query",
    "relabel",
    "RelabelConfig",
    "apply_reviews",
    "export_review",
    "export_training",
    "LabelqError",
    "InputError",
    "MissingDependencyError",
    "SourceNotFoundError",
    "StoreError",
]
