"""Reflection (written-answer) specs: plain frozen dataclasses built from the rubric's YAML dict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "Criterion",
    "Misconception",
    "ReflectionSpec",
    "SpecError",
    "spec_from_dict",
    "REFLECTION_SCHEMA",
]


class SpecError(ValueError):
    """A reflection spec dict does not have the expected shape; the message names the field."""


@dataclass(frozen=True)
class Criterion:
    """A concept the answer should contain."""

    name: str
    points: float
    phrasings: tuple[str, ...]  # synonyms and example phrasings
    # The phrasing's words must come in its order ("pre-order visits the root, then left, then
    # right"); matched by wording only, since sentence embeddings barely see word order.
    ordered: bool = False


@dataclass(frozen=True)
class Misconception:
    """A wrong idea that costs points when the answer asserts it."""

    name: str
    penalty: float
    phrasings: tuple[str, ...]


@dataclass(frozen=True)
class ReflectionSpec:
    """One written question. Without criteria, they are derived from the reference answers."""

    id: str
    question: str
    points: float
    reference_answers: tuple[str, ...]
    criteria: tuple[Criterion, ...] = ()
    misconceptions: tuple[Misconception, ...] = ()
    expected_words: tuple[int, int] = (20, 200)  # min, max

    def __post_init__(self) -> None:
        if not self.criteria:
            object.__setattr__(self, "criteria", derive_criteria(self.reference_answers, self.points))

    @property
    def derived_criteria(self) -> bool:
        return bool(self.criteria) and self.criteria[0].name.startswith(DERIVED_PREFIX)

    def with_references(self, extra: Sequence[str], leave_out: str = "") -> ReflectionSpec:
        """The item with more reference answers (not `leave_out`, the answer being scored: it
        would be its own reference); derived criteria are derived again from them all."""
        known = {r.strip() for r in self.reference_answers} | {leave_out.strip()}
        added = tuple(dict.fromkeys(r for r in extra if r.strip() and r.strip() not in known))
        return self.with_reference_answers(self.reference_answers + added) if added else self

    def with_reference_answers(self, references: tuple[str, ...]) -> ReflectionSpec:
        """The item with these reference answers; derived criteria are derived again from them."""
        return replace(self, reference_answers=references, criteria=() if self.derived_criteria else self.criteria)


DERIVED_PREFIX = "reference_point_"
# A reference of more sentences than this is one criterion per group of sentences.
MAX_DERIVED = 4


def derive_criteria(references: tuple[str, ...], points: float) -> tuple[Criterion, ...]:
    """Criteria for an item that has only reference answers.

    Each sentence of the longest reference is one criterion of equal points (a four-sentence
    model answer makes four points to cover); the other references are alternative wordings
    of the whole, so each counts as a phrasing of every criterion.
    """
    from .concepts import split_sentences  # concepts imports nothing from here

    refs = [r for r in references if r.strip()]
    if not refs:
        return ()
    main = max(refs, key=lambda r: (len(split_sentences(r)), len(r)))
    sentences = split_sentences(main) or [main]
    n = min(len(sentences), MAX_DERIVED)
    size = -(-len(sentences) // n)
    groups = [" ".join(sentences[i * size : (i + 1) * size]) for i in range(n)]
    groups = [g for g in groups if g]
    others = tuple(r for r in refs if r != main)
    if len(groups) == 1:
        return (Criterion(f"{DERIVED_PREFIX}1", points, (groups[0], *others)),)
    share = points / len(groups)
    return tuple(
        Criterion(f"{DERIVED_PREFIX}{i + 1}", share, (g, *others)) for i, g in enumerate(groups)
    )


_PHRASINGS = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "string", "minLength": 1, "pattern": "\\S"},
}

# JSON schema (draft 2020-12) of one reflection item in a rubric file.
REFLECTION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "autograder/reflection.schema.json",
    "title": "Reflection (written answer) item",
    "type": "object",
    # criteria may be left out: they are then derived from the reference answers
    "required": ["id", "question", "points", "reference_answers"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "minLength": 1, "pattern": "\\S"},
        "question": {"type": "string", "minLength": 1, "pattern": "\\S"},
        "points": {"type": "number", "exclusiveMinimum": 0},
        "expected_words": {
            "type": "array",
            "prefixItems": [
                {"type": "integer", "minimum": 0},
                {"type": "integer", "minimum": 1},
            ],
            "minItems": 2,
            "maxItems": 2,
        },
        "reference_answers": _PHRASINGS,
        "criteria": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "points", "phrasings"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "pattern": "\\S"},
                    "points": {"type": "number", "exclusiveMinimum": 0},
                    "phrasings": _PHRASINGS,
                    "ordered": {"type": "boolean"},
                },
            },
        },
        "misconceptions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "penalty", "phrasings"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "pattern": "\\S"},
                    "penalty": {"type": "number", "exclusiveMinimum": 0},
                    "phrasings": _PHRASINGS,
                },
            },
        },
    },
}


def spec_from_dict(d: dict) -> ReflectionSpec:
    """Build a ReflectionSpec from the rubric's dict shape; raise SpecError naming the bad field.

    Beyond the JSON schema this checks what a schema cannot express: the criteria's points
    must add up to the item's points, names must be unique, min words <= max words.
    """
    _validate_schema(d)
    where = f"reflection {d['id']!r}"
    criteria = tuple(
        Criterion(c["name"], float(c["points"]), _strings(c["phrasings"]), bool(c.get("ordered", False)))
        for c in d.get("criteria", ())
    )
    misconceptions = tuple(
        Misconception(m["name"], float(m["penalty"]), _strings(m["phrasings"]))
        for m in d.get("misconceptions", ())
    )
    _unique([c.name for c in criteria], f"{where}: criteria")
    _unique([m.name for m in misconceptions], f"{where}: misconceptions")
    points = float(d["points"])
    total = sum(c.points for c in criteria)
    if criteria and abs(total - points) > 1e-6:
        raise SpecError(
            f"{where}: criteria points add up to {total:g} but the item is worth {points:g}"
        )
    lo, hi = d.get("expected_words", (20, 200))
    if lo > hi:
        raise SpecError(f"{where}: expected_words min {lo} is larger than max {hi}")
    return ReflectionSpec(
        id=d["id"],
        question=d["question"].strip(),
        points=points,
        reference_answers=_strings(d["reference_answers"]),
        criteria=criteria,
        misconceptions=misconceptions,
        expected_words=(int(lo), int(hi)),
    )


def _validate_schema(d: Any) -> None:
    import jsonschema  # imported here: only the rubric loader path needs it

    if not isinstance(d, dict):
        raise SpecError(f"a reflection item must be a mapping, got {type(d).__name__}")
    validator = jsonschema.Draft202012Validator(REFLECTION_SCHEMA)
    errors = sorted(validator.iter_errors(d), key=lambda e: list(e.absolute_path))
    if errors:
        ident = d.get("id", "<no id>")
        lines = [f"{_path(e)}: {e.message}" for e in errors]
        raise SpecError(f"reflection {ident!r} is invalid:\n  " + "\n  ".join(lines))


def _path(error: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    return "item" + "".join(parts)


def _strings(items: list[str]) -> tuple[str, ...]:
    return tuple(s.strip() for s in items)


def _unique(names: list[str], where: str) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{where}: duplicate names {', '.join(dupes)}")
