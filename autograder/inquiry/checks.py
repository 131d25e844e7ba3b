"""The inquiry loop's checks: from the logged experiment and the written reflection to points with
one line of explanation each. Plain data in (the rubric's `inquiry:` block, the experiment log,
the reflection text), plain data out."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass

from . import text as tx
from .log import Measured, all_quotable, measured

DEFAULT_TOLERANCE = 0.01
CHECK_TITLES = {
    "one_variable": "exactly one variable differs from the baseline",
    "names_variable": "the reflection names the variable with its old and new values",
    "states_hypothesis": "a hypothesis with a direction was stated",
    "numbers_match": "the numbers quoted match the measured results",
    "direction_matches": "the claimed direction of change matches the measured one",
    "mechanism": "the reasoning names a plausible mechanism",
    "variance": "run-to-run variance is acknowledged",
    "better_config": "the configuration called better is the one measured better",
}


@dataclass
class Check:
    name: str
    title: str
    passed: bool
    points: float
    max_points: float
    explanation: str


@dataclass
class InquiryGrade:
    checks: list[Check]
    flags: list[str]

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)

    def to_dicts(self) -> list[dict]:
        return [asdict(c) for c in self.checks]


def _show(value) -> str:
    return "on" if value is True else "off" if value is False else f"{value:g}" if isinstance(value, float) else str(value)


def changes(baseline: dict, variant: dict) -> dict[str, tuple]:
    """variable -> (baseline value, variant value) for every variable that differs."""
    keys = list(dict.fromkeys([*baseline, *variant]))
    return {k: (baseline.get(k), variant.get(k)) for k in keys if baseline.get(k) != variant.get(k)}


def _names(spec: dict, variable: str) -> list[str]:
    entry = spec["variables"].get(variable, {})
    return [*entry.get("names", []), variable.replace("_", " "), variable]


def _anchor(words: list[str]) -> re.Pattern:
    return tx.pattern([re.escape(w).replace(r"\ ", r"[\s_-]+") for w in words if w])


# ---- the checks ---------------------------------------------------------------------------------

def check_one_variable(official: dict, log: dict, changed: dict) -> tuple[bool, str]:
    if not log.get("variant"):
        return False, "no experiment was logged (the run did not finish, or the log was not exported)"
    moved = changes(official, log.get("baseline", {}))
    if moved:
        what = ", ".join(f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in moved.items())
        return False, f"the baseline run itself was changed ({what}): the comparison is not with the course's baseline"
    if not changed:
        return False, "the variant is identical to the baseline: nothing was changed"
    listed = ", ".join(f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in changed.items())
    if len(changed) > 1:
        return False, (f"{len(changed)} variables changed ({listed}): the difference cannot be attributed to any "
                       "one of them")
    return True, f"changed {listed}; everything else as in the baseline"


def check_names_variable(spec, reflection: str, changed: dict) -> tuple[bool, str]:
    if not changed:
        return False, "no variable was changed, so none can be named"
    missing = []
    for variable, (old, new) in changed.items():
        if not _anchor(_names(spec, variable)).search(reflection):
            missing.append(f"the variable ({' / '.join(_names(spec, variable)[:2])})")
        for label, value in (("its baseline value", old), ("its new value", new)):
            if value is not None and not tx.mentions_value(reflection, value):
                missing.append(f"{label} {_show(value)} for {variable}")
    if missing:
        return False, "the reflection does not give " + "; ".join(missing)
    return True, "names " + ", ".join(f"{k} ({_show(a)} -> {_show(b)})" for k, (a, b) in changed.items())


def check_hypothesis(log: dict, reflection: str, metric: str, others: re.Pattern) -> tuple[bool, str]:
    """The logged hypothesis (or a hypothesis sentence of the reflection) predicts a direction
    for an outcome: "a larger learning rate will lower the macro-F1", "... has no effect on ..."."""
    outcome = tx.pattern([*tx.METRIC_WORDS.get(metric, []), *tx.HYPOTHESIS_OUTCOMES])
    stated = [log.get("hypothesis", "")] + [s for s in tx.sentences(reflection)
                                            if re.search(r"\b(?:hypothes\w*|expect\w*|predict\w*)", s, re.I)]
    for sentence in (s for text in stated for s in tx.sentences(text)):
        neutral = tx.PREDICTION.sub("", sentence)
        claims = tx.claimed_direction(neutral, outcome, others)
        if claims:
            direction = claims[0][0]
            word = {"up": "go up", "down": "go down", "unclear": "stay the same"}[direction]
            return True, f"predicts that the outcome will {word}: \"{sentence[:160]}\""
    if any(s.strip() for s in stated):
        return False, ("the hypothesis does not say in which direction the result should move "
                       "(e.g. \"a larger learning rate will lower the macro-F1\")")
    return False, "no hypothesis was stated"


def check_numbers(reflection: str, log: dict, config_values: list, tolerance: float) -> tuple[bool, str]:
    quotable = all_quotable(log, tolerance)
    if not quotable:
        return False, "no measured results were logged to compare with"
    return match_quotes(reflection, quotable, tolerance, config_values,
                        "the reflection quotes no measured value (give the metric of each configuration)", "run")


def match_quotes(text: str, quotable: dict[str, float], tolerance: float, exclude: list = (),
                 none_quoted: str = "no measured value is quoted", noun: str = "measurement") -> tuple[bool, str]:
    """Every metric-like number quoted in `text` (a fraction such as 0.86, or a percentage) is one of
    the `quotable` measured values, within `tolerance` plus two-decimal rounding. Numbers equal to a
    value in `exclude` (a configuration's own settings) are not quotes of a result."""
    quotes = [q for q in tx.numbers(text) if tx.metric_like(q)
              and not any(not q.percent and isinstance(v, (int, float)) and not isinstance(v, bool)
                          and tx.same_number(q.value, float(v)) for v in exclude)]
    if not quotes:
        return False, none_quoted
    slack = tolerance + 0.005   # two-decimal rounding
    matched, unmatched = [], []
    for q in quotes:
        name, value = min(quotable.items(), key=lambda kv: abs(kv[1] - q.value))
        (matched if abs(value - q.value) <= slack else unmatched).append((q.text, name, value))
    if unmatched:
        wrong = "; ".join(f"{t} (nearest measured: {n} = {v:.3f})" for t, n, v in unmatched[:4])
        return False, f"{len(unmatched)} of {len(quotes)} quoted values match no {noun}: {wrong}"
    return True, f"every quoted value matches a {noun}: " + "; ".join(f"{t} = {n}" for t, n, _ in matched[:4])


def check_direction(reflection: str, m: Measured, outcome: re.Pattern, others: re.Pattern,
                    acknowledges_variance: bool) -> tuple[bool, str]:
    if not m.ok:
        return False, f"no logged {m.metric} for both configurations"
    measured_text = (f"measured {m.metric}: baseline {m.baseline_mean:.3f}, variant {m.variant_mean:.3f} "
                     f"(change {m.change:+.3f}, seed spread {m.spread:.3f})")
    claims = tx.claimed_direction(reflection, outcome, others)
    if not claims:
        return False, f"the reflection does not say how {m.metric} changed; {measured_text}"
    counts = Counter(d for d, _ in claims)
    claimed = counts.most_common(1)[0][0] if len(counts) == 1 or counts.most_common(2)[0][1] > counts.most_common(2)[1][1] else "mixed"
    if claimed == "mixed":
        return False, f"the reflection claims both directions ({dict(counts)}); {measured_text}"
    if claimed == m.direction:
        return True, f"claims {claimed}, and {measured_text}"
    if m.direction == "unclear" and claimed == ("up" if m.change > 0 else "down") and acknowledges_variance:
        return True, f"claims {claimed}, the change is within the seed spread and the reflection says so; {measured_text}"
    if m.direction == "unclear":
        return False, (f"claims {claimed}, but the change is within the run-to-run spread, so the runs do not "
                       f"show a clear direction; {measured_text}")
    return False, f"claims {claimed}, but {m.metric} went {m.direction}; {measured_text}"


def check_mechanism(spec, reflection: str, changed: dict) -> tuple[bool, str]:
    from ..reflection.concepts import match_concepts, split_sentences
    from ..reflection.scorer import credit

    phrasings = [p for k in changed for p in spec["variables"].get(k, {}).get("mechanisms", [])]
    if not phrasings:
        return False, "no known mechanism for the changed variable(s): an instructor will judge the reasoning"
    sentences = split_sentences(reflection)
    if not sentences:
        return False, "no reasoning was written"
    best = match_concepts(sentences, [("mechanism", phrasings)], "")[0]
    if credit(best.strength) >= 0.5:
        return True, f"explains why: \"{best.sentence[:160]}\""
    return False, ("no sentence explains why the change should matter (e.g. " + "; ".join(phrasings[:2]) + ")")


def check_variance(reflection: str) -> tuple[bool, str]:
    hit = next((s for s in tx.sentences(reflection) if tx.VARIANCE.search(s)), None)
    if hit:
        return True, f"acknowledges run-to-run variation: \"{hit[:160]}\""
    return False, "does not acknowledge run-to-run variance (seeds, noise, repeated runs)"


BETTER = re.compile(r"\b(?:better|best|outperform\w*|higher|superior|stronger|beats?|wins?|ahead)\b", re.I)
WORSE = re.compile(r"\b(?:worse|lower|weaker|underperform\w*|loses?|behind)\b", re.I)


def _name_pattern(value) -> re.Pattern:
    """A configuration's name however it is spelled: U-Net, UNet, u net."""
    letters = [re.escape(ch) for ch in re.sub(r"[\s_-]+", "", str(value))]
    return re.compile(r"(?<![\w])" + r"[\s_-]?".join(letters), re.I)


def check_better(reflection: str, changed: dict, m: Measured) -> tuple[bool, str]:
    """For a comparison of two named configurations (e.g. architecture: U-Net vs ResNet): the
    one the reflection calls better (the name right before "better", "outperforms", "higher" ...;
    before "worse" or "lower", the other one) must be the one with the higher mean metric, unless
    the difference is within the seed spread and the tolerance."""
    if len(changed) != 1 or not m.ok:
        return False, "there is no single pair of configurations with measured results to compare"
    old, new = next(iter(changed.values()))
    names = {old: _name_pattern(old), new: _name_pattern(new)}
    margin = max(m.spread, m.noise_floor)
    measured_text = (f"measured {m.metric}: {old} {m.baseline_mean:.3f}, {new} {m.variant_mean:.3f}")
    winner = None if abs(m.change) <= margin else new if m.change > 0 else old
    claims = []
    for sentence in tx.sentences(reflection):
        if tx.PREDICTION.search(sentence):
            continue
        for cue, says_better in ((BETTER, True), (WORSE, False)):
            for hit in cue.finditer(sentence):
                before = [(match.start(), name) for name, p in names.items() for match in p.finditer(sentence[:hit.start()])]
                if before:
                    subject = max(before, key=lambda b: b[0])[1]
                    claims.append(subject if says_better else (new if subject == old else old))
    if not claims:
        return False, f"the reflection does not say which of {old} and {new} did better; {measured_text}"
    claimed = Counter(claims).most_common(1)[0][0]
    if winner is None:
        return True, f"the two are within the noise ({measured_text}), so either verdict stands"
    if claimed == winner:
        return True, f"calls {claimed} better, and {measured_text}"
    return False, f"calls {claimed} better, but {measured_text}"


# ---- all together ---------------------------------------------------------------------------------

def grade_inquiry(spec: dict, profile: str, log: dict, reflection: str, exported: dict | None = None) -> InquiryGrade:
    """spec: the rubric part's `inquiry:` block; log: inquiry.log.plain_log(...) of the export;
    exported: the evaluator's metrics of the exported variant model on the validation split."""
    tolerance = float(spec.get("tolerance", DEFAULT_TOLERANCE))
    official = spec["baseline"].get(profile, {})
    changed = changes(official, log.get("variant", {})) if log.get("variant") else {}
    metric = spec["metric"]
    outcome = _anchor_outcome(metric)
    others = _anchor([n for k in spec["variables"] for n in _names(spec, k)])
    m = measured(log, metric, tolerance)
    config_values = [*log.get("baseline", {}).values(), *log.get("variant", {}).values(), *official.values()]
    variance_ok, variance_why = check_variance(reflection)
    results = {
        "one_variable": check_one_variable(official, log, changed),
        "names_variable": check_names_variable(spec, reflection, changed),
        "states_hypothesis": check_hypothesis(log, reflection, metric, others),
        "numbers_match": check_numbers(reflection, log, config_values, tolerance),
        "direction_matches": check_direction(reflection, m, outcome, others, variance_ok),
        "mechanism": check_mechanism(spec, reflection, changed) if changed else (False, "nothing was changed"),
        "variance": (variance_ok, variance_why),
        "better_config": check_better(reflection, changed, m),
    }
    checks = [Check(name, CHECK_TITLES[name], ok, float(points) if ok else 0.0, float(points), why)
              for name, points in spec["checks"].items() for ok, why in [results[name]]]
    return InquiryGrade(checks, _log_flags(log, m, exported, tolerance))


def _anchor_outcome(metric: str) -> re.Pattern:
    return tx.pattern([*tx.METRIC_WORDS.get(metric, [re.escape(metric.replace("_", " "))]), *tx.OUTCOME_WORDS])


def _log_flags(log: dict, m: Measured, exported: dict | None, tolerance: float) -> list[str]:
    """The log is written by the student's kernel: the exported model is measured again by the
    evaluator, and a log that disagrees with it goes to a human."""
    if not exported or m.metric not in exported or not m.variant:
        return []
    value = float(exported[m.metric])
    if min(abs(value - v) for v in m.variant) > tolerance + 0.005:
        return [f"the exported model's validation {m.metric} is {value:.3f}, but no logged variant run has it "
                f"({', '.join(f'{v:.3f}' for v in m.variant)}): the log may not belong to this model"]
    return []
