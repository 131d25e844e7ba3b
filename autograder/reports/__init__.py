"""HTML for people: per-submission feedback and the class report."""

from .html import render_class_report, render_feedback

__all__ = ["render_class_report", "render_feedback"]
