"""The section model of any report: ``document(report)`` is ``build_sections.build_document`` for a
``BuildReport`` and ``audit_sections.audit_document`` for an ``AuditReport``.

Contract: a pure function of the report. It is a module of its own (not in ``document``, which the builders
import) so that the renderers can call it without an import cycle.
"""

from __future__ import annotations

from pipeline.report.audit_sections import audit_document
from pipeline.report.build_sections import build_document
from pipeline.report.document import Document
from schemas.audit import AuditReport
from schemas.report import BuildReport


def document(report: BuildReport | AuditReport) -> Document:
    return audit_document(report) if isinstance(report, AuditReport) else build_document(report)
