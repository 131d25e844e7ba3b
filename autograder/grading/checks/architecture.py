"""`graph_architecture`: an architecture graded by what its exported graph contains (any assignment).

Options (values may be given per profile, `{tiny: ..., full: ...}`):
  program:  the exported file among the artifacts (default model.pt2)
  require:  property -> threshold or true, see grading/graph_checks.py PROPERTIES, e.g.
            {skip_concatenations: 2, bottleneck: true, global_pool_before_linear: true,
             parameter_budget: 60000, two_sizes: true}
  sizes:    the two input sizes [[h, w], [h, w]] the shapes are evaluated and the model is run at
  channels: input channels (default 1)
  label:    how the feedback names the model (default: the program's name)
Score: the share of required properties found; each missing one is one plain sentence.
"""

from __future__ import annotations

from dataclasses import asdict

from ..graph_checks import DEFAULT_SIZES, check_architecture
from . import CheckResult, register
from .context import EvalContext


def per_profile(value, profile: str):
    return value.get(profile) if isinstance(value, dict) and set(value) <= {"tiny", "full"} else value


@register("graph_architecture")
def graph_architecture(ctx: EvalContext, options: dict) -> CheckResult:
    filename = options.get("program", "model.pt2")
    label = options.get("label", filename.removesuffix(".pt2"))
    require = {k: per_profile(v, ctx.profile) for k, v in (options.get("require") or {}).items()}
    sizes = tuple(tuple(s) for s in per_profile(options.get("sizes"), ctx.profile) or DEFAULT_SIZES)
    try:
        program = ctx.program(filename)
    except FileNotFoundError:
        return CheckResult(0.0, f"{label}: no exported {filename}: the export cell did not run or failed")
    findings = check_architecture(program, require, sizes, int(options.get("channels", 1)))
    passed = [f for f in findings if f.passed]
    failed = [f for f in findings if not f.passed]
    text = f"{label}: {len(passed)} of {len(findings)} architecture properties found in the exported graph"
    if failed:
        text += ". " + " ".join(f.sentence for f in failed)
    return CheckResult(len(passed) / max(len(findings), 1), text,
                       details={"findings": [asdict(f) for f in findings]})
