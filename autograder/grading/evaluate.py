"""evaluate: the trusted evaluator. Loads the exported model (a torch.export program: no
student Python runs) in a process of its own and scores it on the hidden test split.

Parent side: `evaluate(...)` -> plain dict. Child side: `python -m autograder.grading.evaluate`.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from pathlib import Path

from ..export_names import EXPERIMENTS_FILE, HISTORY_FILE, MODEL_FILE, REPORTED_FILE

EVAL_FILE = "evaluation.json"
CONFUSION_PNG = "confusion_matrix.png"
CURVE_PNG = "training_curve.png"


# ---- child ----------------------------------------------------------------------------------

def _predict(module, images, batch_size: int = 512):
    import torch

    with torch.no_grad():
        return torch.cat([module(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


def _batches(n: int, rng) -> list[int]:
    """Batch sizes covering n images, each drawn in [2, 256] (a lone last image joins the one before)."""
    import torch

    sizes = []
    while sum(sizes) < n:
        sizes.append(min(int(torch.randint(2, 257, (1,), generator=rng)), n - sum(sizes)))
    if len(sizes) > 1 and sizes[-1] < 2:
        last = sizes.pop()
        sizes[-1] += last
    return sizes


def _predict_shuffled(module, images, rng, limit: int | None = None):
    """(indices, predictions): the images (or `limit` of them) in a fresh random order and in
    batches of random sizes, so a model cannot tell the evaluation from its order or its batch."""
    import torch

    order = torch.randperm(len(images), generator=rng)[:limit]
    out, start = [], 0
    with torch.no_grad():
        for size in _batches(len(order), rng):
            out.append(module(images[order[start:start + size]]).argmax(1))
            start += size
    return order, torch.cat(out)


ORDER_TOLERANCE = 0.005      # share of predictions that may differ between two orderings (float ties)
SECOND_ORDERING_MAX = 1000   # images predicted a second time, in another order and batching
ABOVE_VALIDATION = 0.15      # hidden accuracy this far above the measured validation accuracy is flagged


def _shuffled_predictions(module, images, rng) -> tuple[object, list[str]]:
    """Predictions in file order, from a shuffled, randomly batched pass; a second pass in
    another order over up to SECOND_ORDERING_MAX images must agree with it."""
    import torch

    order, first = _predict_shuffled(module, images, rng)
    predictions = torch.empty_like(first)
    predictions[order] = first
    again, second = _predict_shuffled(module, images, rng, SECOND_ORDERING_MAX)
    differ = int((predictions[again] != second).sum())
    if differ > max(1, ORDER_TOLERANCE * len(again)):
        return predictions, [f"the exported model's predictions change with the order or batching of the test "
                             f"images ({differ} of {len(again)} differ): it may detect the evaluation; review it"]
    return predictions, []


def _metrics(labels, predictions, classes) -> dict:
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score

    y, p = labels.numpy(), predictions.numpy()
    recall = recall_score(y, p, labels=range(len(classes)), average=None, zero_division=0)
    return {
        "accuracy": float((y == p).mean()),
        "macro_f1": float(f1_score(y, p, labels=range(len(classes)), average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y, p)),
        "recall": {c: float(r) for c, r in zip(classes, recall)},
        "min_recall": float(recall.min()),
        "confusion_matrix": confusion_matrix(y, p, labels=range(len(classes))).tolist(),
        "classes": list(classes),
        "n": int(len(y)),
    }


def _plot_confusion(metrics: dict, path: Path) -> None:
    """scikit-learn's display of the row-normalized matrix (each true class sums to 1)."""
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    cm = np.array(metrics["confusion_matrix"], dtype=float)
    normalized = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    classes = metrics["classes"]
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ConfusionMatrixDisplay(normalized, display_labels=classes).plot(
        ax=ax, cmap="Blues", values_format=".2f", colorbar=True, im_kw={"vmin": 0, "vmax": 1},
        xticks_rotation=45 if len(classes) > 6 else "horizontal", text_kw={"fontsize": 7})
    ax.set_title("Hidden test split (row-normalized)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_history(history: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    from ..student import plot_history

    clean = {k: [v for v in vals if v is not None] for k, vals in history.items() if isinstance(vals, list)}
    fig = plot_history({k: v for k, v in clean.items() if v}, "Training curve (from the exported history)")
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _read_json(ctx, filename: str) -> dict:
    """A small JSON object from the artifacts, or {} (missing, a link, too large, malformed)."""
    try:
        return ctx.json(filename)
    except (OSError, ValueError):
        return {}


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _plain_history(history: dict) -> dict:
    """{name: [number or None, ...]}: what a training curve can hold, nothing else."""
    return {str(k)[:100]: [_number(v) for v in values[:10_000]] for k, values in list(history.items())[:50]
            if isinstance(values, list)}


def _plain_reported(reported: dict) -> dict:
    """Self-reported values: finite numbers and short strings (shown and compared, never trusted)."""
    plain = {}
    for key, value in list(reported.items())[:50]:
        if isinstance(value, str):
            plain[str(key)[:100]] = value[:200]
        elif _number(value) is not None:
            plain[str(key)[:100]] = _number(value)
    return plain


def _classification(ctx, out: Path, data_root: str | None) -> dict:
    """Accuracy and friends of the exported classifier on the hidden test split (and on the
    validation split, to compare with what the notebook reports)."""
    from ..datasets import load_split

    try:
        module = ctx.module()
    except FileNotFoundError:
        return {"ok": False, "error": f"no exported model ({MODEL_FILE}): the export cell did not run or failed"}
    except Exception as exc:
        return {"ok": False, "error": f"the exported model could not be loaded: {type(exc).__name__}: {str(exc)[:200]}"}
    import secrets

    import torch

    rng = torch.Generator().manual_seed(secrets.randbits(63))   # a new order for every evaluation
    try:   # the grader's own data: a failure here is not the student's
        test = ctx.test_split
        val = load_split(ctx.dataset, "val", ctx.profile, data_root)
    except Exception as exc:
        return {"ok": False, "grader_error": f"the {ctx.profile} data could not be loaded on runner "
                                             f"{platform.node()}: {type(exc).__name__}: {str(exc)[:300]}"}
    try:
        predictions, flags = _shuffled_predictions(module, test.images, rng)
        val_predictions, val_flags = _shuffled_predictions(module, val.images, rng)
        val_accuracy = float((val_predictions == val.labels).float().mean())
    except Exception as exc:
        return {"ok": False, "error": f"the exported model failed on the test images: {type(exc).__name__}: {str(exc)[:200]}"}
    metrics = _metrics(test.labels, predictions, test.classes)
    flags += [] if flags else val_flags
    if metrics["accuracy"] - val_accuracy > ABOVE_VALIDATION:
        flags.append(f"hidden-split accuracy {metrics['accuracy']:.3f} is far above the evaluator's validation "
                     f"accuracy {val_accuracy:.3f}: a model that recognises the test images? review it")
    _plot_confusion(metrics, out / CONFUSION_PNG)
    return {"ok": True, "test": metrics, "val_accuracy": val_accuracy, "flags": flags,
            "figures": {"confusion_matrix": str(out / CONFUSION_PNG)}}


def _inquiry(ctx, data_root: str | None) -> dict:
    """The inquiry loop's experiment log (shape-checked) and the exported variant model measured
    again on the validation split, so that a log that does not belong to the model shows."""
    from ..datasets import load_split
    from ..inquiry import plain_log

    result = {"log": plain_log(_read_json(ctx, EXPERIMENTS_FILE)), "exported": {}}
    try:
        val = load_split(ctx.dataset, "val", ctx.profile, data_root)
        metrics = _metrics(val.labels, _predict(ctx.module(), val.images), val.classes)
        result["exported"] = {k: metrics[k] for k in ("macro_f1", "accuracy", "min_recall")}
    except Exception as exc:
        result["exported_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return result


def run(artifacts: Path, out: Path, plan: dict, profile: str, hidden_root: str | None, cache_dir: Path,
        data_root: str | None, sandboxed: bool = True, reference: dict | None = None) -> dict:
    """`plan`: what to measure (`Rubric.evaluation_plan()`); `sandboxed`: how the session runs student code (a check that starts the student's service
    does the same); `reference`: what the reference run measured on this runner (its service's
    latency) for checks scored relative to it."""
    import torch

    from ..datasets.hidden import course_secret
    from .checks import run_check
    from .checks.context import EvalContext

    torch.set_grad_enabled(False)
    out.mkdir(parents=True, exist_ok=True)
    ctx = EvalContext(artifacts, out, plan["dataset"], profile, Path(hidden_root) if hidden_root else None,
                      Path(data_root) if data_root else None, course_secret(cache_dir), sandboxed=sandboxed,
                      reference=dict(reference or {}))
    result: dict = {"ok": True, "figures": {}, "checks": {}}
    if plan["classification"]:
        classification = _classification(ctx, out, data_root)
        result.update({k: v for k, v in classification.items() if k != "figures"})
        result["figures"].update(classification.get("figures", {}))
    history = _plain_history(_read_json(ctx, HISTORY_FILE))
    result["history"] = history
    result["reported"] = _plain_reported(_read_json(ctx, REPORTED_FILE))
    if history:
        try:
            _plot_history(history, out / CURVE_PNG)
            result["figures"]["training_curve"] = str(out / CURVE_PNG)
        except Exception as exc:  # a malformed history costs the figure, not the evaluation
            result["history_error"] = f"{type(exc).__name__}: {exc}"
    if plan["inquiry"]:
        result["inquiry"] = _inquiry(ctx, data_root)
    for part_id, options in plan["efficiency"]:
        from .efficiency import measure
        result.setdefault("efficiency", {})[part_id] = measure(ctx, options)
    for part_id, name, options in plan["checks"]:
        check = run_check(name, ctx, options)
        result["checks"][part_id] = check
        result["figures"].update(check.get("figures", {}))
        if check.get("grader_error") and not result.get("grader_error"):   # the grader's side, not the student's
            result["grader_error"] = check["grader_error"]
    return result


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="autograder.grading.evaluate")
    for name in ("artifacts", "out", "rubric", "profile", "cache_dir"):
        parser.add_argument(f"--{name.replace('_', '-')}", required=True)
    parser.add_argument("--hidden-root")
    parser.add_argument("--data-root")
    parser.add_argument("--unsandboxed", action="store_true")
    parser.add_argument("--reference", type=json.loads, default=None, help="JSON: the reference run's measures")
    a = parser.parse_args(argv)
    from ..rubric import load_rubric

    plan = load_rubric(Path(a.rubric)).evaluation_plan()
    result = run(Path(a.artifacts), Path(a.out), plan, a.profile, a.hidden_root, Path(a.cache_dir), a.data_root,
                 not a.unsandboxed, a.reference)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / EVAL_FILE).write_text(json.dumps(result, indent=1))
    return 0


# ---- parent ---------------------------------------------------------------------------------

def evaluate(artifacts: Path, out: Path, plan: dict, profile: str, hidden_root: Path | None,
             cache_dir: Path, data_root: Path | None, timeout_s: float = 600, threads: int | None = None,
             sandboxed: bool = True, reference: dict | None = None) -> dict:
    """Score the artifacts in a fork of this process's warm evaluator (grading/warm_evaluator.py)."""
    from .warm_evaluator import evaluate_warm

    args = {"artifacts": str(artifacts), "out": str(out), "plan": plan, "profile": profile,
            "cache_dir": str(cache_dir), "hidden_root": str(hidden_root) if hidden_root else None,
            "data_root": str(data_root) if data_root else None, "sandboxed": sandboxed, "reference": reference}
    return evaluate_warm(args, timeout_s, 8 * 2**30, threads)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
