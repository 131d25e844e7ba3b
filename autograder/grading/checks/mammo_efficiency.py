"""Checks of `mammo_efficiency`: the experiment configs against the published schema, the patient-level
split (leakage), the exported programs' input (privacy), the results table against the exported
model, and detection on the hidden split.

What the notebook exports (besides the programs): `experiments.json`
{"configs": {file name: config}, "results": [{"config", "val_accuracy", "val_auc", "train_seconds"}, ...],
"exported_config": name} and `splits.json` {"train": [patient ids], "val": [patient ids]}.
"""

from __future__ import annotations

from . import CheckResult, register
from .context import EvalContext

EXPERIMENTS = "experiments.json"
SPLITS = "splits.json"
RESULT_COLUMNS = ("config", "val_accuracy", "val_auc", "train_seconds")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _experiments(ctx: EvalContext) -> dict:
    data = ctx.json(EXPERIMENTS)
    if not isinstance(data.get("configs"), dict) or not isinstance(data.get("results"), list):
        raise ValueError(f"{EXPERIMENTS} has no `configs` mapping and `results` list (the export cell did not run?)")
    return data


@register("mammo_configs")
def configs(ctx: EvalContext, options: dict) -> CheckResult:
    """Every config follows the schema; at least `min_configs` of them; one results row per config
    with the config name, the metrics and the training time."""
    from ...datasets.mammo import config_errors

    data = _experiments(ctx)
    problems = []
    for source, config in list(data["configs"].items())[:50]:
        problems += config_errors(config, str(source)[:80])
    names = {c.get("name") for c in data["configs"].values() if isinstance(c, dict)}
    rows = [r for r in data["results"][:200] if isinstance(r, dict)]
    for row in rows:
        missing = [k for k in RESULT_COLUMNS if k not in row or (k != "config" and not _number(row[k]))]
        if missing:
            problems.append(f"results row {str(row.get('config'))[:40]!r}: missing or not a number: {', '.join(missing)}")
    unrun = sorted(str(n) for n in names - {r.get("config") for r in rows})
    if unrun:
        problems.append(f"no results row for config(s) {', '.join(unrun)}")
    need = int(options.get("min_configs", 2))
    if len(data["configs"]) < need:
        problems.append(f"{len(data['configs'])} config(s); the assignment asks for at least {need}")
    if problems:
        return CheckResult(0.0, "the experiment configs or results table break the contract: " + "; ".join(problems[:6]),
                           details={"problems": problems})
    return CheckResult(1.0, f"{len(data['configs'])} configs follow the published schema and each has its results row")


@register("mammo_leakage")
def leakage(ctx: EvalContext, options: dict) -> CheckResult:
    """No patient in more than one split of the exported split ids, and every id a training patient."""
    from ...datasets import load_split

    splits = ctx.json(SPLITS)
    if not all(isinstance(splits.get(k), list) and splits[k] for k in ("train", "val")):
        return CheckResult(0.0, f"{SPLITS} must list the patient ids of `train` and `val` (the export cell did not run?)")
    sets = {k: {str(p) for p in splits[k][:1_000_000]} for k in ("train", "val")}
    known = set(load_split(ctx.dataset, "train", ctx.profile, ctx.data_root).patients)
    unknown = sorted((sets["train"] | sets["val"]) - known)
    shared = sorted(sets["train"] & sets["val"])
    details = {"train_patients": len(sets["train"]), "val_patients": len(sets["val"]), "in_both": len(shared)}
    if shared:
        return CheckResult(0.0, (
            f"{len(shared)} of {len(sets['train'] | sets['val'])} patients are in both the training and the validation "
            f"split (e.g. {', '.join(p[:20] for p in shared[:3])}): their other views were trained on, so the validation score measures "
            "memory of these patients, not detection on new ones. Split by patient (all images of a patient on one "
            "side), e.g. with scikit-learn's GroupShuffleSplit"), details=details)
    if unknown:
        return CheckResult(0.0, f"{len(unknown)} exported ids are not patients of the training data "
                                f"(e.g. {', '.join(u[:20] for u in unknown[:3])})", details=details)
    uncovered = len(known - sets["train"] - sets["val"])
    return CheckResult(1.0, f"no patient is in both splits ({len(sets['train'])} training, {len(sets['val'])} validation "
                            f"patients{f', {uncovered} unused' if uncovered else ''})", details=details)


@register("mammo_privacy")
def privacy(ctx: EvalContext, options: dict) -> CheckResult:
    """Each exported program takes one input, a float image batch of the dataset's shape: no patient
    id, age or other metadata reaches the model."""
    from ...datasets.mammo import image_shape

    expected = image_shape(ctx.profile)
    problems, seen = [], []
    for filename in options.get("programs", ["model.pt2"]):
        try:
            program = ctx.program(filename)
        except FileNotFoundError:
            problems.append(f"{filename} was not exported")
            continue
        names = list(program.graph_signature.user_inputs)
        shapes = {n.name: n.meta.get("val") for n in program.graph_module.graph.nodes
                  if n.op == "placeholder" and n.name in names}
        if len(names) != 1:
            problems.append(f"{filename} takes {len(names)} inputs ({', '.join(names)[:100]}); only the image may go in")
            continue
        val = shapes[names[0]]
        shape = tuple(val.shape[1:]) if val is not None else ()
        if val is None or str(val.dtype) != "torch.float32" or tuple(int(s) for s in shape) != expected:
            problems.append(f"{filename}'s input is {tuple(val.shape) if val is not None else '?'} "
                            f"{getattr(val, 'dtype', '')}, not a float32 image batch (N, {', '.join(map(str, expected))})")
            continue
        seen.append(filename)
    if problems:
        return CheckResult(0.0, "the exported model must see the image alone: " + "; ".join(problems))
    return CheckResult(1.0, f"{', '.join(seen)}: the image is the only input (N x {' x '.join(map(str, expected))}, float32)")


@register("mammo_results_match")
def results_match(ctx: EvalContext, options: dict) -> CheckResult:
    """The results row of the exported config reports what the exported fp32 model measures on the
    student's validation patients (re-measured here)."""
    from ..efficiency import _probabilities, _quality, validation_data

    data = _experiments(ctx)
    name = data.get("exported_config")
    row = next((r for r in data["results"] if isinstance(r, dict) and r.get("config") == name), None)
    if row is None:
        return CheckResult(0.0, f"the results table has no row for the exported config {str(name)[:40]!r}")
    validation = validation_data(ctx, {"file": SPLITS, "key": "val"})
    if validation is None:
        return CheckResult(0.0, f"{SPLITS} lists no validation patients to measure the exported model on")
    measured = _quality(_probabilities(ctx.module(), validation[0]), validation[1], 1)
    tolerance = float(options.get("tolerance", 0.02))
    lines, ok = [], True
    for metric in ("accuracy", "auc"):
        reported = row.get(f"val_{metric}")
        if measured[metric] is None:
            continue
        if not _number(reported) or abs(float(reported) - measured[metric]) > tolerance:
            ok = False
            lines.append(f"val_{metric}: the table says {reported if _number(reported) else 'nothing'}, the exported "
                         f"model measures {measured[metric]:.3f}")
        else:
            lines.append(f"val_{metric} {float(reported):.3f} (measured {measured[metric]:.3f})")
    details = {"config": name, "measured": measured}
    if not ok:
        return CheckResult(0.0, f"the results row of {str(name)[:40]!r} does not describe the exported model: "
                                + "; ".join(lines) + " (was another run's model exported, or the table edited?)",
                           details=details)
    return CheckResult(1.0, f"the results row of {str(name)[:40]!r} matches the exported model: " + "; ".join(lines),
                       details=details)


@register("mammo_detection")
def detection(ctx: EvalContext, options: dict) -> CheckResult:
    """AUC of MALIGNANT on the hidden split (the official test set on full), fp32 program, in bands."""
    from ..efficiency import _probabilities, _quality

    test = ctx.test_split
    quality = _quality(_probabilities(ctx.module(), test.images), test.labels, 1)
    auc = quality["auc"] or 0.0
    for band in options["bands"][ctx.profile]:
        if auc >= band["at_least"]:
            return CheckResult(band["score"], f"AUC of MALIGNANT on the hidden split {auc:.3f} (at least {band['at_least']:g}); "
                                              f"accuracy {quality['accuracy']:.3f}", details=quality)
    return CheckResult(0.0, f"AUC of MALIGNANT on the hidden split {auc:.3f}, below every band; accuracy "
                            f"{quality['accuracy']:.3f}", details=quality)
