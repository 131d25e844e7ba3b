"""Checks of the GoogLeNet on CIFAR-10 assignment: the learning curves belong to the run.

`googlenet_curves` scores four things, a quarter each:

1. history: `train_accuracy` and `val_accuracy` have one value in [0, 1] per epoch, as many as the
   `epochs` the notebook reports, and at least `min_epochs`;
2. run: the exported model's accuracy on the validation split, measured here, equals the last
   `val_accuracy` of the history within `tolerance`;
3. figure data: the figure (its line data, read from the figure object by the locked export
   cell into curves.json) has a line with exactly the training accuracies and one with exactly
   the validation accuracies, one point per epoch;
4. figure pixels: the saved PNG shows those lines, i.e. at (nearly) every point the PNG has the
   line's colour within a few pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

from . import CheckResult, register
from .context import EvalContext, UnsafeArtifact

CURVES_FILE = "curves.json"


def _numbers(values) -> list[float] | None:
    if not isinstance(values, list) or not values:
        return None
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _same(a, b, tol: float = 1e-6) -> bool:
    return a is not None and b is not None and len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def _history(ctx: EvalContext, min_epochs: int) -> tuple[float, str, dict]:
    history, reported = ctx.json("history.json"), ctx.json("reported.json")
    train, val = _numbers(history.get("train_accuracy")), _numbers(history.get("val_accuracy"))
    curves = {"train_accuracy": train, "val_accuracy": val}
    if train is None or val is None:
        return 0.0, "the history needs train_accuracy and val_accuracy lists of numbers", curves
    if not all(0 <= v <= 1 for v in train + val):
        return 0.0, "accuracies must be fractions between 0 and 1", curves
    if len(train) != len(val):
        return 0.0, f"{len(train)} training but {len(val)} validation accuracies: one of each per epoch", curves
    epochs = reported.get("epochs")
    if not isinstance(epochs, (int, float)) or int(epochs) != len(val):
        return 0.0, f"the history has {len(val)} epochs but the notebook reports epochs={epochs!r}", curves
    if len(val) < min_epochs:
        return 0.0, f"only {len(val)} epoch(s): a curve needs at least {min_epochs}", curves
    return 1.0, f"{len(val)} epochs recorded", curves


def _run(ctx: EvalContext, last_val: float | None, tolerance: float) -> tuple[float, str, float | None]:
    from ...datasets import load_split
    from ..evaluate import _predict

    val = load_split(ctx.dataset, "val", ctx.profile, ctx.data_root)
    measured = float((_predict(ctx.module(), val.images, 500) == val.labels).float().mean())
    if last_val is None:
        return 0.0, f"the exported model's validation accuracy is {measured:.3f}; the history has none to compare", measured
    if abs(measured - last_val) > tolerance:
        return 0.0, (f"the exported model's validation accuracy is {measured:.3f} but the history's last value is "
                     f"{last_val:.3f}: the curves are not those of this model"), measured
    return 1.0, f"the last validation accuracy ({last_val:.3f}) is the exported model's ({measured:.3f})", measured


def _match_lines(lines: list, target: list[float]) -> dict | None:
    for line in lines:
        if isinstance(line, dict) and _same(_numbers(line.get("y")), target):
            return line
    return None


def _figure_data(ctx: EvalContext, curves: dict) -> tuple[float, str, dict]:
    data = ctx.json(CURVES_FILE)
    lines = data.get("lines") if isinstance(data.get("lines"), list) else []
    found = {name: _match_lines(lines, values) for name, values in curves.items() if values}
    missing = [name.replace("_", " ") for name, line in found.items() if line is None]
    if missing or not found:
        return 0.0, f"the figure has no line showing the recorded {' and '.join(missing) or 'accuracies'}", found
    bad_x = [name for name, line in found.items() if len(_numbers(line.get("x")) or []) != len(curves[name])]
    if bad_x:
        return 0.0, "each curve needs one point per epoch", found
    return 1.0, "the figure plots the recorded training and validation accuracies", found


def _colour_near(image, col: float, row: float, rgb, radius: int, max_distance: float = 0.2) -> bool:
    import numpy as np

    h, w = image.shape[:2]
    r0, r1 = max(0, int(round(row)) - radius), min(h, int(round(row)) + radius + 1)
    c0, c1 = max(0, int(round(col)) - radius), min(w, int(round(col)) + radius + 1)
    if r0 >= r1 or c0 >= c1:
        return False
    patch = image[r0:r1, c0:c1, :3]
    return bool((np.linalg.norm(patch - np.asarray(rgb), axis=-1) < max_distance).any())


def _figure_pixels(ctx: EvalContext, lines: dict, radius: int) -> tuple[float, str, dict]:
    import matplotlib.image as mpimg
    from matplotlib.colors import to_rgb

    try:
        path = ctx.file(str(ctx.json(CURVES_FILE).get("figure", "")))
    except (FileNotFoundError, UnsafeArtifact):
        return 0.0, "the curve figure (PNG) was not exported", {}
    image = mpimg.imread(str(path))
    if image.ndim != 3:
        return 0.0, "the curve figure is not a colour image", {}
    image = image.astype(float) / (255.0 if image.max() > 1 else 1.0)
    drawn = {}   # name -> [(col, row, colour present)]
    for name, line in lines.items():
        rgb = to_rgb(line.get("color", "#000000"))
        points = [p for p in line.get("pixels", []) if isinstance(p, list) and len(p) == 2]
        drawn[name] = [(float(c), float(r), _colour_near(image, float(c), float(r), rgb, radius)) for c, r in points]
    # where the two curves meet, the line drawn last covers the other: a point hidden under a
    # visible point of the other curve counts as shown
    hits = {name: [(c, r, ok or any(other_ok and abs(c - oc) <= 2 * radius and abs(r - orow) <= 2 * radius
                                    for other, points in drawn.items() if other != name
                                    for oc, orow, other_ok in points))
                   for c, r, ok in points]
            for name, points in drawn.items()}
    total = sum(len(v) for v in hits.values())
    shown = sum(ok for v in hits.values() for *_, ok in v)
    if total == 0:
        return 0.0, "no plotted points to find in the figure", hits
    fraction = shown / total
    score = 1.0 if fraction >= 0.9 else 0.0
    return score, f"{shown} of {total} plotted points are visible in the PNG at their place", hits


def _overlay(ctx: EvalContext, hits: dict) -> dict:
    """The student's figure with the checked points marked (green: found, red: not found)."""
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    image = mpimg.imread(str(ctx.file(str(ctx.json(CURVES_FILE).get("figure", "")))))
    fig, ax = plt.subplots(figsize=(image.shape[1] / 80, image.shape[0] / 80), dpi=80)
    ax.imshow(image)
    for points in hits.values():
        for col, row, ok in points:
            ax.plot(col, row, marker="o", markersize=9, markerfacecolor="none", markeredgecolor="g" if ok else "r")
    ax.axis("off")
    ax.set_title("checked points (green: found in your figure)", fontsize=8)
    path = Path(ctx.out) / "curve_check.png"
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return {"curve_check": str(path)}


@register("googlenet_curves")
def googlenet_curves(ctx: EvalContext, options: dict) -> CheckResult:
    tolerance = float(options.get("tolerance", 0.01))
    min_epochs = int(options.get("min_epochs", 2))
    radius = int(options.get("radius_px", 3))
    scores, notes, details, figures = {}, [], {}, {}

    scores["history"], note, curves = _history(ctx, min_epochs)
    notes.append(note)
    last_val = curves["val_accuracy"][-1] if curves["val_accuracy"] else None
    try:
        scores["run"], note, details["measured_val_accuracy"] = _run(ctx, last_val, tolerance)
    except Exception as exc:  # no model, or it fails on the images
        scores["run"], note = 0.0, f"could not measure the exported model: {type(exc).__name__}: {str(exc)[:120]}"
    notes.append(note)
    try:
        scores["figure_data"], note, lines = _figure_data(ctx, curves)
        notes.append(note)
        scores["figure_pixels"], note, hits = _figure_pixels(ctx, {k: v for k, v in lines.items() if v}, radius)
        notes.append(note)
        if hits:
            figures = _overlay(ctx, hits)
    except FileNotFoundError as exc:
        scores.setdefault("figure_data", 0.0)
        scores.setdefault("figure_pixels", 0.0)
        notes.append(f"no curve figure data: {exc}")
    score = sum(scores.values()) / 4
    details["scores"] = scores
    return CheckResult(score, "; ".join(notes), needs_review=0 < score < 1, figures=figures, details=details)
