"""Evaluator checks: named, per-assignment inspections of exported artifacts, run in the
trusted evaluator process. A rubric `artifact` part names one with `check:`.

A check is `fn(ctx: EvalContext, options: dict) -> CheckResult`. Modules in this package
register themselves on import; every module here is imported when the registry is first used.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import asdict, dataclass, field
from typing import Callable

from .context import EvalContext

_CHECKS: dict[str, Callable[[EvalContext, dict], "CheckResult"]] = {}


@dataclass
class CheckResult:
    score: float                 # fraction of the part's points, 0..1
    explanation: str
    needs_review: bool = False
    figures: dict = field(default_factory=dict)   # name -> PNG path (shown in the feedback)
    details: dict = field(default_factory=dict)
    grader_error: str | None = None   # the grader's own side failed (the whole result becomes grader_error)


def register(name: str):
    def decorate(fn):
        _CHECKS[name] = fn
        return fn
    return decorate


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "context":
            importlib.import_module(f"{__name__}.{module.name}")


def names() -> list[str]:
    _load_all()
    return sorted(_CHECKS)


def run_check(name: str, ctx: EvalContext, options: dict) -> dict:
    """Never raises: a check that fails on a broken artifact yields zero with the reason."""
    _load_all()
    if name not in _CHECKS:
        return asdict(CheckResult(0.0, f"unknown check {name!r} (known: {', '.join(sorted(_CHECKS))})", True))
    try:
        result = _CHECKS[name](ctx, options)
        result.score = min(1.0, max(0.0, float(result.score)))
        return asdict(result)
    except Exception as exc:
        return asdict(CheckResult(0.0, f"could not check: {type(exc).__name__}: {str(exc)[:200]}"))
