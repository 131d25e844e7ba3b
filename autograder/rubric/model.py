"""Rubric data: plain frozen dataclasses built from a validated YAML document."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Options of an efficiency part that only scoring reads (bands, the written answer's points).
SCORING_ONLY = ("measures", "written")
PART_KINDS = ("tests", "metric", "timing", "reflection", "artifact", "inquiry", "efficiency")


class RubricError(ValueError):
    """A rubric file is invalid; the message starts with `file:line:`."""


@dataclass(frozen=True)
class Band:
    bound: float     # metric: value >= bound; timing: ratio <= bound
    points: float


@dataclass(frozen=True)
class Part:
    id: str
    kind: str
    title: str
    points: float
    cells: dict = field(default_factory=dict)       # tests: grade cell id -> points
    metric: str | None = None                       # metric parts
    cell: str | None = None                         # timing: tagged cell; reflection: answer cell
    bands: dict = field(default_factory=dict)       # profile -> tuple[Band, ...], best first
    options: dict = field(default_factory=dict)     # kind-specific extras (reflection criteria, ...)

    @property
    def grade_cell_ids(self) -> tuple[str, ...]:
        """The nbgrader grade cells holding this part's points in the gradebook."""
        if self.kind == "tests":
            return tuple(self.cells)
        if self.kind in ("reflection", "inquiry"):
            return (self.cell,)
        return (f"rubric_{self.id}",)


@dataclass(frozen=True)
class Rubric:
    assignment: str
    title: str
    version: int
    dataset: str | None
    parts: tuple[Part, ...]
    limits: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def total_points(self) -> float:
        return sum(p.points for p in self.parts)

    def part(self, part_id: str) -> Part:
        for p in self.parts:
            if p.id == part_id:
                return p
        raise KeyError(part_id)

    def of_kind(self, kind: str) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.kind == kind)

    def test_points(self) -> dict[str, float]:
        return {cell: pts for p in self.of_kind("tests") for cell, pts in p.cells.items()}

    @property
    def answer_parts(self) -> tuple[Part, ...]:
        """Parts scored from a written answer cell (the cell holds their points in nbgrader)."""
        return tuple(p for p in self.parts if p.kind in ("reflection", "inquiry"))

    @property
    def evaluates_artifacts(self) -> bool:
        """Whether the notebook must export something for the evaluator."""
        return any(p.kind in ("metric", "artifact", "inquiry", "efficiency") for p in self.parts)

    def evaluation_plan(self) -> dict:
        """What the trusted evaluator measures, as plain data: it reads no rubric file."""
        return {"dataset": self.dataset, "classification": bool(self.of_kind("metric")),
                "inquiry": bool(self.of_kind("inquiry")),
                "efficiency": [[p.id, {k: v for k, v in p.options.items() if k not in SCORING_ONLY}]
                               for p in self.of_kind("efficiency")],
                "checks": [[p.id, p.options["check"], p.options.get("options", {})] for p in self.of_kind("artifact")]}

    @property
    def latency_part(self) -> Part | None:
        """The artifact part that scores a service's latency relative to the reference's service on
        the same runner (its check options hold `latency_bands`), if any."""
        return next((p for p in self.of_kind("artifact") if "latency_bands" in p.options.get("options", {})), None)

    @property
    def needs_reference_run(self) -> bool:
        """Whether students are scored against the reference run on the same runner (its training
        time, its service's latency): the reference notebook is run once per runner and cached."""
        return bool(self.of_kind("timing")) or self.latency_part is not None

    def task_cell_parts(self) -> tuple[Part, ...]:
        """Parts scored by the grader outside any notebook cell (nbgrader task cells hold their points)."""
        return tuple(p for p in self.parts if p.kind in ("metric", "timing", "artifact", "efficiency"))
