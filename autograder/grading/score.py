"""score: rubric parts -> points and a short explanation each. A registry of small scorers."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import nbformat
from nbgrader.utils import determine_grade

from ..rubric import Part, Rubric, reflection_spec
from .results import PartResult

# stderr lines that are noise, not failures (nbgrader would give a test cell zero for them)
IGNORED_STDERR = re.compile(r"(Warning|warn\(|warnings\.warn|it/s\]|s/it\]|\d+%\|)")
VALUE_TOLERANCE = 0.02   # self-reported vs evaluator-measured metric


@dataclass
class ScoringInput:
    profile: str
    executed: nbformat.NotebookNode | None
    evaluation: dict = field(default_factory=dict)
    train_s: float | None = None
    reference_train_s: float | None = None
    calibrations: dict = field(default_factory=dict)   # reflection part id -> Calibration


def _grade_cells(nb) -> dict:
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in (nb.cells if nb else [])}


def _without_noise(cell):
    """A copy of the cell without stderr noise (warnings, progress bars)."""
    cell = copy.deepcopy(cell)
    kept = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = "".join(out.get("text", ""))
            lines = [ln for ln in text.splitlines() if ln.strip() and not IGNORED_STDERR.search(ln)]
            if not lines:
                continue
        kept.append(out)
    cell.outputs = kept
    return cell


def _first_error(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {str(out.get('evalue', ''))[:200]}".rstrip(": ")
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return "wrote to stderr: " + "".join(out.get("text", ""))[:200]
    return ""


def score_tests(part: Part, data: ScoringInput) -> PartResult:
    cells = _grade_cells(data.executed)
    per_cell, lines = {}, []
    for gid, max_points in part.cells.items():
        cell = cells.get(gid)
        if cell is None or cell.get("execution_count") is None:
            per_cell[gid] = 0.0
            lines.append(f"{gid}: 0/{max_points:g} (did not run)")
            continue
        got, _ = determine_grade(_without_noise(cell))
        per_cell[gid] = float(got or 0)
        lines.append(f"{gid}: {per_cell[gid]:g}/{max_points:g}" +
                     ("" if per_cell[gid] == max_points else f" ({_first_error(cell)})"))
    return PartResult(part.id, part.kind, part.title, sum(per_cell.values()), part.points, "; ".join(lines),
                      details={"cells": per_cell})


def _band_points(bands, value: float, better_high: bool) -> tuple[float, str]:
    for band in bands:
        if (value >= band.bound) if better_high else (value <= band.bound):
            return band.points, f"{'at least' if better_high else 'at most'} {band.bound:g}"
    return 0.0, "below every band"


def score_metric(part: Part, data: ScoringInput) -> PartResult:
    ev = data.evaluation
    if not ev.get("ok"):
        why = ev.get("error", "no evaluation")
        return PartResult(part.id, part.kind, part.title, 0.0, part.points, f"0 points: {why}")
    value = float(ev["test"][part.metric])
    points, band = _band_points(part.bands[data.profile], value, better_high=True)
    return PartResult(part.id, part.kind, part.title, points, part.points,
                      f"{part.metric} on the hidden test split: {value:.3f} ({band}, {data.profile} profile)",
                      details={"value": value})


def score_timing(part: Part, data: ScoringInput, metric_ok: bool = True) -> PartResult:
    if data.train_s is None:
        return PartResult(part.id, part.kind, part.title, 0.0, part.points,
                          f"0 points: the cell tagged '{part.cell}' did not complete")
    if not data.reference_train_s:
        return PartResult(part.id, part.kind, part.title, None, part.points,
                          "no reference time on this runner yet; a grader will look", needs_review=True)
    ratio = data.train_s / data.reference_train_s
    detail = {"train_s": data.train_s, "reference_s": data.reference_train_s, "ratio": ratio}
    if not metric_ok:
        return PartResult(part.id, part.kind, part.title, 0.0, part.points,
                          f"trained in {data.train_s:.1f} s, but a model that reaches no accuracy band "
                          "earns no timing points", details=detail)
    points, band = _band_points(part.bands[data.profile], ratio, better_high=False)
    return PartResult(part.id, part.kind, part.title, points, part.points,
                      f"training took {data.train_s:.1f} s, {ratio:.2f}x the reference's {data.reference_train_s:.1f} s "
                      f"on this runner ({band})", details=detail)


def written_answer(part: Part, nb) -> str:
    """The written answer in the part's cell, nbgrader's "YOUR ANSWER HERE" lines removed (so the
    untouched placeholder is "")."""
    from ..reflection.text import without_placeholder

    cell = _grade_cells(nb).get(part.cell)
    return without_placeholder(cell.source if cell is not None else "")


def _answer(part: Part, data: ScoringInput) -> tuple[str, str]:
    """The written answer, and the same text with its paragraphs unwrapped: markdown wraps
    sentences over lines, the scorers read sentences."""
    answer = written_answer(part, data.executed)
    return answer, "\n\n".join(" ".join(p.split()) for p in answer.split("\n\n"))


def score_reflection(part: Part, data: ScoringInput) -> PartResult:
    """A suggested score with reasons when the rubric gives criteria or reference answers; a
    human has the last word (a manual score in formgrader always wins), and low confidence or a
    gaming flag asks for one. The answer is read by reflection.answer_text, as calibration reads it."""
    answer, _ = _answer(part, data)
    if not answer:
        return PartResult(part.id, part.kind, part.title, 0.0, part.points, "0 points: no answer was written")
    spec = reflection_spec(part)
    if spec is None:
        return PartResult(part.id, part.kind, part.title, None, part.points,
                          "graded by your instructor", needs_review=True, details={"answer": answer})
    from ..reflection import suggest
    from ..reflection.text import answer_text

    s = suggest(answer_text(answer), spec, data.calibrations.get(part.id))
    verdict = "suggested score, an instructor will confirm it" if s.needs_review else "suggested score"
    return PartResult(part.id, part.kind, part.title, s.points, part.points,
                      f"{verdict} (confidence {s.confidence:.2f}): " + "; ".join(s.reasons[:8]),
                      needs_review=s.needs_review,
                      details={"answer": answer, "confidence": s.confidence, "flags": s.flags,
                               "criteria_met": s.criteria_met, "reasons": s.reasons,
                               "raw": s.raw, "share_before_caps": s.share_before_caps})


def score_inquiry(part: Part, data: ScoringInput) -> PartResult:
    """The one-variable inquiry loop: each check of the logged experiment against the written
    reflection earns its points and says why (autograder/inquiry)."""
    from ..inquiry import grade_inquiry

    answer, unwrapped = _answer(part, data)
    inquiry = data.evaluation.get("inquiry") or {}
    if not inquiry.get("log", {}).get("runs"):
        why = data.evaluation.get("error") or "no experiment log was exported (the runs or the export cell did not finish)"
        return PartResult(part.id, part.kind, part.title, 0.0, part.points, f"0 points: {why}",
                          details={"answer": answer})
    graded = grade_inquiry(part.options, data.profile, inquiry["log"], unwrapped, inquiry.get("exported"))
    lines = [f"{'met' if c.passed else 'not met'}: {c.title} ({c.points:g}/{c.max_points:g}): {c.explanation}"
             for c in graded.checks]
    return PartResult(part.id, part.kind, part.title, graded.points, part.points, "; ".join(lines),
                      needs_review=bool(graded.flags),
                      details={"answer": answer, "checks": graded.to_dicts(), "flags": graded.flags,
                               "reasons": lines + graded.flags})


def score_artifact(part: Part, data: ScoringInput) -> PartResult:
    """A fraction of the points from the evaluator check named in the rubric."""
    check = data.evaluation.get("checks", {}).get(part.id)
    if check is None:
        why = data.evaluation.get("error") or "the evaluator did not run this check"
        return PartResult(part.id, part.kind, part.title, 0.0, part.points, f"0 points: {why}")
    points = round(part.points * float(check["score"]), 2)
    return PartResult(part.id, part.kind, part.title, points, part.points, check["explanation"],
                      needs_review=bool(check.get("needs_review")), details=check.get("details", {}))


def score_efficiency(part: Part, data: ScoringInput) -> PartResult:
    from .efficiency import score_efficiency as score

    return score(part, data)


# part kind -> scorer; timing is scored last, from the others (speed only counts for a model that learned)
SCORERS = {"tests": score_tests, "metric": score_metric, "reflection": score_reflection,
           "artifact": score_artifact, "inquiry": score_inquiry, "efficiency": score_efficiency}


def score_all(rubric: Rubric, data: ScoringInput) -> list[PartResult]:
    results = {p.id: SCORERS[p.kind](p, data) for p in rubric.parts if p.kind in SCORERS}
    metric_ok = all((results[p.id].points or 0) > 0 for p in rubric.of_kind("metric"))
    for part in rubric.of_kind("timing"):
        results[part.id] = score_timing(part, data, metric_ok)
    return [results[p.id] for p in rubric.parts]
