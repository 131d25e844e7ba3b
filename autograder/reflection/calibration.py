"""Map the scorer's raw score (0..1) to a share of the item's points.

Without calibration the mapping is the identity. A teacher who hand-grades answers fits a
monotone (isotonic) mapping from (raw score, points) pairs, so the suggestions follow that
teacher's strictness. A course pools the pairs of all its items (fitting.fit_course); an item with
enough graded answers of its own gets its own curve, with the pooled pairs as a weak prior, so
an item whose graded answers all got the same grade still gets a sensible curve. Raw 0 (no
evidence) always maps to 0. A bounded set of graded answers is kept as exemplars; an answer
almost identical to one of them is pulled toward the grade it got. The item's reliability (how
often its own graded answers, each suggested without its grade, got a suggestion far off that
grade without review) is kept as two counts and lowers the confidence of its suggestions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .reading import Reading, ReadingError

__all__ = [
    "Calibration",
    "CalibrationError",
    "calibrations_from_dict",
    "calibrations_to_dict",
    "exemplar_features",
    "fit_pairs",
]

# 3: item reliability counts (checked, missed); 4: the course's review line and the graded
# answers that joined the references; 5: the course's reading (reading.py) it was fitted with;
# 1-4 still load
FORMAT_VERSION = 5
# Key of the course's reading in a file of {item id: calibration}: stored once for all items
# (item ids start with a letter).
READING_KEY = "_reading"
# An answer this similar to a hand-graded one is pulled halfway toward its grade.
EXEMPLAR_COSINE_MIN = 0.92
# Weight of the (1, 1) anchor against each graded answer (weight 1): keeps a fit from a
# handful of answers monotone over the whole range without dominating it. Raw 0 maps to 0
# whatever the data say: no evidence earns no points.
ANCHOR_WEIGHT = 0.5
# An item gets its own curve from this many graded answers; the course's pooled pairs weigh
# as much as PRIOR_WEIGHT answers in it.
PER_ITEM_MIN = 8
PRIOR_WEIGHT = 4.0
# Bounded stored state: exemplars per item (spread over the grades), residuals per curve.
MAX_EXEMPLARS = 40
GRADED_REFERENCES_MAX = 10
MAX_RESIDUALS = 200
# Calibration error assumed where no graded answer lies near a raw score (share of points).
PRIOR_ERROR = 0.2
# Kernel width (raw score) of the local error estimate.
ERROR_BANDWIDTH = 0.1
# Item reliability: the share of suggestions far off (half the points or more) and not sent to
# review that is tolerated (the few-shot goal); the item's misses count only when so
# many would happen by chance less often than RELIABILITY_ALPHA at that share (ten checks are
# few: 1 or 2 misses of 10 are chance, 3 are not); and how many answers within the tolerance
# the estimate presumes besides the item's own checks (ten checked answers move it halfway).
RELIABILITY_TOLERANCE = 0.05
RELIABILITY_ALPHA = 0.05
RELIABILITY_PRIOR = 10


class CalibrationError(ValueError):
    """Graded answers or a stored calibration dict are unusable; the message says why."""


@dataclass
class Calibration:
    """Piecewise-linear monotone map raw score -> share of points, plus graded exemplars."""

    knots_x: list[float] = field(default_factory=lambda: [0.0, 1.0])
    knots_y: list[float] = field(default_factory=lambda: [0.0, 1.0])
    spec_id: str = ""
    n_graded: int = 0
    mean_abs_error: float = 0.0  # held-out (cross-validated) error, as a share of the points
    exemplars: list[tuple[str, float]] = field(default_factory=list)  # (answer, share)
    # (raw, held-out absolute error) of graded answers: where the curve is unsure
    residuals: list[tuple[float, float]] = field(default_factory=list)
    step: float = 0.0  # grading step seen, as a share of the points (0: unknown)
    # Item reliability (fitting.check_item): graded answers each suggested by a calibration
    # fitted without it, and how many of those got a suggestion off by half the points or more
    # that was not sent to review.
    checked: int = 0
    missed: int = 0
    # The confidence below which a suggestion goes to review, set for the course from its
    # graded answers (fitting.review_line); None: the scorer's default.
    review_below: float | None = None
    # Hand-graded answers that got full points: correct answers in the students' own words,
    # which join the item's reference answers (at most GRADED_REFERENCES_MAX).
    references: list[str] = field(default_factory=list)
    # The course's reading of answers (reading.py), learned from its graded answers: the item's
    # suggestions embed every text with it, as its curve was fitted. None: MiniLM as shipped.
    reading: Reading | None = None

    def apply(self, raw: float) -> float:
        """The share of points (0..1) for a raw score; 0 for no evidence at all."""
        if raw <= 0.0:
            return 0.0
        return float(np.clip(np.interp(raw, self.knots_x, self.knots_y), 0.0, 1.0))

    def local_error(self, raw: float) -> float:
        """Expected error (share of points) of the curve near this raw score, from held-out
        residuals of graded answers, shrunk toward PRIOR_ERROR where there are few.
        0 without any graded answer (the rubric's own scale)."""
        if not self.residuals:
            return 0.0
        xs = np.array([r for r, _ in self.residuals])
        es = np.array([e for _, e in self.residuals])
        w = np.exp(-0.5 * ((xs - raw) / ERROR_BANDWIDTH) ** 2)
        return float((w @ es + PRIOR_ERROR) / (w.sum() + 1.0))

    def reliability_penalty(self) -> float:
        """Confidence lost because this item's graded answers got suggestions far off their
        grade, unreviewed, more often than RELIABILITY_TOLERANCE would explain by chance: the
        excess share of misses, shrunk as if RELIABILITY_PRIOR more answers within the
        tolerance had been checked. 3 misses of 10 checked cost 0.125, 2 of 10 nothing (chance
        gives 2 or more 9 % of the time); 0 when nothing was checked."""
        if self.checked <= 0 or binomial_tail(self.missed, self.checked, RELIABILITY_TOLERANCE) >= RELIABILITY_ALPHA:
            return 0.0
        excess = self.missed - RELIABILITY_TOLERANCE * self.checked
        return max(0.0, excess / (self.checked + RELIABILITY_PRIOR))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "spec_id": self.spec_id,
            "knots_x": [float(x) for x in self.knots_x],
            "knots_y": [float(y) for y in self.knots_y],
            "n_graded": self.n_graded,
            "mean_abs_error": float(self.mean_abs_error),
            "exemplars": [[text, float(share)] for text, share in self.exemplars],
            "residuals": [[float(r), float(e)] for r, e in self.residuals],
            "step": float(self.step),
            "checked": int(self.checked),
            "missed": int(self.missed),
            "review_below": None if self.review_below is None else float(self.review_below),
            "references": list(self.references),
            "reading": None if self.reading is None else self.reading.digest,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        if not isinstance(d, dict):
            raise CalibrationError(f"a calibration must be a dict, got {type(d).__name__}")
        if d.get("version") not in (1, 2, 3, 4, FORMAT_VERSION):
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
                residuals=[(float(r), float(e)) for r, e in d.get("residuals", [])],
                step=float(d.get("step", 0.0)),
                checked=int(d.get("checked", 0)),
                missed=int(d.get("missed", 0)),
                review_below=None if d.get("review_below") is None else float(d["review_below"]),
                references=_strings(d.get("references", []), "references"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"malformed calibration dict: {exc!r}") from exc
        _check_knots(cal.knots_x, cal.knots_y)
        if not 0 <= cal.missed <= cal.checked:
            raise CalibrationError(
                f"calibration reliability counts are inconsistent: {cal.missed} missed of {cal.checked}"
            )
        if cal.review_below is not None and not 0 < cal.review_below < 1:
            raise CalibrationError(f"calibration review line {cal.review_below} is outside (0, 1)")
        return cal


def calibrations_to_dict(cals: dict[str, Calibration]) -> dict[str, Any]:
    """{item id: calibration dict}, and the course's reading once under READING_KEY."""
    out: dict[str, Any] = {item: cal.to_dict() for item, cal in cals.items()}
    readings = {cal.reading.digest: cal.reading for cal in cals.values() if cal.reading is not None}
    if len(readings) > 1:
        raise CalibrationError("a course's items are calibrated with one reading, not several")
    if readings:
        out[READING_KEY] = next(iter(readings.values())).to_dict()
    return out


def calibrations_from_dict(stored: dict[str, Any]) -> dict[str, Calibration]:
    """{item id: Calibration} from what `calibrations_to_dict` wrote; an item fitted with a
    reading the file does not hold is refused (its curve means nothing in MiniLM's own)."""
    if not isinstance(stored, dict):
        raise CalibrationError("calibrations must be a JSON object of {item id: calibration}")
    reading = None
    if stored.get(READING_KEY) is not None:
        try:
            reading = Reading.from_dict(stored[READING_KEY])
        except ReadingError as exc:
            raise CalibrationError(f"the course's reading: {exc}") from None
    out = {}
    for item, d in stored.items():
        if item == READING_KEY:
            continue
        try:
            cal = Calibration.from_dict(d)
        except CalibrationError as exc:
            raise CalibrationError(f"part {item!r}: {exc}") from None
        wanted = d.get("reading")
        if wanted is not None:
            if reading is None or wanted != reading.digest:
                raise CalibrationError(f"part {item!r} was fitted with the reading {wanted!r}, which the file does not hold")
            cal.reading = reading
        out[item] = cal
    return out


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a list of strings, got {value!r:.60}")
    return list(value)


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(at least k successes in n trials of probability p)."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p))


def _check_knots(xs: Sequence[float], ys: Sequence[float]) -> None:
    if len(xs) < 2 or len(xs) != len(ys):
        raise CalibrationError("calibration needs at least two knots, as many x as y")
    if any(b < a for a, b in zip(xs, xs[1:])) or any(b < a for a, b in zip(ys, ys[1:])):
        raise CalibrationError("calibration knots must be non-decreasing")
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in [*xs, *ys]):
        raise CalibrationError("calibration knots must lie in [0, 1]")


def _isotonic(xs, ys, ws) -> tuple[list[float], list[float]]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit([*xs, 1.0], [*ys, 1.0], sample_weight=[*ws, ANCHOR_WEIGHT])
    kx, ky = [float(x) for x in iso.X_thresholds_], [float(y) for y in iso.y_thresholds_]
    if kx[0] > 0.0:
        kx, ky = [0.0, *kx], [0.0, *ky]
    return kx, ky


def _held_out_errors(xs, ys, ws, prior: list[tuple[float, float]], prior_w: float) -> list[float]:
    """Absolute error of each graded pair under a curve fitted without it (at most 10 folds)."""
    n = len(xs)
    folds = np.arange(n) % min(n, 10)
    out = np.zeros(n)
    px, py = [p[0] for p in prior], [p[1] for p in prior]
    pw = [prior_w / len(prior)] * len(prior) if prior else []
    for k in range(min(n, 10)):
        keep = folds != k
        kx, ky = _isotonic(
            [*np.asarray(xs)[keep], *px], [*np.asarray(ys)[keep], *py], [*np.asarray(ws)[keep], *pw]
        )
        cal = Calibration(kx, ky)
        out[~keep] = [abs(cal.apply(x) - y) for x, y in zip(np.asarray(xs)[~keep], np.asarray(ys)[~keep])]
    return out.tolist()


def grade_step(shares: Sequence[float]) -> float:
    """The coarsest step every graded share is a multiple of (0 when it is not clear)."""
    for step in (1.0, 0.5, 1 / 3, 0.25, 0.2, 0.1):
        if all(abs(s / step - round(s / step)) < 1e-6 for s in shares):
            return step
    return 0.0


def fit_pairs(
    pairs: Sequence[tuple[float, float]],
    spec_id: str = "",
    prior: Sequence[tuple[float, float]] = (),
    exemplars: Sequence[tuple[str, float]] = (),
) -> Calibration:
    """A calibration from (raw score, share of points) pairs.

    prior: pooled (raw, share) pairs of other items of the course, weighing PRIOR_WEIGHT
    answers in all; they shape the curve where this item's own pairs are few or all alike.
    """
    pairs = [(float(r), float(s)) for r, s in pairs]
    prior = [(float(r), float(s)) for r, s in prior]
    if not pairs and not prior:
        raise CalibrationError(f"{spec_id or 'calibration'}: no graded answers to fit")
    xs, ys = [r for r, _ in pairs], [s for _, s in pairs]
    ws = [1.0] * len(pairs)
    px, py = [p[0] for p in prior], [p[1] for p in prior]
    pw = [PRIOR_WEIGHT / len(prior)] * len(prior) if prior else []
    kx, ky = _isotonic([*xs, *px], [*ys, *py], [*ws, *pw])
    if len(pairs) >= 2:
        errors = _held_out_errors(xs, ys, ws, prior, PRIOR_WEIGHT)
        residuals = list(zip(xs, errors))
    else:
        residuals = []
    if len(residuals) > MAX_RESIDUALS:
        keep = np.linspace(0, len(residuals) - 1, MAX_RESIDUALS).round().astype(int)
        residuals = [sorted(residuals)[i] for i in keep]
    return Calibration(
        knots_x=kx,
        knots_y=ky,
        spec_id=spec_id,
        n_graded=len(pairs),
        mean_abs_error=float(np.mean([e for _, e in residuals])) if residuals else 0.0,
        exemplars=bounded_exemplars(exemplars),
        residuals=residuals,
        step=grade_step(ys) if len(set(ys)) >= 2 else 0.0,
    )


def bounded_exemplars(graded: Sequence[tuple[str, float]], limit: int = MAX_EXEMPLARS) -> list[tuple[str, float]]:
    """At most `limit` graded answers, taken in turn from each grade so every grade stays."""
    by_grade: dict[float, list[tuple[str, float]]] = {}
    for text, share in graded:
        if text.strip():
            by_grade.setdefault(float(share), []).append((text, float(share)))
    out: list[tuple[str, float]] = []
    queues = [list(v) for _, v in sorted(by_grade.items())]
    while len(out) < limit and any(queues):
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return out


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
