"""Render feedback and class reports as single-file HTML (figures inlined as PNG data)."""

from __future__ import annotations

import base64
import io
from collections import Counter
from pathlib import Path

from ..grading.results import STATUSES, GradeResult
from ..rubric import Rubric
from ..templates_env import render
from .views import Lateness, feedback_view, report_row, review_summary


def _png(path: str | Path) -> str | None:
    try:
        return base64.b64encode(Path(path).read_bytes()).decode()
    except OSError:
        return None


def render_feedback(result: GradeResult, rubric: Rubric, others: frozenset[str] = frozenset(),
                    marks: dict | None = None, lateness: Lateness | None = None) -> str:
    """The student's page. `others`: every other student's id (never shown); `marks`: this
    student's grade cells from the gradebook (manual scores and comments win)."""
    figures = {name: data for name, path in result.evaluation.get("figures", {}).items()
               if (data := _png(path))}
    view = feedback_view(result, rubric, frozenset(others) - {result.student}, marks, lateness)
    return render("feedback.html.j2", v=view, figures=figures)


def waiting_per_part(rubric: Rubric, rows) -> dict[str, int]:
    """part id -> submissions whose points on it wait for a human (none yet, or to confirm)."""
    return {part.id: sum(1 for row in rows if i < len(row.parts) and (row.parts[i].points is None or row.parts[i].review))
            for i, part in enumerate(rubric.parts)}


def _distribution_png(rubric: Rubric, rows) -> str:
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    parts = rubric.parts
    fig, axes = plt.subplots(1, len(parts), figsize=(2.6 * len(parts), 2.4), squeeze=False)
    waiting_by = waiting_per_part(rubric, rows)
    for i, (ax, part) in enumerate(zip(axes[0], parts)):
        graded = [row.parts[i].points for row in rows if i < len(row.parts) and row.parts[i].points is not None]
        waiting = waiting_by[part.id]
        ax.hist(graded, bins=min(10, max(3, int(part.points) + 1)), range=(0, part.points or 1), color="#4c72b0")
        ax.set_title(f"{part.id}" + (f" ({waiting} to review)" if waiting else ""), fontsize=9)
        ax.set_xlabel(f"points of {part.points:g}", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _runners(results: list[GradeResult]) -> list[tuple]:
    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    by: dict[str, list[GradeResult]] = {}
    for r in results:
        if r.timings.get("execute_s") is not None:
            by.setdefault(r.runner or "?", []).append(r)
    return [(name, len(rs), mean(r.timings.get("execute_s") for r in rs) or 0.0, mean(r.timings.get("train_s") for r in rs))
            for name, rs in sorted(by.items())]


def render_class_report(rubric: Rubric, results: list[GradeResult], profile: str, links: dict[str, str],
                        marks: dict | None = None, lateness: dict | None = None,
                        grader_failures: list[GradeResult] = ()) -> str:
    """The instructor's page. `marks`: student -> grade cells from the gradebook; `lateness`:
    student -> Lateness; `grader_failures`: newest attempts the grader failed (no grade replaced)."""
    marks, lateness = marks or {}, lateness or {}
    results = sorted(results, key=lambda r: r.student)
    rows = [report_row(r, rubric, marks.get(r.student), lateness.get(r.student)) for r in results]
    counts = Counter(r.status for r in results)
    mean = sum(row.score for row in rows) / len(rows) if rows else 0.0
    review = [(row, review_summary(row)) for row in rows if row.review]
    return render("class_report.html.j2", rubric=rubric, rows=rows, profile=profile, mean=mean,
                  by_status={s: counts.get(s, 0) for s in STATUSES}, review=review,
                  late=sum(bool(row.late) for row in rows), runners=_runners(results),
                  waiting={k: n for k, n in waiting_per_part(rubric, rows).items() if n},
                  figure=_distribution_png(rubric, rows) if rows else None, links=links,
                  grader_failures=list(grader_failures))
