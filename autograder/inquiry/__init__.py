"""The one-variable inquiry loop: a student changes exactly one variable of a baseline
configuration, runs both, and reflects on the evidence. The grader checks the logged experiment
against the reflection (see docs/inquiry.md)."""

from .checks import CHECK_TITLES, Check, InquiryGrade, changes, grade_inquiry
from .log import Measured, measured, plain_log

__all__ = ["CHECK_TITLES", "Check", "InquiryGrade", "Measured", "changes", "grade_inquiry", "measured", "plain_log"]
