"""Reports: the audit report (HTML with plots + JSON summary) of a published version."""

from .audit import audit_summary, render_audit_html, write_audit_report

__all__ = ["audit_summary", "render_audit_html", "write_audit_report"]
