"""Reporting: finished runs loaded, statistics, claims, tables, figures, provenance and the PDF.
Never imports torch or the engine."""
