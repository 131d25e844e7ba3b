"""Suggested scores for written answers, with reasons, a confidence and gaming flags.

analyze() turns an answer into evidence: which criterion/misconception which sentence
expresses, similarities to the reference answers, word overlap, length and gaming flags.
raw_score() combines the evidence into 0..1; a Calibration maps that to a share of the points.
Flags ask for a human without rewriting the points (only the near-certain `empty` sets 0, and
needs no human); so does low confidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import gaming
from .calibration import EXEMPLAR_COSINE_MIN, Calibration, exemplar_features
from .concepts import (
    LEX_MIN,
    ConceptMatch,
    STOP_WORDS,
    clauses,
    concept_texts,
    content_stems,
    match_concepts,
    negation_parity,
    question_stems,
    split_sentences,
    stem,
    strip_question,
    tokens,
)
from .embedding import EMBEDDING_DIM, EmbedFn, cosine, embed
from .spec import ReflectionSpec

__all__ = [
    "FEATURE_NAMES",
    "Analysis",
    "Suggestion",
    "analysis_texts",
    "analyze",
    "course_embedder",
    "credit",
    "embedder_for",
    "raw_score",
    "raw_score_of",
    "suggest",
    "suggest_many",
    "suggestion_for",
    "table_embedder",
]

# Concept strength -> credit: below LO nothing, above HI full credit.
CREDIT_LO, CREDIT_HI = 0.4, 0.75
# Default mix of the raw score: rubric criteria dominate, the reference answer adds a little.
CRITERIA_WEIGHT, REFERENCE_WEIGHT = 0.8, 0.2
# Criteria derived from the reference are the reference read sentence by sentence: the two
# are the same evidence measured two ways, so they weigh the same.
DERIVED_CRITERIA_WEIGHT = 0.5
# Reference similarity (mean of plain and question-stripped cosine) mapped to 0..1.
REF_SIM_LO, REF_SIM_HI = 0.3, 0.75
# Below this confidence a human should look.
REVIEW_BELOW = 0.6
# A share this far (in grading steps) from the nearest grade is free; beyond it, confidence
# drops steeply: half-way between two grades is a coin toss.
BETWEEN_STEPS_FREE, BETWEEN_STEPS_WEIGHT = 0.2, 1.6
# Confidence lost for criteria half-met, and for criteria met only by meaning.
AMBIGUITY_WEIGHT, MEANING_WEIGHT = 0.4, 0.15


@dataclass
class Suggestion:
    points: float
    max_points: float
    confidence: float  # 0..1
    needs_review: bool
    reasons: list[str]  # human-readable: criteria met (by which sentence), missing, flags
    flags: list[str]  # gaming/copy flags: question_pasted, keyword_list, padding, ...
    criteria_met: dict[str, str]  # criterion name -> the sentence that met it
    raw: float = 0.0  # the evidence score, 0..1, before calibration
    share_before_caps: float = 0.0  # calibrated share of the points before any flag cap


@dataclass
class Analysis:
    """Everything the scorer found in one answer (before any calibration)."""

    answer: str
    sentences: list[str]
    scored_sentences: list[str]  # without sentences restating the question (unless all do)
    criteria: list[ConceptMatch]
    misconceptions: list[ConceptMatch]
    features: dict[str, float]
    flags: list[str] = field(default_factory=list)


def credit(strength: float) -> float:
    """Share of a criterion's points earned for a match of this strength."""
    return float(np.clip((strength - CREDIT_LO) / (CREDIT_HI - CREDIT_LO), 0.0, 1.0))


def strip_question_words(text: str, question: str) -> str:
    """The text without the words that repeat the question (for question-free similarity)."""
    return strip_question(text, question_stems(question))


def _content_words(text: str, q_stems: frozenset[str]) -> list[str]:
    words = (t for t in tokens(text) if t not in STOP_WORDS and len(t) > 1)
    return sorted({t for t in words if stem(t) not in q_stems})


def analysis_texts(answer: str, spec: ReflectionSpec) -> list[str]:
    """Every text analyze() embeds, so a caller can embed many answers in a few big batches."""
    q_stems = question_stems(spec.question)
    sentences = split_sentences(answer)
    joined = " ".join(sentences)  # the scored text when no sentence restates the question
    texts = [spec.question, answer, joined, strip_question_words(joined, spec.question), *sentences]
    texts += [p for c in spec.criteria for p in c.phrasings]
    for ref in spec.reference_answers:
        texts += [ref, strip_question_words(ref, spec.question), *_content_words(ref, q_stems)]
    texts += _content_words(answer, q_stems)
    concepts = [(c.name, c.phrasings) for c in (*spec.criteria, *spec.misconceptions)]
    texts += concept_texts(sentences, concepts, spec.question)
    return [t for t in dict.fromkeys(texts) if t]


def table_embedder(texts: Sequence[str], embed_fn: EmbedFn = embed) -> EmbedFn:
    """Embed texts in one batch now and serve later requests from that table.

    Texts not in the table are embedded on demand (and kept). Lives as long as the returned
    function: one answer's or one batch's worth (`embed` itself keeps a bounded process-wide cache).
    """
    unique = list(dict.fromkeys(t for t in texts if t))
    table = dict(zip(unique, embed_fn(unique))) if unique else {}

    def lookup(batch: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(batch) if t not in table]
        if missing:
            table.update(zip(missing, embed_fn(missing)))
        if not batch:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return np.stack([table[t] for t in batch])

    return lookup


def embedder_for(
    answers: Iterable[str], spec: ReflectionSpec, calibration: Calibration | None = None,
    embed_fn: EmbedFn = embed,
) -> EmbedFn:
    """A table embedder holding every text that scoring these answers will need."""
    texts = [t for a in answers for t in analysis_texts(a or "", spec)]
    if calibration is not None:
        texts += [text for text, _ in calibration.exemplars]
    return table_embedder(texts, embed_fn)


def analyze(answer: str, spec: ReflectionSpec, embed_fn: EmbedFn = embed) -> Analysis:
    """Evidence, features and gaming flags for one answer."""
    answer = answer or ""
    sentences = split_sentences(answer)
    if gaming.is_empty(answer) or not sentences:
        return Analysis(answer, sentences, [], [], [], _empty_features(), ["empty"])
    vec = table_embedder(analysis_texts(answer, spec), embed_fn)
    sentence_vecs = vec(sentences)
    restating = gaming.question_sentences(
        sentences, spec.question, cosine(sentence_vecs, vec([spec.question]))[:, 0]
    )
    # Restating the question before answering earns nothing but costs nothing; an answer
    # that only restates it is analysed as it is, flagged, and has no evidence (raw 0): its
    # likeness to a reference that restates the question is the question's, not the student's.
    scored = [s for i, s in enumerate(sentences) if i not in restating] or sentences
    flags = _flags(answer, sentences, restating, spec, vec, sentence_vecs)
    criteria = match_concepts(
        scored, [(c.name, c.phrasings, c.ordered) for c in spec.criteria], spec.question, vec
    )
    misconceptions = match_concepts(
        scored, [(m.name, m.phrasings) for m in spec.misconceptions], spec.question, vec, strict=True
    )
    # A concept both asserted and negated ("weights are shared" ... "weights are not shared").
    conflicts = [
        m.name for m in (*criteria, *misconceptions) if m.negated_sentence and credit(m.strength) >= 0.5
    ]
    units = [(i, u) for i, s in enumerate(sentences) for u in clauses(s)]
    unit_vecs = vec([u for _, u in units])
    if gaming.has_contradiction(sentences, cosine(unit_vecs, unit_vecs), conflicts, units):
        flags.append("contradiction")
    features = _features(" ".join(scored), spec, criteria, misconceptions, vec)
    features["restated_only"] = float(
        len(restating) == len(sentences) or gaming.restates_question(answer, spec.question)
    )
    return Analysis(answer, sentences, scored, criteria, misconceptions, features, flags)


def _flags(answer, sentences, restating, spec, vec, sentence_vecs) -> list[str]:
    flags = []
    if gaming.is_question_pasted(answer, spec.question, sentences, restating):
        flags.append("question_pasted")
    topic = [spec.question, *spec.reference_answers, *(p for c in spec.criteria for p in c.phrasings)]
    if gaming.is_keyword_list(answer, frozenset(content_stems(" ".join(topic)))):
        flags.append("keyword_list")
    relevance = cosine(sentence_vecs, vec(topic)).max(axis=1)
    if gaming.is_padding(sentences, spec.expected_words, relevance):
        flags.append("padding")
    cos_refs = cosine(vec([answer]), vec(list(spec.reference_answers)))[0]
    if gaming.is_reference_copy(answer, spec.reference_answers, cos_refs):
        flags.append("reference_copy")
    return flags


FEATURE_NAMES = (
    "criteria",
    "penalty",
    "ref_cos",
    "ref_cos_stripped",
    "ref_cos_answer_stripped",
    "question_cos",
    "ref_recall",
    "ref_precision",
    "soft_recall",
    "soft_precision",
    "log_words",
    "negation_mismatch",
)


def _empty_features() -> dict[str, float]:
    return {**dict.fromkeys(FEATURE_NAMES, 0.0), "criteria_weight": CRITERIA_WEIGHT}


def _features(
    text: str,
    spec: ReflectionSpec,
    criteria: list[ConceptMatch],
    misconceptions: list[ConceptMatch],
    vec: EmbedFn,
) -> dict[str, float]:
    q_stems = question_stems(spec.question)
    refs = list(spec.reference_answers)
    stripped = strip_question_words(text, spec.question)
    stripped_refs = [strip_question_words(r, spec.question) for r in refs]
    answer_vec, stripped_vec = vec([text]), vec([stripped or text])
    ref_vecs, stripped_ref_vecs = vec(refs), vec([s or r for s, r in zip(stripped_refs, refs)])
    f = {
        "criteria": _criteria_share(criteria, spec),
        "penalty": sum(m.penalty * credit(x.strength) for m, x in zip(spec.misconceptions, misconceptions))
        / spec.points,
        "ref_cos": float(cosine(answer_vec, ref_vecs).max()),
        "ref_cos_stripped": float(cosine(stripped_vec, stripped_ref_vecs).max()),
        "ref_cos_answer_stripped": float(cosine(stripped_vec, ref_vecs).max()),
        "question_cos": float(cosine(answer_vec, vec([spec.question]))[0, 0]),
        "log_words": math.log1p(len(tokens(text))),
        "negation_mismatch": float(min(negation_parity(text) != negation_parity(r) for r in refs)),
        "criteria_weight": DERIVED_CRITERIA_WEIGHT if spec.derived_criteria else CRITERIA_WEIGHT,
        "denied": _denied_share(criteria, spec),
    }
    f.update(_overlap(text, refs, q_stems, vec))
    return f


def _denied_share(criteria: list[ConceptMatch], spec: ReflectionSpec) -> float:
    """Share of criterion points whose words the answer negates and nowhere asserts."""
    total = sum(c.points for c in spec.criteria)
    return sum(
        c.points for c, m in zip(spec.criteria, criteria) if m.negated_sentence and credit(m.strength) < 0.5
    ) / total


def _criteria_share(criteria: list[ConceptMatch], spec: ReflectionSpec) -> float:
    """Share of criterion points met; a criterion also negated in the answer earns half."""
    total = sum(c.points for c in spec.criteria)
    return sum(
        c.points * credit(m.strength) * (0.5 if m.negated_sentence else 1.0)
        for c, m in zip(spec.criteria, criteria)
    ) / total


def _overlap(text: str, refs: list[str], q_stems: frozenset[str], vec: EmbedFn) -> dict[str, float]:
    """Word overlap with the best-matching reference: exact (stems) and soft (word vectors)."""
    answer_stems = set(content_stems(text, q_stems))
    answer_words = _content_words(text, q_stems)
    best = dict(ref_recall=0.0, ref_precision=0.0, soft_recall=0.0, soft_precision=0.0)
    for ref in refs:
        ref_stems = set(content_stems(ref, q_stems))
        ref_words = _content_words(ref, q_stems)
        common = len(ref_stems & answer_stems)
        cand = {
            "ref_recall": common / len(ref_stems) if ref_stems else 0.0,
            "ref_precision": common / len(answer_stems) if answer_stems else 0.0,
            "soft_recall": 0.0,
            "soft_precision": 0.0,
        }
        if ref_words and answer_words:
            sims = cosine(vec(ref_words), vec(answer_words))
            cand["soft_recall"] = float(sims.max(axis=1).mean())
            cand["soft_precision"] = float(sims.max(axis=0).mean())
        if cand["ref_recall"] + cand["soft_recall"] >= best["ref_recall"] + best["soft_recall"]:
            best = cand
    return best


def reference_term(features: dict[str, float]) -> float:
    """Similarity to the reference answers as 0..1."""
    sim = 0.5 * (features["ref_cos"] + features["ref_cos_stripped"])
    return float(np.clip((sim - REF_SIM_LO) / (REF_SIM_HI - REF_SIM_LO), 0.0, 1.0))


def raw_score(features: dict[str, float]) -> float:
    """Default evidence combination, 0..1 (before calibration and flag caps)."""
    if features.get("restated_only"):
        return 0.0
    w = features.get("criteria_weight", CRITERIA_WEIGHT)
    # Similarity to the reference does not see a "not": where the answer denies a criterion in
    # its words, the reference's share of that criterion does not count.
    reference = reference_term(features) * (1 - features.get("denied", 0.0))
    score = w * features["criteria"] + (1 - w) * reference
    return float(np.clip(score - features["penalty"], 0.0, 1.0))


def raw_score_of(answer: str, spec: ReflectionSpec, embed_fn: EmbedFn = embed) -> float:
    return raw_score(analyze(answer, spec, embed_fn).features)


def suggest(
    answer: str,
    spec: ReflectionSpec,
    calibration: Calibration | None = None,
    embed_fn: EmbedFn = embed,
) -> Suggestion:
    """A suggested score for one answer, with reasons, confidence and flags. `embed_fn` reads
    the texts unless the calibration was fitted with the course's reading: then that does."""
    _check_fitted_for(spec, calibration)
    return _suggest(answer, spec, calibration, course_embedder(embed_fn, calibration))


def course_embedder(embed_fn: EmbedFn, calibration: Calibration | None) -> EmbedFn:
    """What reads the item's texts: the calibration's reading when it has one, else embed_fn."""
    if calibration is None or calibration.reading is None:
        return embed_fn
    from .reading import embedder

    return embedder(calibration.reading)


def _check_fitted_for(spec: ReflectionSpec, calibration: Calibration | None) -> None:
    if calibration is not None and calibration.spec_id and calibration.spec_id != spec.id:
        raise ValueError(
            f"calibration was fitted for {calibration.spec_id!r}, not for {spec.id!r}"
        )


def _suggest(answer: str, spec: ReflectionSpec, calibration: Calibration | None, embed_fn: EmbedFn) -> Suggestion:
    spec = item_spec(spec, calibration, answer)
    vec = embedder_for([answer], spec, calibration, embed_fn)
    return suggestion_for(analyze(answer, spec, vec), spec, calibration, vec)


def item_spec(spec: ReflectionSpec, calibration: Calibration | None, answer: str = "") -> ReflectionSpec:
    """The item as suggestions read it: its reference answers and the hand-graded answers that
    got full points (`Calibration.references`), except the answer being scored itself."""
    return spec.with_references(calibration.references if calibration is not None else [], answer)


def suggestion_for(
    analysis: Analysis, spec: ReflectionSpec, calibration: Calibration | None, embed_fn: EmbedFn
) -> Suggestion:
    """The suggestion for an analysed answer (callers that already hold the analysis)."""
    calibration = calibration or Calibration()
    raw = raw_score(analysis.features)
    share = calibration.apply(raw)
    share, exemplar_note, neighbours = _exemplar_pull(analysis, calibration, share, embed_fn, spec)
    penalty = calibration.reliability_penalty()   # the item's record: a binomial tail, once
    confidence = _confidence(analysis, spec, calibration, raw, share, neighbours, penalty)
    before_caps = share
    share, flag_reasons = _apply_flags(analysis.flags, share)
    # Flags first: they matter most and callers may show only the first few reasons.
    reasons = [
        *flag_reasons,
        *_criteria_reasons(analysis, spec),
        *exemplar_note,
        *_context_reasons(analysis, spec, calibration, raw),
    ]
    empty = "empty" in analysis.flags
    line = REVIEW_BELOW if calibration.review_below is None else calibration.review_below
    routed = any(f not in gaming.NO_REVIEW_FLAGS for f in analysis.flags)
    unsure = not routed and not empty and confidence < line   # routed by confidence alone: say why
    if unsure and confidence >= REVIEW_BELOW:
        reasons.append(
            f"sent to review below the review line {line:.2f} that calibration set from the hand-graded "
            "answers, each suggested without its own grade: at the default line too many that would not "
            "have been reviewed were off by half the points or more"
        )
    if unsure and line <= confidence + penalty:
        reasons.append(
            f"sent to review because of this item's record: {calibration.missed} of its {calibration.checked} "
            "hand-graded answers, each suggested without its own grade, got a suggestion off by half the "
            f"points or more that would not have been reviewed (confidence -{penalty:.2f})"
        )
    if unsure and _outvoted(neighbours[2], before_caps, calibration):
        reasons.append(
            f"the {NEAREST_K} most similar hand-graded answers got {neighbours[2] * spec.points:.2g}/{spec.points:g} "
            f"on average, another grade than suggested (confidence -{NEAREST_DISAGREE_WEIGHT:.2f})"
        )
    routed = routed or unsure
    return Suggestion(
        # A sure suggestion lands on the teacher's grading step; one sent to a human keeps
        # quarter points, the best single guess between two grades.
        points=rounded_points(share, spec.points, 0.0 if routed else calibration.step),
        max_points=spec.points,
        confidence=round(confidence, 3),
        needs_review=routed,
        reasons=reasons,
        flags=list(analysis.flags),
        criteria_met={
            m.name: m.sentence for m in analysis.criteria if credit(m.strength) >= 0.5
        },
        raw=round(raw, 4),
        share_before_caps=round(before_caps, 4),
    )


def rounded_points(share: float, points: float, step: float) -> float:
    """Points on the grading step the teacher used (quarter points when unknown): a
    suggestion, not a verdict."""
    if step > 0:
        return round(round(share / step) * step * points, 4)
    return round(points * share * 4) / 4


def suggest_many(
    answers: dict[str, str],
    spec: ReflectionSpec,
    calibration: Calibration | None = None,
    embed_fn: EmbedFn = embed,
) -> dict[str, Suggestion]:
    """suggest() for many students' answers to one item, embedding everything in one batch."""
    _check_fitted_for(spec, calibration)
    vec = embedder_for(answers.values(), item_spec(spec, calibration), calibration, course_embedder(embed_fn, calibration))
    return {sid: _suggest(a, spec, calibration, vec) for sid, a in answers.items()}


def _apply_flags(flags: list[str], share: float) -> tuple[float, list[str]]:
    reasons = []
    for flag in flags:
        cap = gaming.FLAG_CAPS.get(flag)
        if cap is None:
            reasons.append(f"flag {flag}: {_FLAG_TEXT[flag]}; an instructor should look")
        else:
            reasons.append(f"flag {flag}: {_FLAG_TEXT[flag]}; points capped at {cap:.0%}")
            share = min(share, cap)
    return share, reasons


_FLAG_TEXT = {
    "empty": "no answer was given (blank or a placeholder)",
    "question_pasted": "most of the answer repeats the question",
    "keyword_list": "a list of terms, not an explanation",
    "padding": "far longer than asked for, sentences repeated, or much of it off-topic",
    "reference_copy": "reproduces the reference answer",
    "contradiction": "asserts something and also its opposite, or takes it back",
}


def _criteria_reasons(analysis: Analysis, spec: ReflectionSpec) -> list[str]:
    reasons = []
    for c, m in zip(spec.criteria, analysis.criteria):
        got = credit(m.strength)
        how = "wording" if m.lexical >= LEX_MIN else f"meaning, similarity {m.semantic:.2f}"
        if got >= 0.999:
            reasons.append(f"met {c.name} ({c.points:g}/{c.points:g}) by {how}: \"{m.sentence}\"")
        elif got > 0:
            reasons.append(
                f"partly met {c.name} ({got * c.points:.2f}/{c.points:g}) by {how}: \"{m.sentence}\""
            )
        else:
            reasons.append(f"missing {c.name} (0/{c.points:g})")
        if m.negated_sentence:
            reasons.append(f"{c.name} is negated in: \"{m.negated_sentence}\"")
    for c, m in zip(spec.misconceptions, analysis.misconceptions):
        if credit(m.strength) > 0:
            reasons.append(
                f"misconception {c.name} (-{c.penalty * credit(m.strength):.2f}): \"{m.sentence}\""
            )
    return reasons


def _context_reasons(analysis: Analysis, spec: ReflectionSpec, cal: Calibration, raw: float) -> list[str]:
    if "empty" in analysis.flags:
        return []
    f = analysis.features
    n_words = len(tokens(analysis.answer))
    lo, hi = spec.expected_words
    reasons = [f"similarity to the reference answer {f['ref_cos']:.2f}; raw score {raw:.2f}"]
    if n_words < lo:
        reasons.append(f"{n_words} words, shorter than the expected {lo}-{hi}")
    if cal.n_graded:
        reasons.append(f"calibrated on {cal.n_graded} hand-graded answers")
    return reasons


# Graded answers at least this similar to an answer are its neighbours: their grades are
# evidence too (k-nearest-neighbour regression on the teacher's own grades).
NEIGHBOUR_COSINE_MIN = 0.6
# Most weight the neighbours' grades get against the calibrated evidence.
NEIGHBOUR_WEIGHT_MAX = 0.5
# The grade the NEAREST_K most similar hand-graded answers vote for (however similar they are):
# a suggestion on another grade than theirs loses this much confidence.
NEAREST_K, NEAREST_DISAGREE_WEIGHT = 5, 0.25


def _exemplar_pull(
    analysis: Analysis, cal: Calibration, share: float, embed_fn: EmbedFn, spec: ReflectionSpec
) -> tuple[float, list[str], tuple[float, float]]:
    """Blend in the grades of similar hand-graded answers; pull an answer that is almost one
    of them halfway toward its grade.

    Also returns (weight, mean share) of the graded neighbours and the nearest ones' vote (None
    with fewer than NEAREST_K graded answers), for the confidence.
    """
    if not cal.exemplars or "empty" in analysis.flags:
        return share, [], (0.0, 0.0, None)
    texts = [text for text, _ in cal.exemplars]
    vecs = embed_fn([analysis.answer, *texts])
    shares = np.array([s for _, s in cal.exemplars])
    sims = vecs[1:] @ vecs[0]
    weights = np.clip((sims - NEIGHBOUR_COSINE_MIN) / (1 - NEIGHBOUR_COSINE_MIN), 0.0, 1.0) ** 2
    total = float(weights.sum())
    notes = []
    neighbours = (total, float(weights @ shares / total)) if total > 0 else (0.0, 0.0)
    neighbours = (*neighbours, _nearest_vote(sims, shares))
    if total > 0:
        alpha = NEIGHBOUR_WEIGHT_MAX * total / (total + 1.0)
        share = (1 - alpha) * share + alpha * neighbours[1]
    ex = exemplar_features(vecs[0], vecs[1:], list(shares))
    if ex["nearest_sim"] >= EXEMPLAR_COSINE_MIN:
        share = 0.5 * (share + ex["nearest_share"])
        notes.append(
            f"close (similarity {ex['nearest_sim']:.2f}) to a hand-graded answer that got "
            f"{ex['nearest_share'] * spec.points:g}/{spec.points:g}"
        )
    elif total > 0:
        notes.append(f"similar hand-graded answers got {neighbours[1] * spec.points:.2g}/{spec.points:g} on average")
    return share, notes, neighbours


def _outvoted(vote: float | None, share: float, cal: Calibration) -> bool:
    """The nearest graded answers' vote is on another grade than the suggestion (on the
    teacher's grading step; quarter points when unknown)."""
    step = cal.step if cal.step > 0 else 0.25
    return vote is not None and round(vote / step) != round(share / step)


def _nearest_vote(sims: np.ndarray, shares: np.ndarray) -> float | None:
    if len(sims) < NEAREST_K:
        return None
    nearest = np.argsort(-sims)[:NEAREST_K]
    w = np.clip(sims[nearest], 1e-3, 1.0) ** 4   # the closest count most
    return float(w @ shares[nearest] / w.sum())


def _polarity_differs(sentence: str, phrasings: Sequence[str]) -> bool:
    return bool(sentence) and all(negation_parity(sentence) != negation_parity(p) for p in phrasings)


def _soft_credit(strength: float) -> float:
    """credit() on a slightly wider ramp: a criterion just below the credit line is unsure."""
    return float(np.clip((strength - CREDIT_LO + 0.1) / (CREDIT_HI - CREDIT_LO + 0.1), 0.0, 1.0))


def _confidence(
    analysis: Analysis, spec: ReflectionSpec, cal: Calibration, raw: float, share: float,
    neighbours: tuple[float, float, float | None], reliability_penalty: float,
) -> float:
    """How sure the suggestion is: low when criteria are half-met or nearly met, met only by
    meaning, asserted and negated, when criteria and the reference disagree, where the
    calibration erred on held-out graded answers, on an item whose own graded answers got
    unreviewed suggestions far off their grade, when graded neighbours got another grade or the
    nearest graded answers vote for another, and when the share falls between two grading steps."""
    if "empty" in analysis.flags:
        return 1.0
    if not analysis.criteria:
        return 0.0
    total = sum(c.points for c in spec.criteria)
    soft = [_soft_credit(m.strength) for m in analysis.criteria]
    ambiguity = sum(c.points * (1 - abs(2 * g - 1)) for c, g in zip(spec.criteria, soft)) / total
    met = [credit(m.strength) >= 0.5 for m in analysis.criteria]
    by_meaning = sum(
        c.points for c, m, ok in zip(spec.criteria, analysis.criteria, met) if ok and m.lexical < LEX_MIN
    ) / total
    # mixed: the criterion is also denied elsewhere, or the sentence meeting it carries a
    # negation its phrasings do not (what is negated may be the point)
    mixed = sum(
        c.points for c, m, ok in zip(spec.criteria, analysis.criteria, met)
        if ok and (m.negated_sentence or _polarity_differs(m.sentence, c.phrasings))
    ) / total
    disagreement = abs(analysis.features["criteria"] - reference_term(analysis.features))
    weight, neighbour_share, _ = neighbours
    neighbour_gap = min(1.0, weight) * max(0.0, abs(neighbour_share - share) - 0.25)
    between_steps = 0.0
    if cal.step > 0:
        pos = share / cal.step
        between_steps = max(0.0, abs(pos - round(pos)) - BETWEEN_STEPS_FREE)
    confidence = (
        1.0
        - AMBIGUITY_WEIGHT * ambiguity
        - MEANING_WEIGHT * by_meaning
        - 0.4 * mixed
        - 0.4 * max(0.0, disagreement - 0.4)
        - cal.local_error(raw)
        - reliability_penalty
        - neighbour_gap
        - NEAREST_DISAGREE_WEIGHT * _outvoted(neighbours[2], share, cal)
        - BETWEEN_STEPS_WEIGHT * between_steps
    )
    return float(np.clip(confidence, 0.0, 1.0))
