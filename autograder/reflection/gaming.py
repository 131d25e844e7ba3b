"""Gaming detectors: answers built to please a grader rather than to answer.

Each detector is a pure function of the answer and a few pre-computed similarities and says
yes/no; the scorer turns a yes into a flag, a points cap and a human review. The detectors
err on the side of flagging: a flag costs a teacher a glance, a miss rewards gaming.
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

# Highest share of the item's points a flagged answer may be suggested: below what an honest
# partial answer (one criterion of two to four) earns, so gaming never pays; the teacher who
# reviews the flag sets the real score.
FLAG_CAPS = {
    "empty": 0.0,
    "question_pasted": 0.25,
    "keyword_list": 0.25,
    "contradiction": 0.25,
    "padding": 0.25,
    "reference_copy": 0.25,
}

# A sentence restates the question when it adds (almost) no content word of its own and
# covers much of the question or reads like it. Picking words out of a long question
# ("Cold.", "Oil is less dense than water.") is answering, not restating.
QUESTION_NOVELTY_MAX = 0.25
QUESTION_COVERAGE_MIN, QUESTION_COSINE_MIN = 0.5, 0.85
# Padding: this much longer than the expected maximum, or sentences said twice.
PADDING_LENGTH_FACTOR = 1.5
# Two sentences this similar with opposite negation say opposite things.
CONTRADICTION_COSINE_MIN = 0.75
# Reference copy: share of the reference's word 4-grams found in the answer, or cosine.
COPY_NGRAM_MIN = 0.5
COPY_COSINE_MIN = 0.97

# Taking back what was just said; 'whether or not' and a plain 'not' are not retractions.
_RETRACTION = re.compile(
    r"\bactually,?\s+(no\b\s*[,.:;!-]|that('s| is) (wrong|incorrect|not (right|true|correct)))"
    r"|\bjust kidding\b|\bthe opposite is true\b|\bor the opposite\b|\bor maybe not\b"
    r"|\bscratch that\b|\bignore (that|the above|what i (said|wrote))\b",
    re.I,
)
_LIST_SPLIT = re.compile(r"[,;/|\n•·]+|\s+-\s+|^\s*[-*]\s*", re.M)


_PLACEHOLDERS = {"todo", "tbd", "na", "n a", "none", "answer", "your answer here", "answer here"}


def is_empty(answer: str) -> bool:
    """No words at all: blank, punctuation, or a placeholder ('TODO', nbgrader's 'YOUR ANSWER HERE')."""
    words = tokens(answer)
    return not words or " ".join(words) in _PLACEHOLDERS


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
        novelty, coverage = _novelty_and_coverage(sentence, q_stems)
        cos = float(cos_to_question[i])
        if novelty <= QUESTION_NOVELTY_MAX and (
            coverage >= QUESTION_COVERAGE_MIN or cos >= QUESTION_COSINE_MIN
        ):
            out.append(i)
    return out


def is_question_pasted(
    answer: str, question: str, sentences: Sequence[str], restating: Sequence[int]
) -> bool:
    """The question (or its rewording) makes up most of the answer.

    Restating the question before answering is fine (those sentences just earn nothing);
    an answer that is mostly the question is not. Checked per sentence and on the whole
    answer (a pasted multi-sentence question has no single sentence covering it).
    """
    novelty, coverage = _novelty_and_coverage(answer, question_stems(question))
    if novelty <= QUESTION_NOVELTY_MAX and coverage >= QUESTION_COVERAGE_MIN:
        return True
    if not restating:
        return False
    words = [len(tokens(s)) for s in sentences]
    pasted = sum(words[i] for i in restating)
    return pasted * 2 >= sum(words)


def is_keyword_list(answer: str) -> bool:
    """Terms without sentences: 'weight sharing, local receptive field, pooling, ...'."""
    words = tokens(answer)
    if len(words) < 2:
        return False
    n_stop = sum(w in STOP_WORDS for w in words)
    items = [tokens(i) for i in _LIST_SPLIT.split(answer)]
    items = [i for i in items if i]
    short = sum(len(i) <= 3 for i in items)
    # Running English is ~40-50% function words; a term list has almost none.
    if len(items) >= 3 and short >= 0.75 * len(items) and n_stop < 0.3 * len(words):
        return True
    if len(items) >= 2 and all(len(i) <= 2 for i in items) and n_stop == 0:
        return True
    return len(words) >= 6 and n_stop < 0.12 * len(words)


def is_padding(sentences: Sequence[str], expected_words: tuple[int, int]) -> bool:
    """Far longer than asked for, or the same sentence repeated to look substantial."""
    n_words = sum(len(tokens(s)) for s in sentences)
    if n_words > PADDING_LENGTH_FACTOR * expected_words[1]:
        return True
    keys = [" ".join(tokens(s)) for s in sentences if len(tokens(s)) >= 3]
    return len(keys) >= 3 and len(set(keys)) <= 0.7 * len(keys)


def _ngrams(words: Sequence[str], n: int = 4) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def is_reference_copy(answer: str, references: Sequence[str], cos_to_refs: np.ndarray) -> bool:
    """The answer reproduces a reference answer (verbatim or with light edits)."""
    answer_grams = _ngrams(tokens(answer))
    for ref, cos in zip(references, np.atleast_1d(cos_to_refs)):
        ref_grams = _ngrams(tokens(ref))
        if not ref_grams:
            continue
        contained = len(ref_grams & answer_grams) / len(ref_grams)
        if contained >= COPY_NGRAM_MIN or cos >= COPY_COSINE_MIN:
            return True
    return False


def has_contradiction(
    sentences: Sequence[str], sentence_cos: np.ndarray, concept_conflicts: Sequence[str] = ()
) -> bool:
    """The answer asserts something and also its negation, or takes it back.

    concept_conflicts: names of concepts matched both plainly and negated (from matching).
    """
    if concept_conflicts:
        return True
    if any(_RETRACTION.search(s) for s in sentences):
        return True
    parity = [negation_parity(s) for s in sentences]
    for i in range(len(sentences)):
        for j in range(i + 1, len(sentences)):
            if parity[i] != parity[j] and sentence_cos[i, j] >= CONTRADICTION_COSINE_MIN:
                return True
    return False
