"""Render feedback and class reports as single-file HTML (figures inlined as PNG data)."""

from __future__ import annotations

import base64
import io
from collections import Counter
from pathlib import Path

from ..grading.results import STATUS_HELP, STATUSES, GradeResult
from ..rubric import Rubric
from ..templates_env import render


def _png(path: str | Path) -> str | None:
    try:
        return base64.b64encode(Path(path).read_bytes()).decode()
    except OSError:
        return None


def render_feedback(result: GradeResult, rubric: Rubric) -> str:
    figures = {name: data for name, path in result.evaluation.get("figures", {}).items()
               if (data := _png(path))}
    pending = sum(p.max_points for p in result.parts if p.points is None)
    return render("feedback.html.j2", r=result, title=rubric.title, figures=figures, pending=pending,
                  status_help=STATUS_HELP.get(result.status, ""))


def _distribution_png(rubric: Rubric, results: list[GradeResult]) -> str:
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    parts = rubric.parts
    fig, axes = plt.subplots(1, len(parts), figsize=(2.6 * len(parts), 2.4), squeeze=False)
    for ax, part in zip(axes[0], parts):
        values = [next((p.points for p in r.parts if p.id == part.id), None) for r in results]
        graded = [v for v in values if v is not None]
        ax.hist(graded, bins=min(10, max(3, int(part.points) + 1)), range=(0, part.points or 1), color="#4c72b0")
        ax.set_title(f"{part.id} ({len(values) - len(graded)} pending)", fontsize=9)
        ax.set_xlabel(f"points of {part.points:g}", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _review(results: list[GradeResult]) -> list[tuple[str, list[str]]]:
    """Who needs a human, and why."""
    out = []
    for r in results:
        reasons = [f"{p.id}: {p.explanation}" for p in r.parts if p.needs_review] + list(r.flags)
        if r.status in ("crashed", "invalid", "grader_error"):
            reasons.insert(0, f"{r.status}: {r.message}")
        if reasons:
            out.append((r.student, reasons))
    return out


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
                        grader_failures: list[GradeResult] = ()) -> str:
    results = sorted(results, key=lambda r: r.student)
    counts = Counter(r.status for r in results)
    mean = sum(r.score for r in results) / len(results) if results else 0.0
    return render("class_report.html.j2", rubric=rubric, results=results, profile=profile, mean=mean,
                  by_status={s: counts.get(s, 0) for s in STATUSES}, review=_review(results),
                  runners=_runners(results), figure=_distribution_png(rubric, results) if results else None,
                  links=links, grader_failures=list(grader_failures))
