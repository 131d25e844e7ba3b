"""Reflection (written-answer) scoring: suggested points with reasons, confidence and flags.

Plain data in, plain data out; see docs/reflection.md for the design.
"""

from .calibration import Calibration, CalibrationError, fit_pairs
from .duplicates import near_duplicates
from .fitting import fit_calibration, fit_course
from .scorer import Suggestion, suggest, suggest_many
from .spec import (
    REFLECTION_SCHEMA,
    Criterion,
    Misconception,
    ReflectionSpec,
    SpecError,
    spec_from_dict,
)

__all__ = [
    "Calibration",
    "CalibrationError",
    "Criterion",
    "Misconception",
    "REFLECTION_SCHEMA",
    "ReflectionSpec",
    "SpecError",
    "Suggestion",
    "fit_calibration",
    "fit_course",
    "fit_pairs",
    "near_duplicates",
    "spec_from_dict",
    "suggest",
    "suggest_many",
]
