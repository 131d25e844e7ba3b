"""Map the scorer's raw score (0..1) to a share of the item's points.

Without calibration the mapping is the identity. A teacher who hand-grades a few answers fits
a monotone (isotonic) mapping from them, so the suggestions follow that teacher's strictness;
the graded answers are kept as exemplars, and an answer almost identical to one of them is
pulled toward the grade it got.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .embedding import EmbedFn, embed

if TYPE_CHECKING:
    from .spec import ReflectionSpec

__all__ = ["Calibration", "CalibrationError", "fit_calibration", "exemplar_features"]

FORMAT_VERSION = 1
# An answer this similar to a hand-graded one is pulled halfway toward its grade.
EXEMPLAR_COSINE_MIN = 0.92
# Weight of the (0, 0) and (1, 1) anchors against each graded answer (weight 1): keeps a
# fit from a handful of answers monotone over the whole range without dominating it.
ANCHOR_WEIGHT = 0.5


class CalibrationError(ValueError):
    """Graded answers or a stored calibration dict are unusable; the message says why."""


@dataclass
class Calibration:
    """Piecewise-linear monotone map raw score -> share of points, plus graded exemplars."""

    knots_x: list[float] = field(default_factory=lambda: [0.0, 1.0])
    knots_y: list[float] = field(default_factory=lambda: [0.0, 1.0])
    spec_id: str = ""
    n_graded: int = 0
    mean_abs_error: float = 0.0  # on the graded answers, as a share of the item's points
    exemplars: list[tuple[str, float]] = field(default_factory=list)  # (answer, share)

    def apply(self, raw: float) -> float:
        """The share of points (0..1) for a raw score."""
        return float(np.clip(np.interp(raw, self.knots_x, self.knots_y), 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "spec_id": self.spec_id,
            "knots_x": [float(x) for x in self.knots_x],
            "knots_y": [float(y) for y in self.knots_y],
            "n_graded": self.n_graded,
            "mean_abs_error": float(self.mean_abs_error),
            "exemplars": [[text, float(share)] for text, share in self.exemplars],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        if not isinstance(d, dict):
            raise CalibrationError(f"a calibration must be a dict, got {type(d).__name__}")
        if d.get("version") != FORMAT_VERSION:
            raise CalibrationError(
                f"calibration version {d.get('version')!r} is not supported (expected {FORMAT_VERSION})"
            )
        try:
            cal = cls(
                knots_x=[float(x) for x in d["knots_x"]],
                knots_y=[float(y) for y in d["knots_y"]],
                spec_id=str(d.get("spec_id", "")),
                n_graded=int(d.get("n_graded", 0)),
                mean_abs_error=float(d.get("mean_abs_error", 0.0)),
                exemplars=[(str(t), float(s)) for t, s in d.get("exemplars", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"malformed calibration dict: {exc!r}") from exc
        _check_knots(cal.knots_x, cal.knots_y)
        return cal


def _check_knots(xs: Sequence[float], ys: Sequence[float]) -> None:
    if len(xs) < 2 or len(xs) != len(ys):
        raise CalibrationError("calibration needs at least two knots, as many x as y")
    if any(b < a for a, b in zip(xs, xs[1:])) or any(b < a for a, b in zip(ys, ys[1:])):
        raise CalibrationError("calibration knots must be non-decreasing")
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in [*xs, *ys]):
        raise CalibrationError("calibration knots must lie in [0, 1]")


def fit_calibration(
    spec: ReflectionSpec, graded: list[tuple[str, float]], embed_fn: EmbedFn = embed
) -> Calibration:
    """Fit the raw-score -> points map from a few hand-graded (answer, points) pairs."""
    from sklearn.isotonic import IsotonicRegression

    from .scorer import embedder_for, raw_score_of  # the scorer imports this module

    _check_graded(spec, graded)
    vec = embedder_for([answer for answer, _ in graded], spec, embed_fn=embed_fn)
    raws = [raw_score_of(answer, spec, vec) for answer, _ in graded]
    shares = [points / spec.points for _, points in graded]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    weights = [1.0] * len(raws) + [ANCHOR_WEIGHT, ANCHOR_WEIGHT]
    iso.fit([*raws, 0.0, 1.0], [*shares, 0.0, 1.0], sample_weight=weights)
    fitted = iso.predict(raws)
    return Calibration(
        knots_x=[float(x) for x in iso.X_thresholds_],
        knots_y=[float(y) for y in iso.y_thresholds_],
        spec_id=spec.id,
        n_graded=len(graded),
        mean_abs_error=float(np.mean(np.abs(fitted - np.array(shares)))),
        exemplars=[(answer, share) for (answer, _), share in zip(graded, shares)],
    )


def _check_graded(spec: ReflectionSpec, graded: list[tuple[str, float]]) -> None:
    if len(graded) < 2:
        raise CalibrationError(f"{spec.id}: need at least 2 hand-graded answers, got {len(graded)}")
    for i, item in enumerate(graded):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise CalibrationError(f"{spec.id}: graded[{i}] must be (answer text, points)")
        points = item[1]
        if not isinstance(points, (int, float)) or not 0 <= points <= spec.points:
            raise CalibrationError(
                f"{spec.id}: graded[{i}] has points {points!r}, outside 0..{spec.points:g}"
            )
    if len({p for _, p in graded}) < 2:
        raise CalibrationError(f"{spec.id}: graded answers must not all have the same points")


def exemplar_features(
    answer_vector: np.ndarray, exemplar_vectors: np.ndarray, exemplar_shares: Sequence[float]
) -> dict[str, float]:
    """How the answer sits among hand-graded answers to the same question.

    nearest_share: share of points of the most similar graded answer; best_sim_high/low:
    highest similarity to a graded answer with share >= 0.5 / < 0.5 (0 when there is none).
    """
    if len(exemplar_shares) == 0:
        return {"nearest_sim": 0.0, "nearest_share": 0.0, "best_sim_high": 0.0, "best_sim_low": 0.0}
    sims = exemplar_vectors @ answer_vector
    shares = np.asarray(exemplar_shares, dtype=float)
    k = int(np.argmax(sims))
    high, low = sims[shares >= 0.5], sims[shares < 0.5]
    return {
        "nearest_sim": float(sims[k]),
        "nearest_share": float(shares[k]),
        "best_sim_high": float(high.max()) if high.size else 0.0,
        "best_sim_low": float(low.max()) if low.size else 0.0,
    }
