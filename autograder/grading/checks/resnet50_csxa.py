"""Checks of the ResNet-50 on CSXA assignment: the confusion matrix and Grad-CAM, by content.

`csxa_confusion_matrix`: the exported `confusion_matrix` (tensors.pt, rows = true classes, counts,
on the validation split) must agree with the confusion matrix of the exported model's own
predictions, computed here, within `tolerance` (a fraction of the images, for GPU/CPU rounding);
and the reported per-class recalls and macro-F1 must be those of that matrix (0.6 + 0.4).

`csxa_gradcam`: the evaluator computes Grad-CAM itself, on the exported program, at the rubric's
layer (per profile), for the images the notebook explained (the first validation images) and the
classes it explained, and compares each of the student's heatmaps with its own (Pearson
correlation at the image size). Full points at a mean correlation of `agreement` (0.9), none at 0.5.
On the tiny profile it also computes Grad-CAM on the hidden test split, whose masks of the spine it
alone holds, and scores how much more of the heatmap's mass falls on the spine than chance (`lift`:
mass on the mask / mask area; full points at `min_lift`); the two halves weigh equally.
"""

from __future__ import annotations

from pathlib import Path

from . import CheckResult, register
from .context import EvalContext

TENSORS = "tensors.pt"


def _val(ctx: EvalContext):
    from ...datasets import load_split

    return load_split(ctx.dataset, "val", ctx.profile, ctx.data_root)


def _per_profile(value, profile: str):
    return value.get(profile) if isinstance(value, dict) else value


# ---- confusion matrix -------------------------------------------------------------------------

@register("csxa_confusion_matrix")
def csxa_confusion_matrix(ctx: EvalContext, options: dict) -> CheckResult:
    import numpy as np
    from sklearn.metrics import confusion_matrix, f1_score

    from ..evaluate import _predict

    tolerance = float(options.get("tolerance", 0.02))
    val = _val(ctx)
    k, n = len(val.classes), len(val)
    predicted = _predict(ctx.module(), val.images, 256)
    expected = confusion_matrix(val.labels.numpy(), predicted.numpy(), labels=range(k))
    details = {"expected": expected.tolist()}
    exported = ctx.tensors(TENSORS).get("confusion_matrix")
    if exported is None:
        return CheckResult(0.0, "no confusion_matrix among the exported tensors", details=details)
    cm = np.asarray(exported.detach().cpu().double().numpy())
    details["exported"] = cm.tolist()
    notes, score = [], 0.0
    if cm.shape != (k, k):
        notes.append(f"the confusion matrix is {cm.shape[0]} x {cm.shape[1] if cm.ndim > 1 else 1}, not {k} x {k}")
    else:
        off = float(np.abs(cm - expected).sum()) / max(n, 1)
        details["difference"] = off
        if off <= tolerance:
            score += 0.6
            notes.append(f"the confusion matrix agrees with the exported model's predictions on the validation split "
                         f"({off:.1%} of the images differ)")
        elif np.abs(cm.T - expected).sum() / max(n, 1) <= tolerance:
            notes.append("the confusion matrix is transposed: rows must be the true classes, columns the predictions")
        elif np.allclose(cm.sum(1), 1, atol=1e-3):
            notes.append("the exported matrix is normalized; export the counts (normalize only the plot)")
        else:
            notes.append(f"the confusion matrix does not match the exported model's predictions on the validation "
                         f"split ({off:.1%} of the images differ)")
    reported = ctx.json("reported.json")
    recall = expected.diagonal() / np.maximum(expected.sum(1), 1)
    macro_f1 = f1_score(val.labels.numpy(), predicted.numpy(), labels=range(k), average="macro", zero_division=0)
    claims = {f"recall_{c}": float(r) for c, r in zip(val.classes, recall)} | {"val_macro_f1": float(macro_f1)}
    wrong = []
    for key, value in claims.items():
        got = reported.get(key)
        if not isinstance(got, (int, float)) or abs(float(got) - value) > tolerance:
            wrong.append(f"{key} {got!r} (measured {value:.3f})")
    details["measured"] = claims
    if wrong:
        notes.append("reported values differ from the model's: " + ", ".join(wrong[:5]))
    else:
        score += 0.4
        notes.append(f"reported recalls and macro-F1 ({macro_f1:.3f}) match")
    return CheckResult(score, "; ".join(notes), needs_review=0 < score < 1, details=details)


# ---- Grad-CAM ---------------------------------------------------------------------------------

def _layer_output(graph, layer: str):
    """The last node computed inside the module `layer` (its output), by the nn_module_stack that
    torch.export records on every node."""
    last = None
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        if any(path == layer or path.endswith("." + layer) for path, _ in stack.values()):
            last = node
    if last is None:
        raise ValueError(f"the exported model has no module named {layer!r}")
    return last


def program_gradcam(program, images, classes, layer: str, batch_size: int = 64):
    """Grad-CAM of `classes` at the output of `layer` of an exported program: N x H x W, each
    scaled to a maximum of 1 (zeros stay zeros)."""
    import torch
    import torch.nn.functional as F

    module = program.module()
    target = _layer_output(module.graph, layer)

    class Capture(torch.fx.Interpreter):
        activation = None

        def run_node(self, node):
            out = super().run_node(node)
            if node is target:
                self.activation = out.detach().requires_grad_(True)
                return self.activation * 1.0   # later in-place operators must not touch the leaf
            return out

    cams = []
    with torch.enable_grad():
        for i in range(0, len(images), batch_size):
            capture = Capture(module)
            logits = capture.run(images[i:i + batch_size])
            logits = logits[0] if isinstance(logits, (tuple, list)) else logits
            score = logits.gather(1, classes[i:i + batch_size].view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, capture.activation)
            weights = grad.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * capture.activation).sum(1, keepdim=True)).detach()
            cams.append(F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0])
    cam = torch.cat(cams)
    return cam / cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)


def _correlations(student, ours):
    """Pearson correlation per image (both maps flat: 1 when both are flat, 0 when one is)."""
    import torch

    a = student.flatten(1).double()
    b = ours.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    na, nb = a.norm(dim=1), b.norm(dim=1)
    flat_a, flat_b = na < 1e-9, nb < 1e-9
    corr = (a * b).sum(1) / (na * nb).clamp_min(1e-12)
    return torch.where(flat_a & flat_b, torch.ones_like(corr), torch.where(flat_a | flat_b, torch.zeros_like(corr), corr))


def _ramp(value: float, zero: float, full: float) -> float:
    return max(0.0, min(1.0, (value - zero) / (full - zero)))


def _overlay(ctx: EvalContext, images, student, ours, name: str, titles: tuple[str, str]) -> dict:
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    count = min(4, len(images))
    fig, axes = plt.subplots(2, count, figsize=(2.2 * count, 4.6), squeeze=False)
    for row, (maps, title) in enumerate(((student, titles[0]), (ours, titles[1]))):
        for col in range(count):
            ax = axes[row, col]
            ax.imshow(images[col, 0].numpy(), cmap="gray")
            ax.imshow(maps[col].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.axis("off")
        axes[row, 0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    path = Path(ctx.out) / f"{name}.png"
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return {name: str(path)}


def _localization(ctx: EvalContext, program, layer: str, options: dict) -> tuple[float, str, dict, dict]:
    """Grad-CAM of the exported model on the hidden stand-in images vs the spine masks."""
    import torch
    import torch.nn.functional as F

    from ...datasets.csxa import tiny_masks

    count = int(options.get("hidden_images", 96))
    min_lift = float(options.get("min_lift", 1.5))
    margin = int(options.get("margin_px", 0))
    test = ctx.test_split
    images = test.images[:count]
    masks = tiny_masks("test", ctx.secret)[:count].float()
    if margin:
        masks = F.max_pool2d(masks[:, None], 2 * margin + 1, 1, margin)[:, 0]
    with torch.no_grad():
        classes = program.module()(images).argmax(1)
    cams = program_gradcam(program, images, classes, layer)
    mass = (cams * masks).flatten(1).sum(1) / cams.flatten(1).sum(1).clamp_min(1e-12)
    area = masks.flatten(1).mean(1)
    lift = float((mass / area.clamp_min(1e-12)).mean())
    details = {"mass_on_spine": float(mass.mean()), "spine_area": float(area.mean()), "lift": lift}
    note = (f"on {len(images)} hidden images the model's Grad-CAM puts {float(mass.mean()):.0%} of its mass on the "
            f"spine, which covers {float(area.mean()):.0%} of the image ({lift:.2f}x chance; full points at {min_lift:g}x)")
    figures = _overlay(ctx, images, cams, cams * masks, "gradcam_hidden",
                       ("Grad-CAM on hidden images", "the part on the spine"))
    return _ramp(lift, 1.0, min_lift), note, details, figures


@register("csxa_gradcam")
def csxa_gradcam(ctx: EvalContext, options: dict) -> CheckResult:
    import torch
    import torch.nn.functional as F

    layer = _per_profile(options.get("layer", "layer4"), ctx.profile)
    full_at, zero_at = float(options.get("agreement", 0.9)), float(options.get("no_agreement", 0.5))
    tensors = ctx.tensors(TENSORS)
    student, classes = tensors.get("gradcam"), tensors.get("gradcam_class")
    if student is None or classes is None:
        return CheckResult(0.0, "no gradcam and gradcam_class among the exported tensors")
    student, classes = student.detach().float().cpu(), classes.detach().long().cpu().flatten()
    if student.ndim == 4 and student.shape[1] == 1:
        student = student[:, 0]
    val = _val(ctx)
    k = len(classes)
    if student.ndim != 3 or len(student) != k or not 0 < k <= len(val) or classes.min() < 0 or classes.max() >= len(val.classes):
        return CheckResult(0.0, f"gradcam must be N x H x W heatmaps with one class each; got {tuple(student.shape)} "
                                f"and {k} classes")
    images = val.images[:k]
    program = ctx.program()   # loaded and vetted once per evaluation (EvalContext)
    ours = program_gradcam(program, images, classes, layer)
    student = F.interpolate(student[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    student = torch.nan_to_num(student)
    corr = _correlations(student, ours)
    mean_corr = float(corr.mean())
    agreement = _ramp(mean_corr, zero_at, full_at)
    notes = [f"your Grad-CAM heatmaps agree with the grader's on {layer} (mean correlation {mean_corr:.2f} over "
             f"{k} images; full points at {full_at:g})"]
    details = {"layer": layer, "mean_correlation": mean_corr, "correlations": [round(float(c), 3) for c in corr]}
    peak = student.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    figures = _overlay(ctx, images, student / peak, ours, "gradcam_agreement", ("your Grad-CAM", "the grader's"))
    score = agreement
    localization = _per_profile(options.get("localization", {}), ctx.profile)
    if localization:
        part, note, more, extra = _localization(ctx, program, layer, localization)
        notes.append(note)
        details.update(more)
        figures.update(extra)
        score = (agreement + part) / 2
    return CheckResult(score, "; ".join(notes), needs_review=0 < score < 1, figures=figures, details=details)
