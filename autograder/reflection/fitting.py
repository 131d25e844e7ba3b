"""Fit calibrations from hand-graded answers: each answer's raw score is computed as a suggestion
computes it (the scorer), then mapped by `calibration.fit_pairs`. Kept apart from calibration.py,
which the scorer imports, so that the package has no import circle."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from .calibration import PER_ITEM_MIN, Calibration, CalibrationError, grade_step, fit_pairs
from .embedding import EmbedFn, embed
from .scorer import analyze, embedder_for, raw_score_of, suggestion_for
from .spec import ReflectionSpec

__all__ = ["check_item", "fit_calibration", "fit_course", "graded_raws"]

# Folds of the item reliability check (leave-one-out up to this many graded answers).
CHECK_FOLDS = 10


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
        return replace(spec, reference_answers=others, criteria=() if spec.derived_criteria else spec.criteria)
    return spec


def check_item(
    spec: ReflectionSpec,
    graded: Sequence[tuple[str, float]],
    fit: Callable[[list[int]], Calibration],
    embed_fn: EmbedFn = embed,
) -> tuple[int, int]:
    """How reliable the item's suggestions are on its own graded answers: (checked, missed).

    Each graded answer is suggested as a new one would be, by a calibration fitted without it
    (`fit(kept indices)`; at most CHECK_FOLDS folds, leave-one-out below that). Missed: the
    suggestion is off by half the points or more and was not sent to review. The curve's own
    held-out error sees only the raw-score mapping; this sees the whole suggestion (references,
    exemplars, routing), item by item.
    """
    n = len(graded)
    if n < 2:
        return 0, 0
    vec = embedder_for([answer for answer, _ in graded], spec, embed_fn=embed_fn)
    folds = np.arange(n) % min(n, CHECK_FOLDS)
    missed = 0
    for fold in range(min(n, CHECK_FOLDS)):
        cal = fit([i for i in range(n) if folds[i] != fold])
        for i in np.flatnonzero(folds == fold):
            answer, points = graded[i]
            own = _own_spec(spec, answer)
            s = suggestion_for(analyze(answer, own, vec), own, cal, vec)
            missed += not s.needs_review and abs(s.points - points) >= spec.points / 2 - 1e-9
    return n, int(missed)


def fit_calibration(
    spec: ReflectionSpec, graded: list[tuple[str, float]], embed_fn: EmbedFn = embed,
    prior: Sequence[tuple[float, float]] = (),
) -> Calibration:
    """Fit the raw-score -> points map from hand-graded (answer, points) pairs of one item."""
    _check_graded(spec, graded, need_spread=not prior)
    pairs = graded_raws(spec, graded, embed_fn)
    exemplars = [(answer, points / spec.points) for answer, points in graded]
    cal = fit_pairs(pairs, spec.id, prior, exemplars)

    def fit_without(keep: list[int]) -> Calibration:
        fold = fit_pairs([pairs[i] for i in keep], spec.id, prior, [exemplars[i] for i in keep])
        return replace(fold, step=cal.step)

    cal.checked, cal.missed = check_item(spec, graded, fit_without, embed_fn)
    return cal


def fit_course(
    items: Sequence[tuple[ReflectionSpec, list[tuple[str, float]]]], embed_fn: EmbedFn = embed
) -> dict[str, Calibration]:
    """Calibrations for a course's items from their hand-graded answers, pooled.

    Every item gets one: the pooled curve of all items, refined by the item's own answers when
    it has PER_ITEM_MIN of them. An empty dict when no item has a graded answer.
    """
    raws = {}
    for spec, graded in items:
        if graded:
            _check_graded(spec, graded, need_spread=False, minimum=1)
            raws[spec.id] = graded_raws(spec, graded, embed_fn)
    pooled = [p for pairs in raws.values() for p in pairs]
    out = {}
    for spec, graded in items:
        if not pooled:
            break
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

        cal.checked, cal.missed = check_item(spec, graded, fit_without, embed_fn)
        out[spec.id] = cal
    return out


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
