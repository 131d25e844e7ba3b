"""Fit calibrations from hand-graded answers: each answer's raw score is computed as a suggestion
computes it (the scorer), then mapped by `calibration.fit_pairs`. Kept apart from calibration.py,
which the scorer imports, so that the package has no import circle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .calibration import PER_ITEM_MIN, Calibration, CalibrationError, grade_step, fit_pairs
from .embedding import EmbedFn, embed
from .scorer import embedder_for, raw_score_of
from .spec import ReflectionSpec

__all__ = ["fit_calibration", "fit_course", "graded_raws"]


def graded_raws(
    spec: ReflectionSpec, graded: Sequence[tuple[str, float]], embed_fn: EmbedFn = embed
) -> list[tuple[float, float]]:
    """(raw score, share of points) of hand-graded answers, read as suggestions read them.

    A graded answer that is one of the reference answers scores itself against itself; it is
    scored against the other references only, so the curve is not shaped by the references.
    """
    vec = embedder_for([answer for answer, _ in graded], spec, embed_fn=embed_fn)
    out = []
    for answer, points in graded:
        own = spec
        others = tuple(r for r in spec.reference_answers if r.strip() != answer.strip())
        if others and len(others) < len(spec.reference_answers):
            own = replace(spec, reference_answers=others, criteria=() if spec.derived_criteria else spec.criteria)
        out.append((raw_score_of(answer, own, vec), points / spec.points))
    return out


def fit_calibration(
    spec: ReflectionSpec, graded: list[tuple[str, float]], embed_fn: EmbedFn = embed,
    prior: Sequence[tuple[float, float]] = (),
) -> Calibration:
    """Fit the raw-score -> points map from hand-graded (answer, points) pairs of one item."""
    _check_graded(spec, graded, need_spread=not prior)
    pairs = graded_raws(spec, graded, embed_fn)
    return fit_pairs(
        pairs, spec.id, prior, [(answer, points / spec.points) for answer, points in graded]
    )


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
        if len(own) >= PER_ITEM_MIN:
            out[spec.id] = fit_pairs(own, spec.id, others, exemplars)
        else:
            cal = fit_pairs(pooled, spec.id, exemplars=exemplars)
            cal.n_graded = len(own)
            cal.step = grade_step([s for _, s in own]) if len({s for _, s in own}) >= 2 else cal.step
            out[spec.id] = cal
    return out


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
