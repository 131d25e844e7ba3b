"""Gaming detectors: answers built to please a grader rather than to answer.

Each detector is a pure function of the answer and a few pre-computed similarities and says
yes/no; the scorer turns a yes into a flag and a human review. A flag does not rewrite the
evidence-based score (honest answers trip detectors too: students learn the course's wording,
list things, contrast two cases), except where it is near-certain: an empty or placeholder
answer is 0 without review. Each detector's false-flag rate on honest answers is measured by
benchmarks/reflection_agreement.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .concepts import STOP_WORDS, content_stems, negation_parity, question_stems, tokens

__all__ = [
    "FLAG_CAPS",
    "is_empty",
    "question_sentences",
    "is_question_pasted",
    "is_keyword_list",
    "is_padding",
    "is_reference_copy",
    "has_contradiction",
]

# Caps for the near-certain flags only; every other flag routes the answer to a human and
# leaves the suggested points as the evidence gives them.
FLAG_CAPS = {"empty": 0.0}
# Flags that need no human: nothing was written, so there is nothing to read.
NO_REVIEW_FLAGS = frozenset({"empty"})

# A sentence restates the question when it adds (almost) no content word of its own and
# covers much of the question or reads like it. Picking words out of a long question
# ("Cold.", "Oil is less dense than water.") is answering, not restating.
# One new word is an answer ("Programs begin execution at main."), so the bar is low, and a
# sentence of one or two content words ("Cold.") is an answer picked from the question.
QUESTION_NOVELTY_MAX = 0.15
QUESTION_MIN_STEMS = 3
QUESTION_COVERAGE_MIN, QUESTION_COSINE_MIN = 0.5, 0.85
# Padding: this much longer than the expected maximum, or sentences said twice.
PADDING_LENGTH_FACTOR = 2.0
# A sentence this long said twice is padding, not emphasis.
REPEAT_MIN_WORDS = 6
# Off-topic filler: sentences this far from the question, the references and the criteria,
# making up this share of the answer's words.
OFF_TOPIC_COSINE_MAX, OFF_TOPIC_SHARE_MIN = 0.3, 0.4
# Two sentences this similar, saying the same words with opposite negation, say opposite things.
CONTRADICTION_COSINE_MIN = 0.8
CONTRADICTION_OVERLAP_MIN = 0.75
# Reference copy: a hidden reference reproduced nearly whole. Only long references count: a
# student who learned the course's words writes a short reference's sentence on their own.
COPY_NGRAM_MIN = 0.8
COPY_COSINE_MIN = 0.97
COPY_MIN_WORDS = 25

# Taking back what was just said; 'whether or not' and a plain 'not' are not retractions.
_RETRACTION = re.compile(
    r"\bactually,?\s+(no\b\s*[,.:;!-]|that('s| is) (wrong|incorrect|not (right|true|correct)))"
    r"|\bjust kidding\b|\bthe opposite is true\b|\bor the opposite\b|\bor maybe not\b"
    r"|\bscratch that\b|\bignore (that|the above|what i (said|wrote))\b",
    re.I,
)
# Auxiliaries that carry a negation ("does not need to") but no content.
_AUX_STEMS = frozenset({"doe", "did", "do", "need", "still", "ha", "had", "got"})
_CODE = re.compile(r"[=<>+*/^(){}\[\]]")
_LIST_SPLIT = re.compile(r"[,;/|\n•·]+|\s+-\s+|^\s*[-*]\s*", re.M)


# Whole answers that say nothing. Not "none" or "nothing": those answer some questions.
_PLACEHOLDERS = re.compile(
    r"(todo|tbd|tba|na|n a|nil|null|answer|no answer|answer here|your answer here|(type )?answer below|"
    r"no idea|idk|dunno|(i )?do n't know|(i )?dont know|(i am |i'm )?not sure|no clue|skip|skipped|"
    r"see above|same as above|as above|see below|x+)"
)


def is_empty(answer: str) -> bool:
    """Nothing to read: blank, punctuation, or a placeholder ('NO ANSWER', 'idk', '-', 'see
    above', nbgrader's 'YOUR ANSWER HERE'), with or without punctuation."""
    words = tokens(answer)
    return not words or bool(_PLACEHOLDERS.fullmatch(" ".join(words)))


def _novelty_and_coverage(sentence: str, q_stems: frozenset[str]) -> tuple[float, float]:
    """Share of the sentence's content stems not in the question; share of the question's in it."""
    stems = content_stems(sentence)
    if not stems:
        return 1.0, 0.0  # 'Yes.' adds nothing but copies nothing either
    novelty = sum(s not in q_stems for s in stems) / len(stems)
    coverage = len(q_stems & set(stems)) / len(q_stems) if q_stems else 0.0
    return novelty, coverage


def question_sentences(
    sentences: Sequence[str], question: str, cos_to_question: np.ndarray
) -> list[int]:
    """Indices of sentences that restate the question rather than answer it."""
    q_stems = question_stems(question)
    out = []
    for i, sentence in enumerate(sentences):
        if len(content_stems(sentence)) < QUESTION_MIN_STEMS:
            continue
        novelty, coverage = _novelty_and_coverage(sentence, q_stems)
        cos = float(cos_to_question[i])
        if novelty <= QUESTION_NOVELTY_MAX and (
            coverage >= QUESTION_COVERAGE_MIN or cos >= QUESTION_COSINE_MIN
        ):
            out.append(i)
    return out


def restates_question(answer: str, question: str) -> bool:
    """The whole answer adds (almost) no word to the question and covers much of it."""
    novelty, coverage = _novelty_and_coverage(answer, question_stems(question))
    return novelty <= QUESTION_NOVELTY_MAX and coverage >= QUESTION_COVERAGE_MIN


def is_question_pasted(
    answer: str, question: str, sentences: Sequence[str], restating: Sequence[int]
) -> bool:
    """The question (or its rewording) makes up most of the answer.

    Restating the question before answering is fine (those sentences just earn nothing);
    an answer that is mostly the question is not. Checked per sentence and on the whole
    answer (a pasted multi-sentence question has no single sentence covering it).
    """
    if restates_question(answer, question):
        return True
    if not restating:
        return False
    words = [len(tokens(s)) for s in sentences]
    pasted = sum(words[i] for i in restating)
    return pasted * 2 >= sum(words)


def is_keyword_list(answer: str, topic_stems: frozenset[str] = frozenset()) -> bool:
    """Terms without sentences: 'weight sharing, local receptive field, pooling, ...'.

    Formulas and pseudo-code (items with symbols) are not term lists. Words without separators
    and without function words count only when they are mostly the item's own terms
    (topic_stems: of the question, references and criteria): running text in another language
    has no English function words either, but does not repeat the English terms.
    """
    words = tokens(answer)
    if len(words) < 2:
        return False
    items = [i.strip() for i in _LIST_SPLIT.split(answer)]
    items = [i for i in items if tokens(i)]
    code = [i for i in items if _CODE.search(i)]
    if len(code) * 3 >= len(items):
        return False
    items = [i for i in items if i not in code]  # a formula among terms is one more term
    words = [w for i in items for w in tokens(i)]
    n_stop = sum(w in STOP_WORDS for w in words)
    short = sum(len(tokens(i)) <= 3 for i in items)
    # Running English is ~40-50% function words; a term list has almost none.
    if len(items) >= 3 and short >= 0.75 * len(items) and n_stop < 0.3 * len(words):
        return True
    if len(items) >= 2 and all(len(tokens(i)) <= 2 for i in items) and n_stop == 0:
        return True
    stems = content_stems(" ".join(items))
    on_topic = sum(s in topic_stems for s in stems)
    return len(words) >= 6 and n_stop < 0.12 * len(words) and on_topic >= 0.5 * max(1, len(stems))


def is_padding(
    sentences: Sequence[str], expected_words: tuple[int, int], relevance: Sequence[float] = ()
) -> bool:
    """Far longer than asked for, the same sentence repeated to look substantial, or much of
    the answer off-topic (relevance: each sentence's best cosine to the question, references
    and criteria)."""
    lengths = [len(tokens(s)) for s in sentences]
    if sum(lengths) > PADDING_LENGTH_FACTOR * expected_words[1]:
        return True
    keys = [" ".join(tokens(s)) for s in sentences if len(tokens(s)) >= 3]
    if len(keys) >= 3 and len(set(keys)) <= 0.7 * len(keys):
        return True
    long_keys = [k for k in keys if len(k.split()) >= REPEAT_MIN_WORDS]
    if len(set(long_keys)) < len(long_keys):
        return True
    if len(relevance) != len(sentences) or len(sentences) < 2:
        return False
    off = sum(n for n, r in zip(lengths, relevance) if n >= 4 and r < OFF_TOPIC_COSINE_MAX)
    return off >= OFF_TOPIC_SHARE_MIN * sum(lengths) and off < sum(lengths)


def _ngrams(words: Sequence[str], n: int = 4) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def is_reference_copy(answer: str, references: Sequence[str], cos_to_refs: np.ndarray) -> bool:
    """The answer reproduces a long reference answer (verbatim or with light edits)."""
    answer_grams = _ngrams(tokens(answer))
    for ref, cos in zip(references, np.atleast_1d(cos_to_refs)):
        ref_words = tokens(ref)
        if len(ref_words) < COPY_MIN_WORDS:
            continue
        ref_grams = _ngrams(ref_words)
        contained = len(ref_grams & answer_grams) / len(ref_grams)
        if contained >= COPY_NGRAM_MIN or cos >= COPY_COSINE_MIN:
            return True
    return False


def has_contradiction(
    sentences: Sequence[str], unit_cos: np.ndarray, concept_conflicts: Sequence[str] = (),
    units: Sequence[tuple[int, str]] = (),
) -> bool:
    """The answer takes back what it said, or says one thing and then the same words negated.

    units: (sentence index, text) of the sentences and their clauses, unit_cos their cosines
    (the sentences themselves when units is empty). A clause carries its sentence's negation
    ("you should not freeze the backbone and train only the head"). Contrasting two cases ("a
    while loop may never run; a do-while always runs once", "too high a rate oscillates, too
    low converges slowly") is answering: the two differ in more than a negation, so they do not
    count. concept_conflicts: names of concepts matched both plainly and negated (from matching).
    """
    if concept_conflicts:
        return True
    if any(_RETRACTION.search(s) for s in sentences):
        return True
    units = list(units) or list(enumerate(sentences))
    parity = [negation_parity(s) for s in sentences]
    stems = [set(content_stems(text, _AUX_STEMS)) for _, text in units]
    for i, (si, _) in enumerate(units):
        for j in range(i + 1, len(units)):
            sj = units[j][0]
            if si == sj or parity[si] == parity[sj] or unit_cos[i, j] < CONTRADICTION_COSINE_MIN:
                continue
            small, large = sorted((stems[i], stems[j]), key=len)
            if len(small) >= 2 and len(small & large) >= CONTRADICTION_OVERLAP_MIN * len(large):
                return True
    return False
