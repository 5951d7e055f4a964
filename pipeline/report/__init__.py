"""The reports of a build and an audit: the sections they are made of, the renderers, and the measures only a
report needs. One section model (``document``) is built from a ``BuildReport`` or an ``AuditReport`` and drawn
twice, as report.md / audit.md and report.html / audit.html; report.json is the pydantic model itself.

The modules: ``document`` (the section model: Document, Section, tables, charts, and the helpers the builders
share), ``build_sections`` (a build's sections, and the profile and memory sections an audit shares),
``audit_sections`` (an audit's sections), ``sections`` (``document(report)``: build or audit, its own module so
the renderers import it without a cycle), ``markdown`` and ``html`` (the renderers), ``profile`` (the dataset
profile), ``memory`` (the memory estimate of a build's ``train:`` settings), ``stages`` (the dedup, split and
token sections of the global stages). Nothing is re-exported here: import the module you need.
"""
