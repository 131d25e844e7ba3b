"""What a student and an instructor read, as plain data for the templates.

Student-facing text passes through `private()`: no server path, no other student's id, no
grader internals (runner names, scorer confidence and raw scores, infrastructure flags). The
instructor's report keeps the pairs of near-duplicate answers and the reasons in full.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from ..grading.results import RETRY_FLAGS, STATUS_HELP, GradeResult, PartResult
from ..rubric import Rubric

# An absolute path of two or more components ('/tmp/x/attempts/001/work/a.npy', 'C:\\x\\y').
_PATH = re.compile(r"(?<![\w.:/])(?:/[\w.+@~-]+){2,}/?|\b[A-Za-z]:\\[^\s'\"]+")
_ANSI = re.compile(r"(\x1b\[[0-9;]*[A-Za-z])")
_NEAR_DUPLICATE = re.compile(r"near-duplicate of .+?'s answer")
# Scorer internals in a reflection's reasons: not for students.
_INTERNAL_REASON = re.compile(r"^(similarity to the reference|raw score|confidence|calibrat)", re.I)
_CRITERION = re.compile(r"^(met|partly met|missing) (\w+) \(([\d.]+)/([\d.]+)\)")


def _last_name(match: re.Match) -> str:
    return "…/" + re.split(r"[/\\]", match.group(0).rstrip("/\\"))[-1]


def private(text: str, others: frozenset[str] = frozenset()) -> str:
    """`text` as a student may read it: paths reduced to their last name, other students' ids
    replaced by 'another student'."""
    text = _NEAR_DUPLICATE.sub("near-duplicate of another student's answer", str(text))
    # a terminal colour code may stand right before a path (tracebacks): the codes are kept apart
    text = "".join(part if _ANSI.fullmatch(part) else _PATH.sub(_last_name, part) for part in _ANSI.split(text))
    for other in sorted(others, key=len, reverse=True):
        if len(other) >= 3:
            text = re.sub(rf"(?<![\w.-]){re.escape(other)}(?![\w-])", "another student", text)
    return text


def _sentence(text: str) -> str:
    text = text.strip()
    if text.startswith("0 points: "):
        text = "No points: " + text[len("0 points: "):]
    text = text[:1].upper() + text[1:]
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def _human(name: str) -> str:
    return name.replace("_", " ")


@dataclass
class Item:
    """One line of a part's details: a criterion met, partly met or missing, or a note."""
    text: str
    state: str = "note"     # met | partly | missing | note | flag


@dataclass
class PartView:
    id: str
    title: str
    points: float | None
    max_points: float
    sentence: str
    items: list[Item] = field(default_factory=list)
    review: bool = False
    manual: bool = False            # an instructor set the points in formgrader
    comment: str | None = None      # the instructor's comment from formgrader


@dataclass
class Lateness:
    submitted_at: datetime | None = None
    due: datetime | None = None
    lms_late: bool = False          # the LMS marked the upload late (Canvas's _LATE)

    @property
    def seconds_late(self) -> float:
        if self.submitted_at and self.due and self.submitted_at > self.due:
            return (self.submitted_at - self.due).total_seconds()
        return 0.0

    @property
    def late(self) -> bool:
        return self.lms_late or self.seconds_late > 0

    def describe(self) -> str:
        if not self.late:
            return ""
        if self.seconds_late:
            hours = self.seconds_late / 3600
            span = f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"
            return f"submitted {span} after the due date"
        return "marked late by the learning platform"


def _tests_items(part: PartResult, rubric_part) -> tuple[str, list[Item]]:
    cells = part.details.get("cells", {})
    reasons = dict(line.split(": ", 1) for line in part.explanation.split("; ") if ": " in line)
    items = []
    for gid, top in rubric_part.cells.items():
        got = float(cells.get(gid, 0.0))
        detail = reasons.get(gid, f"{got:g}/{top:g}")
        items.append(Item(f"{_human(gid)}: {detail}", "met" if got >= top else "missing"))
    passed = sum(i.state == "met" for i in items)
    return f"You passed {passed} of {len(items)} tests.", items


def _reflection_items(part: PartResult) -> tuple[str, list[Item]]:
    items = []
    for reason in part.details.get("reasons", []):
        if m := _CRITERION.match(reason):
            state = {"met": "met", "partly met": "partly", "missing": "missing"}[m[1]]
            items.append(Item(f"{_human(m[2])} ({float(m[3]):g}/{float(m[4]):g})", state))
        elif reason.startswith("flag "):
            items.append(Item(_human(reason[len("flag "):]), "flag"))
        elif not _INTERNAL_REASON.match(reason):
            items.append(Item(reason))
    met = sum(i.state == "met" for i in items)
    criteria = sum(i.state in ("met", "partly", "missing") for i in items)
    if part.points is None:
        sentence = "Your written answer is graded by your instructor."
    elif not criteria:
        sentence = _sentence(part.explanation)
    else:
        sentence = (f"Your written answer meets {met} of {criteria} criteria, for a suggested score of "
                    f"{part.points:g} of {part.max_points:g} points.")
    return sentence, items


def _checks_items(part: PartResult) -> tuple[str, list[Item]]:
    checks = part.details.get("checks") or []
    items = [Item(f"{c.get('title', '')} ({float(c.get('points', 0)):g}/{float(c.get('max_points', 0)):g}): "
                  f"{c.get('explanation', '')}", "met" if c.get("passed") else "missing") for c in checks]
    items += [Item(_human(str(f)), "flag") for f in part.details.get("flags", [])]
    met = sum(i.state == "met" for i in items)
    return f"{met} of {len(checks)} checks were met.", items


def _metric_sentence(part: PartResult, rubric_part) -> str:
    value = part.details.get("value")
    if value is None:
        return _sentence(part.explanation)
    return (f"Your exported model reached {rubric_part.metric} {value:.3f} on the hidden test split: "
            f"{part.points:g} of {part.max_points:g} points.")


def _timing_sentence(part: PartResult) -> str:
    ratio, train = part.details.get("ratio"), part.details.get("train_s")
    if ratio is None or part.points is None:
        return _sentence(part.explanation)
    if part.points == 0 and "no timing points" in part.explanation:
        return (f"Your training took {train:.1f} s, but a model that reaches no accuracy band earns no "
                "timing points.")
    return (f"Your training took {train:.1f} s, {ratio:.1f} times the reference solution's time on the "
            f"same machine: {part.points:g} of {part.max_points:g} points.")


def part_view(part: PartResult, rubric: Rubric, others: frozenset[str], marks: dict | None = None) -> PartView:
    """One part as the student reads it. `marks`: this student's grade cells from the gradebook
    (record.gradebook_marks); an instructor's manual score and comment there win."""
    rubric_part = rubric.part(part.id)
    items: list[Item] = []
    if part.kind == "tests":
        sentence, items = _tests_items(part, rubric_part)
    elif part.kind == "metric":
        sentence = _metric_sentence(part, rubric_part)
    elif part.kind == "timing":
        sentence = _timing_sentence(part)
    elif part.kind == "reflection":
        sentence, items = _reflection_items(part)
    elif part.details.get("checks"):
        sentence, items = _checks_items(part)
    else:
        sentence = _sentence(part.explanation)
    view = PartView(part.id, part.title, part.points, part.max_points, private(sentence, others),
                    [Item(private(i.text, others), i.state) for i in items], review=part.needs_review)
    if part.kind not in ("tests", "reflection") and not items and part.explanation.strip() and sentence != _sentence(part.explanation):
        view.items.append(Item(private(_sentence(part.explanation), others)))
    return apply_marks(view, rubric_part, marks or {})


def apply_marks(view: PartView, rubric_part, marks: dict) -> PartView:
    """The gradebook's say: a manual score on any of the part's cells sets the part's points
    (nbgrader's score: manual if given, else automatic), and its comment is shown."""
    cells = [marks[g] for g in rubric_part.grade_cell_ids if g in marks]
    if any(c["manual"] is not None for c in cells):
        view.points = sum((c["manual"] if c["manual"] is not None else (c["auto"] or 0.0)) for c in cells)
        view.manual = True
        view.review = any(c["needs_manual"] for c in cells)
        view.sentence = f"Your instructor gave {view.points:g} of {view.max_points:g} points."
    comments = [c["comment"] for c in cells if c.get("comment")]
    view.comment = "\n".join(comments) or None
    return view


@dataclass
class FeedbackView:
    student: str
    assignment: str
    title: str
    status: str
    status_sentence: str
    score: float
    max_score: float
    pending: float
    parts: list[PartView]
    notes: list[str]
    errors: list[dict]
    restored_cells: list[str]
    late: str
    attempt: int
    profile: str
    finished_at: str
    timings: dict


def _status_sentence(result: GradeResult, others: frozenset[str]) -> str:
    if result.grader_side:
        return "The grader had a problem of its own with your notebook; it will be graded again, and your grade will not suffer."
    if result.status == "failed":
        raised = [e for e in result.cell_errors if not str(e.get("cell", "")).startswith("test_")]
        tests = len(result.cell_errors) - len(raised)
        text = f"Your notebook ran, but {len(raised)} of its cells raised an error"
        text += f" (and {tests} test cell{'s' if tests != 1 else ''} failed: see the tests part)." if tests else "."
        return text
    return private(_sentence(STATUS_HELP.get(result.status, result.status)) +
                   ("" if result.status == "graded" or result.message == STATUS_HELP.get(result.status) else " " + _sentence(result.message)), others)


def feedback_view(result: GradeResult, rubric: Rubric, others: frozenset[str] = frozenset(),
                  marks: dict | None = None, lateness: Lateness | None = None) -> FeedbackView:
    parts = [part_view(p, rubric, others, marks) for p in result.parts]
    pending = sum(p.max_points for p in parts if p.points is None)
    notes = []
    for flag in result.flags:
        if flag in RETRY_FLAGS:
            continue
        notes.append(private(_sentence(flag) + " An instructor will review it.", others))
    late = lateness.describe() if lateness else ""
    return FeedbackView(
        student=result.student, assignment=result.assignment, title=rubric.title, status=result.status,
        status_sentence=_status_sentence(result, others), score=sum(p.points or 0.0 for p in parts),
        max_score=result.max_score, pending=pending, parts=parts, notes=notes,
        errors=[{"cell": e.get("cell"), "text": private(f"{e.get('ename')}: {e.get('evalue')}", others)[:300]}
                for e in result.cell_errors],
        restored_cells=list(result.restored_cells), late=late, attempt=result.attempt,
        profile=result.profile, finished_at=result.finished_at[:16].replace("T", " "), timings=result.timings)


# ---- the instructor's class report -------------------------------------------------------------

@dataclass
class ReportRow:
    student: str
    status: str
    parts: list[PartView]           # with the gradebook's manual scores and review state
    score: float
    max_score: float
    late: str
    review: list[str]               # why a human should look (full text, pairs of copies included)
    message: str
    grader_error: bool


def near_duplicate_pairs(result: GradeResult) -> list[str]:
    """'part: near-duplicate of <other>'s answer (similarity s)' from the parts' details."""
    return [f"{p.id}: near-duplicate of {other}'s answer (similarity {sim:.2f})"
            for p in result.parts for other, sim in sorted(p.details.get("near_duplicates", {}).items())]


def report_row(result: GradeResult, rubric: Rubric, marks: dict | None, lateness: Lateness | None) -> ReportRow:
    parts = []
    for p in result.parts:
        view = apply_marks(PartView(p.id, p.title, p.points, p.max_points, p.explanation, review=p.needs_review),
                           rubric.part(p.id), marks or {})
        parts.append(view)
    reasons = [f"{p.id}: {_short_reason(p)}" for p, v in zip(result.parts, parts) if v.review]
    pairs = near_duplicate_pairs(result)
    reasons += pairs + [f for f in result.flags if not (pairs and "near-duplicate" in f)]
    if result.status in ("crashed", "invalid"):
        reasons.insert(0, f"{result.status}: {result.message}")
    return ReportRow(result.student, result.status, parts, sum(v.points or 0.0 for v in parts), result.max_score,
                     lateness.describe() if lateness else "", reasons, result.message,
                     result.grader_side)


def _short_reason(part: PartResult) -> str:
    """A part's reason in one line: a scorer's verdict and flags, not its whole trace (formgrader
    shows the trace beside the answer)."""
    if not part.details.get("reasons"):
        return part.explanation
    verdict = part.explanation.split(": ", 1)[0]
    flags = [str(f) for f in part.details.get("flags", [])]
    return verdict + (f"; flags: {', '.join(flags)}" if flags else "")


def review_summary(row: ReportRow) -> str:
    """One short line: which parts wait and why, e.g. 'reflection, copy, grader error'."""
    what = [v.id for v in row.parts if v.review]
    if any("near-duplicate" in r for r in row.review):
        what.append("possible copy")
    if row.grader_error:
        what.append("grader error")
    if row.status in ("crashed", "invalid"):
        what.insert(0, row.status)
    return ", ".join(dict.fromkeys(what)) or "flagged"
