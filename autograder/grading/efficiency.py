"""The `efficiency` rubric part, usable by any assignment: for each exported precision (bf16, int8,
...), the accuracy and AUC change against the student's own fp32 program on the hidden split, the
program's size in bytes, and its CPU latency at batch 1 and batch 32 relative to the reference's
fp32 model measured on the same runner, back to back; bands in the rubric.

Evaluator side: `measure(ctx, options)` (trusted process; programs loaded the checked way, the
reference model built by course code named in the rubric). Scorer side: `score_efficiency`.

The reference's fp32 model is built from its architecture, not loaded from a reference run: size and
latency do not depend on the weights' values, and measuring it in the same process, interleaved with
the student's programs, keeps machine load out of the ratios.
"""

from __future__ import annotations

import importlib
import time

from ..rubric import Part
from .results import PartResult

LATENCY_ROUNDS = {1: 30, 32: 8}   # calls per program and batch size, interleaved across programs
WARMUP = 2
LATENCY_BUDGET_S = 20.0           # per program: a very slow export is measured on fewer calls, not forever
FP32 = "fp32"
DEFAULT_FP32_FILE = "model.pt2"
QUOTE_TOLERANCE = 0.01


# ---- evaluator side ---------------------------------------------------------------------------

def _baseline(spec: str, profile: str, out):
    """The reference's fp32 model (trusted course code), exported and saved as a student's would be:
    (program, size in bytes)."""
    import torch

    module_name, _, function = spec.partition(":")
    if not module_name.startswith("autograder."):
        raise ValueError(f"baseline {spec!r} is not course code (autograder.<module>:<function>)")
    model, example = getattr(importlib.import_module(module_name), function)(profile)
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))
    path = out / "efficiency_baseline.pt2"
    torch.export.save(program, path)
    return program, path.stat().st_size


def _probabilities(module, images, batch_size: int = 256):
    import torch

    with torch.no_grad():
        return torch.cat([torch.softmax(module(images[i:i + batch_size]).float(), 1)
                          for i in range(0, len(images), batch_size)])


def _quality(probabilities, labels, positive: int) -> dict:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    y, p = labels.numpy(), probabilities.numpy()
    accuracy = float((p.argmax(1) == y).mean())
    try:
        if p.shape[1] == 2:
            auc = float(roc_auc_score(y == positive, p[:, positive]))
        else:
            auc = float(roc_auc_score(y, p, multi_class="ovr"))
    except ValueError:     # one class only in the labels
        auc = None
    return {"accuracy": accuracy, "auc": auc if auc is None or np.isfinite(auc) else None}


def _latencies(modules: dict, images) -> dict:
    """name -> {batch size: median seconds per call}, the programs called in turn so that a change
    of load touches all of them alike."""
    import statistics

    import torch

    times = {name: {b: [] for b in LATENCY_ROUNDS} for name in modules}
    spent = dict.fromkeys(modules, 0.0)
    with torch.no_grad():
        for b, rounds in LATENCY_ROUNDS.items():
            x = images[:b].contiguous()
            if len(x) < b:
                x = x.repeat((b + len(x) - 1) // len(x), 1, 1, 1)[:b]
            for i in range(WARMUP + rounds):
                for name, module in modules.items():
                    if spent[name] > LATENCY_BUDGET_S * (1 if b > 1 else 0.5) and times[name][b]:
                        continue
                    start = time.perf_counter()
                    module(x)
                    took = time.perf_counter() - start
                    spent[name] += took
                    if i >= WARMUP or (spent[name] > LATENCY_BUDGET_S / 2 and not times[name][b]):
                        times[name][b].append(took)
    return {name: {str(b): statistics.median(t) for b, t in per.items()} for name, per in times.items()}


def validation_data(ctx, spec: dict):
    """(images, labels) of the train split's images whose patient id the student's exported JSON
    lists under spec["key"] (their own validation patients), or None."""
    from ..datasets import load_split

    ids = ctx.json(spec["file"]).get(spec["key"])
    if not isinstance(ids, list) or not ids:
        return None
    wanted = {str(i) for i in ids[:1_000_000]}
    train = load_split(ctx.dataset, "train", ctx.profile, ctx.data_root)
    keep = [i for i, p in enumerate(getattr(train, "patients", ())) if p in wanted]
    return (train.images[keep], train.labels[keep]) if keep else None


def measure(ctx, options: dict, validation=None) -> dict:
    """Everything the part scores, as plain data. `validation`: (images, labels) of the student's own
    validation data, measured too so that a written answer's numbers can be checked."""
    files = {FP32: options.get("fp32", DEFAULT_FP32_FILE), **options["programs"]}
    positive = int(options.get("positive_class", 1))
    test = ctx.test_split
    result = {"programs": {}, "files": files}
    if validation is None and "validation" in options:
        try:
            validation = validation_data(ctx, options["validation"])
        except (OSError, ValueError) as exc:
            result["validation_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    modules = {}
    for name, filename in files.items():
        entry = result["programs"][name] = {"file": filename}
        try:
            program = ctx.program(filename)
            entry["size_bytes"] = ctx.file(filename).stat().st_size
            module = program.module()
            entry["test"] = _quality(_probabilities(module, test.images), test.labels, positive)
            if validation is not None:
                entry["val"] = _quality(_probabilities(module, validation[0]), validation[1], positive)
            modules[name] = module
        except FileNotFoundError:
            entry["error"] = f"no {filename} among the exported artifacts"
        except Exception as exc:   # refused as unsafe, or fails on the test images
            entry["error"] = f"{filename}: {type(exc).__name__}: {str(exc)[:200]}"
    try:
        program, size = _baseline(options["baseline"], ctx.profile, ctx.out)
        modules["reference_fp32"] = program.module()
        result["reference"] = {"size_bytes": size}
    except Exception as exc:   # course code: the grader's problem, not the student's
        result["grader_error"] = f"the reference model {options['baseline']} could not be built: {type(exc).__name__}: {exc}"
        return result
    latencies = _latencies(modules, test.images)
    result["reference"]["latency_s"] = latencies.pop("reference_fp32")
    for name, per in latencies.items():
        result["programs"][name]["latency_s"] = per
    return result


# ---- scorer side ------------------------------------------------------------------------------

def measures_of(measured: dict, name: str) -> dict:
    """The rubric's measures for one precision: lower is better for every one."""
    fp32, entry, ref = measured["programs"].get(FP32, {}), measured["programs"][name], measured["reference"]
    values = {}
    if "test" in entry and "test" in fp32:
        values["accuracy_drop"] = fp32["test"]["accuracy"] - entry["test"]["accuracy"]
        if entry["test"]["auc"] is not None and fp32["test"]["auc"] is not None:
            values["auc_drop"] = fp32["test"]["auc"] - entry["test"]["auc"]
    if "size_bytes" in entry:
        values["size_ratio"] = entry["size_bytes"] / ref["size_bytes"]
    if "latency_s" in entry:
        values["latency_b1_ratio"] = entry["latency_s"]["1"] / ref["latency_s"]["1"]
        values["latency_b32_ratio"] = entry["latency_s"]["32"] / ref["latency_s"]["32"]
    return values


def quotable(measured: dict) -> dict[str, float]:
    """What a written answer may quote: each program's validation accuracy and AUC, and their
    changes against fp32 (as drops, both signs)."""
    values = {}
    fp32 = measured["programs"].get(FP32, {}).get("val", {})
    for name, entry in measured["programs"].items():
        for metric, value in entry.get("val", {}).items():
            if value is None:
                continue
            values[f"{name} validation {metric}"] = value
            if name != FP32 and fp32.get(metric) is not None:
                values[f"{name} change of the validation {metric}"] = abs(value - fp32[metric])
    return values


def _band(bands, value: float) -> tuple[float, str]:
    for band in bands:
        if value <= band.bound:
            return band.points, f"at most {band.bound:g}"
    return 0.0, "beyond every band"


def _written(part: Part, data, measured: dict) -> tuple[float, str, dict]:
    from ..inquiry.checks import match_quotes
    from .score import _answer

    spec = part.options["written"]
    _, answer = _answer(Part(part.id, "reflection", part.title, 0, cell=spec["cell"]), data)
    values = quotable(measured)
    if not answer:
        return 0.0, "no written answer", {}
    if not values:
        return 0.0, "nothing was measured on your validation data to compare the answer with", {}
    ok, why = match_quotes(answer, values, float(spec.get("tolerance", QUOTE_TOLERANCE)),
                           none_quoted="the answer quotes no measured accuracy or AUC")
    return (float(spec["points"]) if ok else 0.0), why, {"quotable": values}


def score_efficiency(part: Part, data) -> PartResult:
    measured = (data.evaluation.get("efficiency") or {}).get(part.id)
    if not measured or "reference" not in measured or "latency_s" not in measured.get("reference", {}):
        why = (measured or {}).get("grader_error") or data.evaluation.get("error") or "the evaluator did not measure the exports"
        return PartResult(part.id, part.kind, part.title, 0.0, part.points, f"0 points: {why}",
                          needs_review=bool((measured or {}).get("grader_error")))
    points, lines, details = 0.0, [], {"programs": {}}
    measures = part.options["measures"]
    fp32_error = measured["programs"].get(FP32, {}).get("error")
    for name in part.options["programs"]:
        entry = measured["programs"][name]
        if entry.get("error") or fp32_error:
            lines.append(f"{name}: 0 points ({entry.get('error') or fp32_error})")
            continue
        values = measures_of(measured, name)
        got, said = 0.0, []
        for measure, spec in measures.items():
            if measure not in values:
                said.append(f"{measure} not measured")
                continue
            p, band = _band(spec["bands"][data.profile], values[measure])
            got += p
            said.append(f"{measure.replace('_', ' ')} {values[measure]:.3g} ({band}: {p:g}/{spec['points']:g})")
        points += got
        details["programs"][name] = values
        lines.append(f"{name}: " + ", ".join(said))
    if "written" in part.options:
        p, why, extra = _written(part, data, measured)
        points += p
        details.update(extra)
        lines.append(f"written answer {p:g}/{float(part.options['written']['points']):g}: {why}")
    ref = measured["reference"]
    details["reference"] = ref
    lines.append(f"reference fp32 on this runner: {ref['size_bytes']} bytes, "
                 f"{ref['latency_s']['1'] * 1000:.2f} ms at batch 1, {ref['latency_s']['32'] * 1000:.2f} ms at batch 32")
    return PartResult(part.id, part.kind, part.title, round(points, 2), part.points, "; ".join(lines), details=details)
