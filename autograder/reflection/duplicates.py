"""Near-duplicate answers between students (copying, with or without light edits).

Similarity of two answers is the mean of a word-sequence match ratio (difflib, catches
copy-and-edit) and the embedding cosine (catches reworded copies). Honest answers to the same
question share meaning but not word order, so they stay well below the threshold; short
canonical answers ('weight sharing') are the same for everyone and are exempt.
"""

from __future__ import annotations

from difflib import SequenceMatcher

import numpy as np

from .concepts import tokens
from .embedding import EmbedFn, embed

__all__ = ["near_duplicates", "pair_similarity"]


def pair_similarity(words_a: list[str], words_b: list[str], cos: float) -> float:
    """Mean of the word-sequence match ratio and the embedding cosine, 0..1."""
    ratio = SequenceMatcher(None, words_a, words_b, autojunk=False).ratio()
    return 0.5 * (ratio + max(0.0, float(cos)))


def near_duplicates(
    answers: dict[str, str],
    threshold: float = 0.9,
    min_words: int = 12,
    embed_fn: EmbedFn = embed,
) -> list[tuple[str, str, float]]:
    """Pairs (student_a, student_b, similarity) of near-duplicate answers, most similar first.

    Answers with fewer than min_words words are exempt. Each pair is listed once, its two
    ids in the order of `answers`.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    ids = [sid for sid, text in answers.items() if len(tokens(text or "")) >= min_words]
    if len(ids) < 2:
        return []
    words = {sid: tokens(answers[sid]) for sid in ids}
    cos = embed_fn([answers[sid] for sid in ids])
    cos = cos @ cos.T
    # The mean can only reach the threshold if the cosine reaches 2*threshold - 1.
    floor = 2 * threshold - 1
    pairs = []
    for i, j in zip(*np.triu_indices(len(ids), k=1)):
        if cos[i, j] < floor:
            continue
        sim = pair_similarity(words[ids[i]], words[ids[j]], cos[i, j])
        if sim >= threshold:
            pairs.append((ids[i], ids[j], round(sim, 4)))
    return sorted(pairs, key=lambda p: -p[2])
