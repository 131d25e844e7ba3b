"""Fit calibrations from hand-graded answers: each answer's raw score is computed as a suggestion
computes it (the scorer), then mapped by `calibration.fit_pairs`. Kept apart from calibration.py,
which the scorer imports, so that the package has no import circle."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .calibration import (
    GRADED_REFERENCES_MAX, PER_ITEM_MIN, RELIABILITY_TOLERANCE, Calibration, CalibrationError, fit_pairs,
    grade_step,
)
from .embedding import EmbedFn, embed
from .gaming import NO_REVIEW_FLAGS
from .reading import MIN_PAIRS as MIN_READING_PAIRS
from .reading import Reading, embedder, learn, training_pairs
from .scorer import REVIEW_BELOW, analyze, embedder_for, raw_score_of, rounded_points, suggestion_for
from .spec import ReflectionSpec

__all__ = ["Check", "check_item", "course_reading", "fit_calibration", "fit_course", "graded_raws", "review_line"]

# Folds of the item reliability check (leave-one-out up to this many graded answers).
CHECK_FOLDS = 10
# The course's review line is the lowest of these at which the checks show, with
# LINE_CONFIDENCE, that at most RELIABILITY_TOLERANCE of the suggestions go unreviewed and off
# by half the points or more (and at every line above it).
# Where even the highest is not shown safe by enough checks, the highest stands: the grades show
# the suggestions are often off, and the default line would send more of them out unreviewed.
REVIEW_LINES = (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4)
LINE_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Check:
    """A graded answer suggested as a new one would be, by a calibration fitted without it."""

    confidence: float
    flagged: bool   # sent to review by a flag, whatever its confidence
    off: bool       # the suggestion on the grading step is off by half the points or more


def graded_raws(
    spec: ReflectionSpec, graded: Sequence[tuple[str, float]], embed_fn: EmbedFn = embed
) -> list[tuple[float, float]]:
    """(raw score, share of points) of hand-graded answers, read as suggestions read them.

    A graded answer that is one of the reference answers scores itself against itself; it is
    scored against the other references only, so the curve is not shaped by the references.
    """
    vec = embedder_for([answer for answer, _ in graded], spec, embed_fn=embed_fn)
    return [(raw_score_of(answer, _own_spec(spec, answer), vec), points / spec.points) for answer, points in graded]


def _own_spec(spec: ReflectionSpec, answer: str) -> ReflectionSpec:
    """The item as a graded answer that is one of its references is scored: without itself."""
    others = tuple(r for r in spec.reference_answers if r.strip() != answer.strip())
    if others and len(others) < len(spec.reference_answers):
        return spec.with_reference_answers(others)
    return spec


def check_item(
    spec: ReflectionSpec,
    graded: Sequence[tuple[str, float]],
    fit: Callable[[list[int]], Calibration],
    embed_fn: EmbedFn = embed,
) -> tuple[int, int]:
    """How reliable the item's suggestions are on its own graded answers at the default review
    line: (checked, missed). See `checks`; missed: off and not sent to review."""
    return tally(checks(spec, graded, fit, embed_fn), REVIEW_BELOW)


def checks(
    spec: ReflectionSpec,
    graded: Sequence[tuple[str, float]],
    fit: Callable[[list[int]], Calibration],
    embed_fn: EmbedFn = embed,
    fold_reading: Callable[[int], EmbedFn] | None = None,
) -> list[Check]:
    """Each graded answer suggested as a new one would be, by a calibration fitted without it
    (`fit(kept indices)`; at most CHECK_FOLDS folds, leave-one-out below that), and read by
    `fold_reading(fold)` when the course has a reading: one learned without that fold's answers
    (a reading learned from an answer makes its check look better than a new answer fares).
    The curve's own held-out error sees only the raw-score mapping; this sees the whole
    suggestion (references, exemplars, confidence), item by item. Empty with fewer than two
    graded answers."""
    n = len(graded)
    if n < 2:
        return []
    vec = embedder_for([answer for answer, _ in graded], spec, embed_fn=embed_fn)
    folds = np.arange(n) % min(n, CHECK_FOLDS)
    found = []
    for fold in range(min(n, CHECK_FOLDS)):
        cal = fit([i for i in range(n) if folds[i] != fold])
        if fold_reading is not None:
            vec = embedder_for([graded[i][0] for i in np.flatnonzero(folds == fold)], spec, embed_fn=fold_reading(fold))
        for i in np.flatnonzero(folds == fold):
            answer, points = graded[i]
            own = _own_spec(spec, answer)
            s = suggestion_for(analyze(answer, own, vec), own, cal, vec)
            sure = rounded_points(s.share_before_caps, spec.points, cal.step)   # its points if not reviewed
            found.append(Check(
                confidence=s.confidence,
                flagged=any(f not in NO_REVIEW_FLAGS for f in s.flags),
                off=abs(sure - points) >= spec.points / 2 - 1e-9,
            ))
    return found


def tally(found: Sequence[Check], line: float) -> tuple[int, int]:
    """(checked, missed): missed are off and would not be reviewed at this line."""
    return len(found), sum(c.off and not c.flagged and c.confidence >= line for c in found)


def review_line(found: Sequence[Check]) -> float | None:
    """The course's review line from its checks: the lowest of REVIEW_LINES at which (and at
    every line above it) the share of suggestions off and unreviewed is at most
    RELIABILITY_TOLERANCE, with LINE_CONFIDENCE (Clopper-Pearson upper bound). None (the
    default line) with too few checks to show that even without a miss (59 at 5 % and 95 %).
    The highest line when enough checks show that not even it is safe: most suggestions then
    go to review, as the teacher's grades say they should. It lowers the line where the
    grades show the suggestions are right, and raises it where they are not."""
    from scipy.stats import beta

    def safe(missed: int) -> bool:
        return beta.ppf(LINE_CONFIDENCE, missed + 1, len(found) - missed) <= RELIABILITY_TOLERANCE

    if not found or not safe(0):
        return None
    line = REVIEW_LINES[0]
    for candidate in REVIEW_LINES:
        if not safe(tally(found, candidate)[1]):
            break
        line = candidate
    return line


def fit_calibration(
    spec: ReflectionSpec, graded: list[tuple[str, float]], embed_fn: EmbedFn = embed,
    prior: Sequence[tuple[float, float]] = (),
) -> Calibration:
    """Fit the raw-score -> points map from hand-graded (answer, points) pairs of one item."""
    _check_graded(spec, graded, need_spread=not prior)
    references = graded_references(spec, graded)
    spec = spec.with_references(references)
    pairs = graded_raws(spec, graded, embed_fn)
    exemplars = [(answer, points / spec.points) for answer, points in graded]
    cal = fit_pairs(pairs, spec.id, prior, exemplars)
    cal.references = references

    def fit_without(keep: list[int]) -> Calibration:
        fold = fit_pairs([pairs[i] for i in keep], spec.id, prior, [exemplars[i] for i in keep])
        return replace(fold, step=cal.step)

    return _with_checks({spec.id: cal}, {spec.id: checks(spec, graded, fit_without, embed_fn)})[spec.id]


def fit_course(
    items: Sequence[tuple[ReflectionSpec, list[tuple[str, float]]]], embed_fn: EmbedFn = embed,
    learn_reading: bool = False, log: Callable[[str], None] | None = None,
) -> dict[str, Calibration]:
    """Calibrations for a course's items from their hand-graded answers, pooled.

    Every item gets one: the pooled curve of all items, refined by the item's own answers when
    it has PER_ITEM_MIN of them. An empty dict when no item has a graded answer. With
    `learn_reading`, the course's reading is learned from the graded answers first (when they
    give enough pairs) and everything is read with it (`course_reading`).
    """
    for spec, graded in items:
        if graded:
            _check_graded(spec, graded, need_spread=False, minimum=1)
    reading, fold_reading = course_reading(items, log) if learn_reading else (None, None)
    read = embedder(reading) if reading is not None else embed_fn
    raws, references = {}, {}
    for spec, graded in items:
        if graded:
            references[spec.id] = graded_references(spec, graded)
            raws[spec.id] = graded_raws(spec.with_references(references[spec.id]), graded, read)
    pooled = [p for pairs in raws.values() for p in pairs]
    out, found = {}, {}
    for spec, graded in items:
        if not pooled:
            break
        spec = spec.with_references(references.get(spec.id, []))
        own = raws.get(spec.id, [])
        others = [p for sid, pairs in raws.items() if sid != spec.id for p in pairs]
        exemplars = [(a, pts / spec.points) for a, pts in graded]
        cal = _item_calibration(spec.id, own, others, exemplars, len(own) >= PER_ITEM_MIN, pooled)

        def fit_without(
            keep: list[int], spec=spec, own=own, others=others, exemplars=exemplars, cal=cal
        ) -> Calibration:
            fold = _item_calibration(
                spec.id, [own[i] for i in keep], others, [exemplars[i] for i in keep], cal.n_graded >= PER_ITEM_MIN
            )
            return replace(fold, step=cal.step)

        cal.references = references.get(spec.id, [])
        cal.reading = reading
        found[spec.id] = checks(spec, graded, fit_without, read, fold_reading)
        out[spec.id] = cal
    return _with_checks(out, found)


def course_reading(
    items: Sequence[tuple[ReflectionSpec, Sequence[tuple[str, float]]]], log: Callable[[str], None] | None = None,
) -> tuple[Reading | None, Callable[[int], EmbedFn] | None]:
    """The course's reading learned from all its graded answers (reading.py), and for the
    checks, fold -> the reading learned without that fold's answers: two more readings, each
    from every other graded answer of each item (a check fold's answers share the parity of
    their index, as `checks` numbers them). (None, None) when the graded answers give too few
    pairs for any of the three."""
    def pairs(keep: Callable[[int], bool]) -> list[tuple[str, str, float]]:
        return training_pairs([(spec.reference_answers, [(a, pts / spec.points) for i, (a, pts) in enumerate(graded) if keep(i)])
                               for spec, graded in items])

    learned = []
    for n, (name, keep) in enumerate((("all graded answers", lambda i: True),
                                      ("odd-numbered answers, to check the even ones", lambda i: i % 2 == 1),
                                      ("even-numbered answers, to check the odd ones", lambda i: i % 2 == 0))):
        chosen = pairs(keep)
        if log:
            log(f"learning the course's reading {n + 1}/3 from {len(chosen)} pairs of texts ({name})")
        learned.append(learn(chosen))
        if learned[-1] is None:
            if log:
                log(f"too few pairs for a reading (at least {MIN_READING_PAIRS}): answers are read by MiniLM as shipped")
            return None, None
    reading, halves = learned[0], learned[1:]
    return reading, lambda fold: embedder(halves[fold % 2])


def graded_references(spec: ReflectionSpec, graded: Sequence[tuple[str, float]]) -> list[str]:
    """Graded answers that got full points, in order (at most GRADED_REFERENCES_MAX): correct
    answers in the students' words, which join the item's reference answers. Each graded
    answer is still scored without itself (`_own_spec`)."""
    full = (a for a, points in graded if a.strip() and points >= spec.points - 1e-9)
    return list(dict.fromkeys(full))[:GRADED_REFERENCES_MAX]


def _with_checks(cals: dict[str, Calibration], found: dict[str, list[Check]]) -> dict[str, Calibration]:
    """One review line for the course from all its items' checks, for the items checked; each
    item's record at its line. An item without graded answers of its own keeps the default: its
    suggestions have no graded neighbours, unlike the checks the line came from."""
    line = review_line([c for item in found.values() for c in item])
    for spec_id, cal in cals.items():
        cal.review_below = line if found[spec_id] else None
        cal.checked, cal.missed = tally(found[spec_id], REVIEW_BELOW if cal.review_below is None else line)
    return cals


def _item_calibration(
    spec_id: str, own: list[tuple[float, float]], others: list[tuple[float, float]],
    exemplars: list[tuple[str, float]], per_item: bool, pooled: list[tuple[float, float]] | None = None,
) -> Calibration:
    """The item's own curve with the course as prior, or the course's pooled curve (pooled:
    all items' pairs in course order, when given)."""
    if per_item:
        return fit_pairs(own, spec_id, others, exemplars)
    cal = fit_pairs(pooled if pooled is not None else [*own, *others], spec_id, exemplars=exemplars)
    cal.n_graded = len(own)
    cal.step = grade_step([s for _, s in own]) if len({s for _, s in own}) >= 2 else cal.step
    return cal


def _check_graded(
    spec: ReflectionSpec, graded: list[tuple[str, float]], need_spread: bool = True, minimum: int = 2
) -> None:
    if len(graded) < minimum:
        raise CalibrationError(f"{spec.id}: need at least {minimum} hand-graded answers, got {len(graded)}")
    for i, item in enumerate(graded):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise CalibrationError(f"{spec.id}: graded[{i}] must be (answer text, points)")
        points = item[1]
        if not isinstance(points, (int, float)) or not 0 <= points <= spec.points:
            raise CalibrationError(
                f"{spec.id}: graded[{i}] has points {points!r}, outside 0..{spec.points:g}"
            )
    if need_spread and len({p for _, p in graded}) < 2:
        raise CalibrationError(
            f"{spec.id}: graded answers all have the same points; calibrate the course's items "
            "together (fit_course) so the other items' grades give the curve its shape"
        )
