"""`spine_hidden_split`: one exported spine classifier on the hidden test split: macro-F1, recall
per class, the RSNA competition's sample-weighted log loss (weights 1 / 2 / 4 for Normal/Mild /
Moderate / Severe, by true class) and the row-normalized confusion matrix (a figure in the feedback).

Options: program (default model.pt2), label, and bands per profile, best first:
  macro_f1: {tiny: [[at_least, share], ...]}   log_loss: {tiny: [[at_most, share], ...]}
  logged_as: the configuration of the experiment log (experiments.json) this model is; the check
             measures the model on the validation split and sends a log that disagrees to a human
             (the kernel wrote the log; the comparison's numbers are checked against it)
The score is the mean of the two shares (a share is a fraction of the part's points).
"""

from __future__ import annotations

from . import CheckResult, register
from .architecture import per_profile
from .context import EvalContext


def _share(bands, value: float, higher_is_better: bool) -> float:
    for bound, share in bands or []:
        if (value >= bound) if higher_is_better else (value <= bound):
            return float(share)
    return 0.0


def hidden_metrics(program, images, labels, classes, weights, batch_size: int = 256) -> dict:
    import numpy as np
    import torch
    from sklearn.metrics import confusion_matrix, f1_score, log_loss, recall_score

    module = program.module()
    with torch.no_grad():
        proba = torch.cat([torch.softmax(module(images[i:i + batch_size]).double(), 1)
                           for i in range(0, len(images), batch_size)])
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(f"the model predicts {tuple(proba.shape[1:])} values per image, not {len(classes)} classes")
    y, p, k = labels.numpy(), proba.argmax(1).numpy(), list(range(len(classes)))
    recall = recall_score(y, p, labels=k, average=None, zero_division=0)
    return {"macro_f1": float(f1_score(y, p, labels=k, average="macro", zero_division=0)),
            "recall": {c: float(r) for c, r in zip(classes, recall)},
            "log_loss": float(log_loss(y, proba.numpy(), labels=k, sample_weight=np.asarray(weights)[y])),
            "confusion_matrix": confusion_matrix(y, p, labels=k).tolist(), "classes": list(classes), "n": len(y)}


def _plot(metrics: dict, title: str, path) -> None:
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    cm = np.array(metrics["confusion_matrix"], dtype=float)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ConfusionMatrixDisplay(cm / np.maximum(cm.sum(1, keepdims=True), 1), display_labels=metrics["classes"]).plot(
        ax=ax, cmap="Blues", values_format=".2f", colorbar=False, im_kw={"vmin": 0, "vmax": 1}, text_kw={"fontsize": 8})
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


LOG_TOLERANCE = 0.015   # the inquiry's tolerance plus rounding


def _log_disagrees(ctx: EvalContext, program, config: str, label: str) -> str | None:
    """A sentence for the instructor when the logged validation macro-F1 of `config` is not the
    exported model's (None when they agree or nothing was logged)."""
    from ...datasets import load_split
    from ...export_names import EXPERIMENTS_FILE
    from ...inquiry import plain_log

    try:
        log = plain_log(ctx.json(EXPERIMENTS_FILE))
    except (OSError, ValueError):
        return None
    logged = [r["metrics"]["macro_f1"] for r in log.get("runs", []) if r["config"] == config and "macro_f1" in r["metrics"]]
    if not logged:
        return None
    val = load_split(ctx.dataset, "val", ctx.profile, ctx.data_root)
    measured = hidden_metrics(program, val.images, val.labels, val.classes, [1.0] * len(val.classes))["macro_f1"]
    if min(abs(measured - v) for v in logged) <= LOG_TOLERANCE:
        return None
    return (f"the exported {label}'s validation macro-F1 is {measured:.3f}, but the logged {config} run says "
            f"{', '.join(f'{v:.3f}' for v in logged)}: the log may not belong to this model")


@register("spine_hidden_split")
def spine_hidden_split(ctx: EvalContext, options: dict) -> CheckResult:
    from ...datasets.spine import LOSS_WEIGHTS

    filename = options.get("program", "model.pt2")
    label = options.get("label", filename.removesuffix(".pt2"))
    try:
        program = ctx.program(filename)
    except FileNotFoundError:
        return CheckResult(0.0, f"{label}: no exported {filename}: the export cell did not run or failed")
    test = ctx.test_split
    try:
        m = hidden_metrics(program, test.images, test.labels, test.classes, LOSS_WEIGHTS)
    except Exception as exc:
        return CheckResult(0.0, f"{label}: the exported model failed on the hidden test images: "
                                f"{type(exc).__name__}: {str(exc)[:200]}")
    f1_share = _share(per_profile(options.get("macro_f1"), ctx.profile), m["macro_f1"], True)
    loss_share = _share(per_profile(options.get("log_loss"), ctx.profile), m["log_loss"], False)
    name = f"confusion_{label.lower().replace('-', '').replace(' ', '_')}"
    _plot(m, f"{label}: hidden test split (row-normalized)", ctx.out / f"{name}.png")
    recalls = ", ".join(f"{c} {r:.2f}" for c, r in m["recall"].items())
    flag = _log_disagrees(ctx, program, options["logged_as"], label) if options.get("logged_as") else None
    return CheckResult((f1_share + loss_share) / 2,
                       f"{label} on the hidden test split ({m['n']} slices): macro-F1 {m['macro_f1']:.3f} "
                       f"({f1_share:.0%} of its half), weighted log loss {m['log_loss']:.3f} ({loss_share:.0%} of its "
                       f"half); recall per class: {recalls}" + (f"; {flag}" if flag else ""),
                       needs_review=flag is not None, figures={name: str(ctx.out / f"{name}.png")},
                       details={**m, "log_flag": flag})
