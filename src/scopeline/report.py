"""Kept so existing imports work: the report writer is :mod:`scopeline.present.report`."""

from .present.report import write_html_report

__all__ = ["write_html_report"]
