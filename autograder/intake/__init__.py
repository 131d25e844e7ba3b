"""Intake: collecting student submissions into the course folder (see docs/intake.md)."""

from .collect import Accepted, CollectReport, Rejected, collect, detect_kind

__all__ = ["Accepted", "CollectReport", "Rejected", "collect", "detect_kind"]
