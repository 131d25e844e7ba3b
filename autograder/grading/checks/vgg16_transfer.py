"""Checks of the VGG16 transfer-learning assignment: did the backbone stay frozen?

The evaluator knows the starting weights: torchvision's ImageNet file on `full`, the public
seeded random init on `tiny` (both from `autograder.datasets.pretrained`). Every convolution of
VGG16 must appear unchanged among the exported program's tensors. Tensors are matched by shape
and value, not by name, so any wrapping of the model (`model.features`, `backbone.0`, ...) works.
"""

from __future__ import annotations

from . import CheckResult, register
from .context import EvalContext

# VGG16's 13 convolutions, as indices into `features`, named as in the paper (conv<block>_<i>).
_CONV_NAMES = dict(zip((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
                       ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                        "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3")))


def program_tensors(program) -> list:
    """Every tensor an exported program carries: parameters, buffers and lifted constants."""
    import torch

    tensors = list(program.state_dict.values()) + list(program.constants.values())
    return [t.detach().float() for t in tensors if isinstance(t, torch.Tensor)]


def _relative_change(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def compare_backbone(start: dict, exported: list, tolerance: float = 1e-5) -> dict:
    """For each starting tensor, the exported tensor of that shape closest to it."""
    unused = list(range(len(exported)))
    unchanged, changed, missing = [], {}, []
    for name, reference in start.items():
        reference = reference.float()
        candidates = [i for i in unused if exported[i].shape == reference.shape]
        if not candidates:
            missing.append(name)
            continue
        change, best = min((_relative_change(exported[i], reference), i) for i in candidates)
        if change <= tolerance:
            unused.remove(best)
            unchanged.append(name)
        else:
            changed[name] = change
    return {"unchanged": unchanged, "changed": changed, "missing": missing}


def _layer(key: str) -> str:
    index, _, kind = key.partition(".")
    return f"{_CONV_NAMES.get(int(index), 'features.' + index)} {kind}"


@register("vgg16_frozen_backbone")
def frozen_backbone(ctx: EvalContext, options: dict) -> CheckResult:
    from ...datasets.pretrained import pretrained_model

    try:
        program = ctx.program()
    except FileNotFoundError as exc:
        return CheckResult(0.0, f"0 points: {exc}: the export cell did not run")
    start = pretrained_model("vgg16", ctx.profile, ctx.data_root).features.state_dict()
    found = compare_backbone(start, program_tensors(program), float(options.get("tolerance", 1e-5)))
    total = len(start)
    details = {"tensors": total, "unchanged": len(found["unchanged"]),
               "changed": {_layer(k): v for k, v in found["changed"].items()},
               "missing": [_layer(k) for k in found["missing"]]}
    if len(found["unchanged"]) == total:
        return CheckResult(1.0, f"all {total} weight and bias tensors of VGG16's 13 convolutions are exactly the "
                                "pre-trained ones: the backbone stayed frozen", details=details)
    if found["missing"] and not found["changed"] and not found["unchanged"]:
        return CheckResult(0.0, "0 points: the exported model does not contain VGG16's convolutional layers "
                                "(export the adapted pre-trained VGG16, not another network)", details=details)
    problems = []
    if found["changed"]:
        layers = sorted({_layer(k).split()[0] for k in found["changed"]}, key=lambda n: list(_CONV_NAMES.values()).index(n)
                        if n in _CONV_NAMES.values() else 99)
        largest = max(found["changed"].values())
        problems.append(f"{len(found['changed'])} of {total} backbone tensors changed during training "
                        f"({', '.join(layers)}; largest relative change {largest:.2g})")
    if found["missing"]:
        problems.append(f"{len(found['missing'])} are missing from the export")
    return CheckResult(0.0, "0 points: the backbone did not stay frozen: " + "; ".join(problems) +
                       ". Only the new head may train (freeze model.features).", details=details)
