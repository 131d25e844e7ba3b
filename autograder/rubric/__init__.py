"""Rubrics: one YAML file per assignment, validated by a JSON schema with line-precise errors."""

from .model import Band, Part, Rubric, RubricError
from .load import load_rubric, parse_rubric, reflection_spec

__all__ = ["Band", "Part", "Rubric", "RubricError", "load_rubric", "parse_rubric", "reflection_spec"]
