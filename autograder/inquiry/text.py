"""What a written reflection says, read with plain patterns: the numbers it quotes, whether it
mentions a configuration value, and which direction of change it claims for a metric.

Patterns rather than a model because every judgement must be explainable in one line of feedback
("you quoted 0.91; no run measured that"), and a teacher can read the rules below."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = re.compile(
    r"(?<![\w.])(?P<num>[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"(?P<unit>\s*(?:%|percent(?:age points?)?\b|pp\b|points?\b))?")
_WORD = re.compile(r"[A-Za-z][\w-]*|\d[\w.%-]*")

UP = r"improv\w*|increas\w*|higher|rose|rise[sn]?|rising|better|gain\w*|boost\w*|went up|raised|grew|climb\w*"
DOWN = (r"decreas\w*|lower(?:ed)?|drop\w*|fell|fall\w*|worse|hurt\w*|degrad\w*|reduc\w*|declin\w*|went down|"
        r"collaps\w*|dipped|sank|shrank|suffer\w*")
NO_CHANGE = (r"no (?:clear |real |significant |measurable |consistent |meaningful )?(?:change|difference|effect|"
             r"improvement)|within (?:the )?(?:noise|seed spread|spread|variance|run-to-run)|inconclusive|"
             r"not (?:significant|conclusive)|about the same|roughly (?:the )?same|unchanged|did not change")
_CUES = [(re.compile(rf"\b(?:{UP})", re.I), "up"), (re.compile(rf"\b(?:{DOWN})", re.I), "down")]
_NO_CHANGE = re.compile(rf"\b(?:{NO_CHANGE})", re.I)
# sentences that predict rather than report
# sentences that predict rather than report ("as I expected" reports)
PREDICTION = re.compile(r"\b(?:(?:I|we) (?:expect|predict|hypothesi[sz]e|think|believe|assume)|hypothesis is|"
                         r"my hypothesis|will|would|should|might|going to)\b", re.I)
VARIANCE = re.compile(
    r"\bseeds?\b|run[- ]to[- ]run|\bvarian\w*|variabilit\w*|\bnois\w*|\bspread\b|standard deviation|\bstd\b|"
    r"random (?:initiali[sz]ation|init)|\brepeat\w*|more runs|single run|one run|(?:two|2|few|more) (?:runs|seeds)|"
    r"by chance|fluctuat\w*|confidence interval|statistic\w*", re.I)
# how outcomes are named when no metric name is given; a hypothesis may also be about the training itself
OUTCOME_WORDS = ["scores?", "performance", "results?"]
HYPOTHESIS_OUTCOMES = [*OUTCOME_WORDS, "accuracy", "recall", "loss", "overfitting", r"generali[sz]\w*", "validation",
                       "stability", "convergence", "minority class(?:es)?"]
METRIC_WORDS = {
    "macro_f1": ["macro[- ]?f1", "f1[- ]?scores?", "f1"],
    "accuracy": ["accuracy", "accuracies"],
    "min_recall": ["recall", "minority[- ]class recall", "sensitivity"],
}


@dataclass(frozen=True)
class Quote:
    text: str
    value: float          # as a fraction when quoted as a percentage
    percent: bool
    start: int


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(])|\n\s*\n|\n\s*[-*]\s+", text.strip())
    return [p.strip() for p in parts if p.strip()]


def numbers(text: str) -> list[Quote]:
    quotes = []
    for m in _NUMBER.finditer(text):
        try:
            value = float(m["num"])
        except ValueError:
            continue
        percent = bool(m["unit"])
        quotes.append(Quote(m.group(0).strip(), value / 100 if percent else value, percent, m.start()))
    return quotes


def metric_like(quote: Quote) -> bool:
    """A number that reads as a metric value: a percentage, or a decimal fraction like 0.86."""
    return quote.percent or ("." in quote.text and 0 <= quote.value <= 1 and "e" not in quote.text.lower())


def same_number(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


_ON = re.compile(r"\b(?:on|with|enabled?|true|yes|added|adding|using|turned on|switched on)\b", re.I)
_OFF = re.compile(r"\b(?:off|without|disabled?|false|no|none|removed|removing|turned off|switched off|dropped)\b", re.I)


def mentions_value(text: str, value) -> bool:
    if isinstance(value, bool):
        return bool((_ON if value else _OFF).search(text))
    if isinstance(value, (int, float)):
        return any(not q.percent and same_number(q.value, float(value)) for q in numbers(text))
    needle = str(value).lower()
    return needle in text.lower() or needle.replace("_", " ") in text.lower()


def pattern(words: list[str]) -> re.Pattern:
    return re.compile(r"(?<![\w-])(?:" + "|".join(words) + r")(?![\w-])", re.I)


def _word_index(text: str, char: int) -> int:
    return len(_WORD.findall(text[:char]))


def _spans(regex: re.Pattern, sentence: str) -> list[tuple[int, int]]:
    """(first word, last word) indices of every match."""
    if not regex.pattern:
        return []
    return [(_word_index(sentence, m.start()), max(_word_index(sentence, m.end()) - 1, _word_index(sentence, m.start())))
            for m in regex.finditer(sentence)]


def _next_to(at: int, spans: list[tuple[int, int]], before: int, after: int) -> bool:
    """Whether a span starts within `after` words after `at` or ends within `before` words before it."""
    return any(0 < first - at <= after or 0 <= at - last <= before for first, last in spans)


def claimed_direction(text: str, metric_names: re.Pattern, other_anchors: re.Pattern, window: int = 8) -> list[tuple[str, str]]:
    """(direction, sentence) claims the reflection makes about the metric: a direction word near
    the metric's name that does not qualify a variable instead ("a lower learning rate"), a "from X
    to Y" with two metric values after the metric's name, or a statement of no clear change.
    Predictions (expect, hypothesis, would) are not claims about what was measured."""
    claims = []
    for sentence in sentences(text):
        if PREDICTION.search(sentence):
            continue
        metric = _spans(metric_names, sentence)
        if not metric:
            continue
        if _NO_CHANGE.search(sentence):
            claims.append(("unclear", sentence))
            continue
        others = _spans(other_anchors, sentence)
        for cue, direction in _CUES:
            for m in cue.finditer(sentence):
                at = _word_index(sentence, m.start())
                near = min(min(abs(at - a), abs(at - b)) for a, b in metric) <= window
                if near and (_next_to(at, metric, 3, 3) or not _next_to(at, others, 2, 3)):
                    claims.append((direction, sentence))
        for span in re.finditer(r"from\s+(\S+)\s+(?:to|up to|down to)\s+(\S+)", sentence, re.I):
            at = _word_index(sentence, span.start())
            metric_before = max((a for a, _ in metric if a <= at), default=None)
            other_before = max((a for a, _ in others if a <= at), default=-1)
            ends = [numbers(span[1]), numbers(span[2])]
            if metric_before is None or other_before > metric_before or not all(ends):
                continue
            if all(metric_like(e[0]) for e in ends) and ends[0][0].value != ends[1][0].value:
                claims.append(("up" if ends[1][0].value > ends[0][0].value else "down", sentence))
    return claims
