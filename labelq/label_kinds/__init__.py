"""The built-in kinds of label (``labelq.labelkind``): ``single`` (one class a row) and ``tags`` (multi-label).

Each module defines one ``LabelKind`` and registers it; the registry imports them when first asked.
"""
