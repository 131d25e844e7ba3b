"""The experiment log an inquiry notebook exports, as plain data the grader can trust the shape of,
and the measured summary (means, seed spread, the change and its direction) the checks compare
the reflection with."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_RUNS = 40
MAX_TEXT = 4000
CONFIGS = ("baseline", "variant")


def _value(value):
    """A configuration value: a finite number, a bool or a short string (else None)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value if math.isfinite(float(value)) else None
    if isinstance(value, str):
        return value[:100]
    return None


def _config(raw) -> dict:
    if not isinstance(raw, dict):
        return {}
    values = {str(k)[:50]: _value(v) for k, v in list(raw.items())[:30]}
    return {k: v for k, v in values.items() if v is not None}


def _metrics(raw) -> dict:
    if not isinstance(raw, dict):
        return {}
    out = {}
    for key, value in list(raw.items())[:20]:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            out[str(key)[:50]] = float(value)
    return out


def plain_log(raw) -> dict:
    """{"baseline": {..}, "variant": {..}, "hypothesis": str, "runs": [{"config", "seed", "metrics"}]}:
    only what a log can hold (the notebook wrote it; nothing in it is executed or trusted further)."""
    if not isinstance(raw, dict):
        return {}
    runs = []
    for run in (raw.get("runs") or [])[:MAX_RUNS] if isinstance(raw.get("runs"), list) else []:
        if isinstance(run, dict) and run.get("config") in CONFIGS and isinstance(run.get("seed"), int):
            runs.append({"config": run["config"], "seed": int(run["seed"]), "metrics": _metrics(run.get("metrics"))})
    hypothesis = raw.get("hypothesis")
    return {"baseline": _config(raw.get("baseline")), "variant": _config(raw.get("variant")),
            "hypothesis": hypothesis[:MAX_TEXT] if isinstance(hypothesis, str) else "", "runs": runs}


@dataclass(frozen=True)
class Measured:
    """One metric over the logged runs of both configurations."""
    metric: str
    baseline: tuple[float, ...]
    variant: tuple[float, ...]
    noise_floor: float          # below this, a difference is no evidence (the tolerance)

    @property
    def ok(self) -> bool:
        return bool(self.baseline and self.variant)

    @staticmethod
    def _mean(values) -> float:
        return sum(values) / len(values)

    @property
    def baseline_mean(self) -> float:
        return self._mean(self.baseline)

    @property
    def variant_mean(self) -> float:
        return self._mean(self.variant)

    @property
    def change(self) -> float:
        return self.variant_mean - self.baseline_mean

    @property
    def spread(self) -> float:
        """Run-to-run variation: the widest range between seeds of one configuration."""
        return max(max(v) - min(v) for v in (self.baseline, self.variant))

    @property
    def direction(self) -> str:
        """up / down when the change exceeds the seed spread (and the tolerance), else unclear."""
        margin = max(self.spread, self.noise_floor)
        if self.change > margin:
            return "up"
        if self.change < -margin:
            return "down"
        return "unclear"

    def quotable(self) -> dict[str, float]:
        """Every value a reflection may honestly quote for this metric, by description."""
        values = {f"baseline seed {i} {self.metric}": v for i, v in enumerate(self.baseline)}
        values.update({f"variant seed {i} {self.metric}": v for i, v in enumerate(self.variant)})
        values.update({f"baseline mean {self.metric}": self.baseline_mean, f"variant mean {self.metric}": self.variant_mean,
                       f"change of the mean {self.metric}": abs(self.change), f"{self.metric} seed spread": self.spread})
        for name, runs in (("baseline", self.baseline), ("variant", self.variant)):
            values[f"{name} {self.metric} seed spread"] = max(runs) - min(runs)
        return values


def measured(log: dict, metric: str, tolerance: float) -> Measured:
    runs = log.get("runs", [])
    pick = lambda config: tuple(r["metrics"][metric] for r in runs  # noqa: E731
                                if r["config"] == config and metric in r["metrics"])
    return Measured(metric, pick("baseline"), pick("variant"), tolerance)


def all_quotable(log: dict, tolerance: float) -> dict[str, float]:
    """Quotable values of every logged metric (students may also cite accuracy or recall)."""
    names = sorted({m for r in log.get("runs", []) for m in r["metrics"]})
    values: dict[str, float] = {}
    for name in names:
        m = measured(log, name, tolerance)
        if m.ok:
            values.update(m.quotable())
    return values
