"""Concept matching per sentence: which criterion (or misconception) does which sentence express?

Two kinds of evidence are combined per (sentence, concept), the stronger one counting:
- lexical: the share of a phrasing's content words found close together in the sentence,
  after dropping the words that merely repeat the question (restating the question is not
  evidence of a concept);
- semantic: cosine similarity of the sentence or one of its clauses to the phrasings, on the
  plain texts and with question words removed from both sides, damped for sentences that are
  mostly question words.
A match is *negated* when a negation cue directly precedes a matched word ("weights are not
shared"); a negated match earns nothing and is kept to detect contradictions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from .embedding import EmbedFn, cosine, embed

__all__ = [
    "LEX_MIN",
    "NEGATIONS",
    "STOP_WORDS",
    "ConceptMatch",
    "clauses",
    "concept_texts",
    "content_stems",
    "match_concepts",
    "negated_stems",
    "negation_parity",
    "phrase_stems",
    "question_stems",
    "split_sentences",
    "stem",
    "strip_question",
    "tokens",
]

# tokens() splits "doesn't" into "does n't" and "cannot" into "can not".
NEGATIONS = frozenset("not no never n't neither nor none nothing nobody without hardly".split())
# Stop words carry no concept; negations are kept out of content words but tracked separately.
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | NEGATIONS | {"also", "just", "like", "use", "used", "using"}

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|n't")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+|(?<=[a-z0-9)])\s*[•·]\s*|^\s*[-*]\s+", re.M)

_ENUMERATOR = re.compile(r"\(?(\d+|[a-z]|[ivx]+)[.)]")  # "1." or "b)" left of a list item

_CLAUSE_SPLIT = re.compile(
    r"[,:;()]|\b(?:and|but|so|because|while|whereas|which|since|instead of|rather than)\b", re.I
)
_DOUBLED = re.compile(r"([b-df-hj-kmnp-rtv-y])\1$")  # not ll/ss/zz, as Porter
# Semantic similarity mapped linearly to strength; with the scorer's credit window (0.4..0.75)
# credit starts at cosine 0.5 and is full at 0.85, graded in between: MiniLM puts on-topic
# but wrong sentences around 0.6-0.7, so that range earns partial credit, not full.
SEM_LO, SEM_HI = 0.1, 1.1
# Misconceptions cost points, so a match by meaning must be close: credit from cosine 0.59,
# full at 0.71 (on-topic sentences that say the opposite sit around 0.6).
STRICT_SEM_LO, STRICT_SEM_HI = 0.45, 0.80
# How close before a matched word a negation cue must be to negate it.
NEGATION_WINDOW = 3
# Least share of a phrasing's words that counts as lexical evidence.
LEX_MIN = 0.75


@dataclass(frozen=True)
class ConceptMatch:
    """Best evidence for one concept in one answer."""

    name: str
    strength: float  # 0..1, from the best non-negated sentence
    sentence: str  # that sentence ("" when nothing matched)
    lexical: float
    semantic: float
    negated_sentence: str = ""  # a sentence asserting the concept's negation, if any


def split_sentences(text: str) -> list[str]:
    """Split an answer into sentences/clauses (., !, ?, ;, new lines and bullets end one)."""
    parts = (p.strip(" \t-*•·") for p in _SENTENCE_END.split(text.strip()))
    return [p for p in parts if re.search(r"[A-Za-z0-9]", p) and not _ENUMERATOR.fullmatch(p)]


def tokens(text: str) -> list[str]:
    """Lower-case word tokens; "doesn't" becomes ["does", "n't"] so the negation is visible."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"(\w)n't\b", r"\1 n't", text)
    text = text.replace("cannot", "can not")
    return _TOKEN.findall(text)


def stem(word: str) -> str:
    """A light suffix stripper so 'shares', 'shared', 'sharing' and 'share' meet."""
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("ly", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + keep
            if suffix in ("ing", "ed") and _DOUBLED.search(word):
                word = word[:-1]  # 'flipping' -> 'flip'
            break
    else:
        if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
            word = word[:-1]
    for _ in range(2):  # 'evaporated' -> 'evaporat' -> 'evapor' == 'evaporation' -> 'evapor'
        for suffix in ("ation", "ion", "ity", "ive", "iv", "al", "at", "er", "e"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                word = word[: -len(suffix)]
                break
        else:
            break
    if word.endswith("is") and len(word) > 5:
        word = word[:-2] + "iz"  # British -ise/-isation spellings meet -ize/-ization
    return word


def content_stems(text: str, drop: Iterable[str] = ()) -> list[str]:
    """Stems of the content words of text, in order, without those in drop."""
    drop = set(drop)
    out = []
    for tok in tokens(text):
        if tok in STOP_WORDS or len(tok) < 2:
            continue
        s = stem(tok)
        if s not in drop:
            out.append(s)
    return out


def question_stems(question: str) -> frozenset[str]:
    """Content stems of the question: repeating them in an answer is not evidence."""
    return frozenset(content_stems(question))


def negation_parity(text: str) -> int:
    """1 when the text has an odd number of negation cues, else 0."""
    return sum(tok in NEGATIONS for tok in tokens(text)) % 2


def _negated_positions(toks: Sequence[str]) -> set[int]:
    """Indices of tokens that follow a negation cue within NEGATION_WINDOW tokens."""
    out: set[int] = set()
    for i, tok in enumerate(toks):
        if tok in NEGATIONS:
            # "it is not true that X", "I don't think that X": the whole clause is denied
            if "that" in toks[i + 1 : i + 4]:
                out.update(range(i + 1, len(toks)))
            else:
                out.update(range(i + 1, i + 1 + NEGATION_WINDOW))
    return out


def negated_stems(text: str) -> frozenset[str]:
    """Stems the text itself negates ("does not evaporate" -> {'evapor'}): a student saying
    the same negation agrees with it."""
    toks = tokens(text)
    neg = _negated_positions(toks)
    return frozenset(stem(t) for i, t in enumerate(toks) if i in neg and t not in STOP_WORDS)


@dataclass(frozen=True)
class _Sentence:
    text: str
    stems: tuple[str, ...]  # content stems, question words removed
    stem_negated: tuple[bool, ...]  # per stem: preceded by a negation cue
    novelty: float  # share of content stems that are not question words


def _prepare_sentence(text: str, q_stems: frozenset[str]) -> _Sentence:
    toks = tokens(text)
    negated = _negated_positions(toks)
    stems: list[str] = []
    flags: list[bool] = []
    total = 0
    for i, tok in enumerate(toks):
        if tok in STOP_WORDS or len(tok) < 2:
            continue
        total += 1
        s = stem(tok)
        if s in q_stems:
            continue
        stems.append(s)
        flags.append(i in negated)
    novelty = len(stems) / total if total else 0.0
    return _Sentence(text, tuple(stems), tuple(flags), novelty)


def _lexical(
    sentence: _Sentence, phrase_stems: list[set[str]], phrase_negs: Sequence[frozenset[str]] = ()
) -> tuple[float, bool]:
    """Best phrasing coverage in the sentence, and whether the covering words are negated.

    The phrasing's words must occur close together (a window a little longer than the
    phrasing), and a coverage below LEX_MIN counts as nothing: scattered generic words
    ('layer', 'weight') are not a concept. A word is negated when the sentence negates it and
    the phrasing does not, or the other way round. A wanted word the sentence negates outside
    the best window still makes the match negated: covering most of a long phrasing while
    denying its point ("X happens, so Y has not Z") is not asserting it.
    """
    best, negated = 0.0, False
    seq = sentence.stems
    negs = list(phrase_negs) or [frozenset()] * len(phrase_stems)
    for wanted, own_neg in zip(phrase_stems, negs):
        if not wanted:
            continue
        flips = [sentence.stem_negated[i] != (seq[i] in own_neg) for i in range(len(seq))]
        denied = {w for w in wanted if w in seq and all(f for s, f in zip(seq, flips) if s == w)}
        width = len(wanted) + 3
        for start in range(max(1, len(seq) - width + 1)):
            window = range(start, min(len(seq), start + width))
            hits: dict[str, bool] = {}   # a word is negated only if every occurrence of it is
            for i in window:
                if seq[i] in wanted:
                    hits[seq[i]] = hits.get(seq[i], True) and flips[i]
            cover = len(hits) / len(wanted)
            window_negated = any(hits.values()) or bool(denied - hits.keys())
            # the best coverage wins; at equal coverage an asserted window beats a negated one
            if cover >= LEX_MIN and (cover > best or (cover == best and negated and not window_negated)):
                best, negated = cover, window_negated
    return best, negated


def _ordered_cover(seq: Sequence[str], negated: Sequence[bool], wanted: Sequence[str]) -> tuple[float, bool]:
    """Share of the phrasing's words found in the sentence, 0 when the ones found are not in
    the phrasing's order (their longest common subsequence is shorter than their number), and
    whether any of them is negated."""
    n, m = len(seq), len(wanted)
    if not n or not m:
        return 0.0, False
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n):
        for j in range(m):
            table[i + 1][j + 1] = table[i][j] + 1 if seq[i] == wanted[j] else max(table[i][j + 1], table[i + 1][j])
    hit_negated = any(neg for s, neg in zip(seq, negated) if s in wanted)
    present = len(set(wanted) & set(seq))
    return (table[n][m] / m if table[n][m] == present else 0.0), hit_negated


def ordered_stems(phrasing: str, q_stems: frozenset[str]) -> list[str]:
    """Content stems of an ordered phrasing, in order; question words are kept (the order of
    the question's own terms is often the point: 'root, left, right')."""
    return list(dict.fromkeys(content_stems(phrasing)))


def phrase_stems(phrasing: str, q_stems: frozenset[str]) -> set[str]:
    """Content stems of a phrasing that are evidence: those not in the question.

    A phrasing that is mostly question words ('augment the validation set' for a question
    about augmentation) has no lexical evidence left and is matched semantically only.
    """
    full = set(content_stems(phrasing))
    kept = full - q_stems
    return kept if len(kept) * 2 >= len(full) else set()


def _semantic_term(sim: float, novelty: float, strict: bool = False) -> float:
    # A sentence made mostly of question words is similar to everything the question is about.
    lo, hi = (STRICT_SEM_LO, STRICT_SEM_HI) if strict else (SEM_LO, SEM_HI)
    term = float(np.clip((sim - lo) / (hi - lo), 0.0, 1.0))
    return term * min(1.0, novelty / 0.25)


def strip_question(text: str, q_stems: frozenset[str]) -> str:
    """The text without the words that repeat the question; the text itself if nothing is left."""
    kept = " ".join(t for t in tokens(text) if stem(t) not in q_stems)
    return kept or text


def clauses(sentence: str) -> list[str]:
    """The sentence and its clauses: a concept often sits in one clause of a long sentence."""
    parts = [p.strip() for p in _CLAUSE_SPLIT.split(sentence)]
    parts = [p for p in parts if p and len(tokens(p)) >= 3 and p != sentence]
    return [sentence, *parts]


def concept_texts(
    sentences: Sequence[str], concepts: Sequence[tuple[str, Sequence[str]]], question: str
) -> list[str]:
    """Every text match_concepts() embeds (for batching many answers)."""
    q_stems = question_stems(question)
    units = [u for s in sentences for u in clauses(s)]
    if len(sentences) > 1:
        units.append(" ".join(sentences))
    phrasings = [p for _, ps, *_ in concepts for p in ps]
    texts = units + phrasings
    return texts + [strip_question(t, q_stems) for t in texts]


def match_concepts(
    sentences: Sequence[str],
    concepts: Sequence[tuple],
    question: str,
    embed_fn: EmbedFn = embed,
    strict: bool = False,
) -> list[ConceptMatch]:
    """For each (name, phrasings[, ordered]) concept, the best evidence over the answer's sentences.

    Semantic similarity is taken both on the plain texts and with question words removed
    from both sides; their mean by default, their minimum when strict (for misconceptions,
    where a false match costs the student points). A concept said over several sentences
    (a multi-sentence reference) is also compared with the whole answer. An ordered concept
    is matched by its words in order only.
    """
    q_stems = question_stems(question)
    prepared = [_prepare_sentence(s, q_stems) for s in sentences]
    units = [clauses(s) for s in sentences]
    whole = " ".join(sentences)
    if len(sentences) > 1:
        units.append([whole])
    owner = np.array([i for i, us in enumerate(units) for _ in us], dtype=int)
    flat = [u for us in units for u in us]
    unit_vecs = embed_fn(flat)
    unit_stripped = embed_fn([strip_question(u, q_stems) for u in flat])
    results = []
    for name, phrasings, *rest in concepts:
        ordered = bool(rest and rest[0])
        if ordered:
            results.append(_best_ordered(name, sentences, phrasings, q_stems))
            continue
        wanted = [phrase_stems(p, q_stems) for p in phrasings]
        negs = [negated_stems(p) for p in phrasings]
        plain = cosine(unit_vecs, embed_fn(list(phrasings))).max(axis=1)
        stripped = cosine(
            unit_stripped, embed_fn([strip_question(p, q_stems) for p in phrasings])
        ).max(axis=1)
        sims = np.minimum(plain, stripped) if strict else 0.5 * (plain + stripped)
        per_unit = [float(sims[owner == i].max()) for i in range(len(units))]
        match = _best_match(name, prepared, wanted, per_unit[: len(sentences)], negs, strict)
        if len(units) > len(sentences) and not match.negated_sentence:
            novelty = _prepare_sentence(whole, q_stems).novelty
            term = _semantic_term(per_unit[-1], novelty, strict)
            if term > match.strength:
                match = ConceptMatch(name, term, whole, 0.0, per_unit[-1], match.negated_sentence)
        results.append(match)
    return results


def _best_ordered(name: str, sentences: Sequence[str], phrasings: Sequence[str], q_stems) -> ConceptMatch:
    best = ConceptMatch(name, 0.0, "", 0.0, 0.0)
    negated_sentence = ""
    for text in sentences:
        toks = tokens(text)
        neg_pos = _negated_positions(toks)
        seq, neg = [], []
        for i, tok in enumerate(toks):
            if tok not in STOP_WORDS and len(tok) >= 2:
                seq.append(stem(tok))
                neg.append(i in neg_pos)
        for p in phrasings:
            cover, negated = _ordered_cover(seq, neg, ordered_stems(p, q_stems))
            cover = cover if cover >= LEX_MIN else 0.0
            if cover and negated:
                negated_sentence = negated_sentence or text
            elif cover > best.strength:
                best = ConceptMatch(name, cover, text, cover, 0.0)
    return ConceptMatch(best.name, best.strength, best.sentence, best.lexical, 0.0, negated_sentence)


def _best_match(
    name: str, prepared: list[_Sentence], phrase_stems: list[set[str]], sims: Sequence[float],
    phrase_negs: Sequence[frozenset[str]] = (), strict: bool = False,
) -> ConceptMatch:
    best = ConceptMatch(name, 0.0, "", 0.0, 0.0)
    negated_sentence = ""
    for sent, semantic in zip(prepared, sims):
        lexical, lex_negated = _lexical(sent, phrase_stems, phrase_negs)
        strength = max(lexical, _semantic_term(semantic, sent.novelty, strict))
        if lex_negated and lexical >= LEX_MIN:
            if not negated_sentence:
                negated_sentence = sent.text
            continue
        if strength > best.strength:
            best = ConceptMatch(name, strength, sent.text, lexical, semantic)
    return ConceptMatch(
        best.name, best.strength, best.sentence, best.lexical, best.semantic, negated_sentence
    )
