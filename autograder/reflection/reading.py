"""The course's reading: MiniLM taught, from an assignment's hand-graded answers, which answers
the teacher counts as alike.

MiniLM as shipped reads an answer by its topic: a wrong answer on the right topic sits as close
to the reference as a right one worded differently, and no calibration of its cosines can tell
them apart (docs/reflection.md). `autograder calibrate` therefore tunes it on pairs of texts whose
likeness the teacher's grades fix: a graded answer against the item's reference answers (target:
its share of the points) and two graded answers of one item (target: one minus the difference
of their shares, when one of them earned half or more). Only the biases are tuned (BitFit,
Ben Zaken et al. 2022): 26,112 numbers, as good as tuning all 22 million on this task, small
enough to travel inside the calibration file to every runner, and fast (one epoch, about a
minute on two cores for 2,000 pairs).

A Reading is plain data (the tuned biases); `embedder(reading)` is its EmbedFn, built once per
process from the bundled model.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .embedding import EmbedFn, cached_embedder, load_model

__all__ = ["Reading", "ReadingError", "embedder", "learn", "training_pairs"]

VERSION = 1
LEARNING_RATE = 2e-3   # BitFit moves few numbers: a rate 100 times a full fine-tuning's
BATCH = 16
SEED = 0
# Pairs per item at most (a large class gives thousands of answer pairs; a sample of them
# teaches as much), and in all; below MIN_PAIRS a reading learns too little to be worth one.
MAX_PAIRS_PER_ITEM = 300
MAX_PAIRS = 4000
MIN_PAIRS = 24
# Share of the points that makes an answer right enough to pair with another one.
PAIR_SHARE_MIN = 0.5


class ReadingError(ValueError):
    """A stored reading is unusable; the message says why."""


@dataclass(frozen=True, eq=False)
class Reading:
    """MiniLM's biases as the course's graded answers tuned them: {parameter name: values}.
    Two readings are equal when their biases are (their digests)."""

    biases: dict[str, np.ndarray]
    pairs: int = 0   # training pairs it was learned from (shown to the instructor)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reading) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    @functools.cached_property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.biases):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.biases[name], dtype="<f4").tobytes())
        return h.hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"version": VERSION, "method": "bitfit", "pairs": int(self.pairs),
                "biases": {name: base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii")
                           for name, v in self.biases.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> Reading:
        if not isinstance(d, dict) or d.get("version") != VERSION or d.get("method") != "bitfit":
            raise ReadingError(f"a reading must be a dict of version {VERSION}, method 'bitfit'")
        biases = d.get("biases")
        if not isinstance(biases, dict) or not biases:
            raise ReadingError("a reading needs its biases, {parameter name: base64 float32}")
        expected = _bias_shapes()
        out = {}
        for name, text in biases.items():
            if name not in expected:
                raise ReadingError(f"the model has no bias {name!r}")
            try:
                values = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4")
            except (TypeError, ValueError) as exc:
                raise ReadingError(f"bias {name!r} is not base64 float32: {exc}") from None
            if values.shape != expected[name]:
                raise ReadingError(f"bias {name!r} has {values.size} values, the model {expected[name][0]}")
            if not np.isfinite(values).all():
                raise ReadingError(f"bias {name!r} has values that are not finite numbers")
            out[name] = values.astype(np.float32)
        return cls(out, int(d.get("pairs", 0)))


def training_pairs(items: Sequence[tuple[Sequence[str], Sequence[tuple[str, float]]]],
                   seed: int = SEED) -> list[tuple[str, str, float]]:
    """(text, text, target cosine) from items given as (reference answers, [(graded answer,
    share of points)]): each graded answer against each reference (target: its share) and
    two graded answers of one item when one earned PAIR_SHARE_MIN or more (target: one minus
    the difference of their shares; two wrong answers need not be alike). At most
    MAX_PAIRS_PER_ITEM per item and MAX_PAIRS in all, sampled with `seed`."""
    rng = random.Random(seed)
    per_item = []
    for references, graded in items:
        refs = [r for r in dict.fromkeys(references) if r.strip()]
        answers = [(a, s) for a, s in graded if a.strip()]
        pairs = [(a, r, float(s)) for a, s in answers for r in refs if a.strip() != r.strip()]
        pairs += [(a, b, 1.0 - abs(sa - sb)) for i, (a, sa) in enumerate(answers) for b, sb in answers[i + 1:]
                  if max(sa, sb) >= PAIR_SHARE_MIN and a.strip() != b.strip()]
        pairs = list({frozenset(p[:2]): p for p in pairs}.values())   # a reference may be a graded answer too
        per_item.append(rng.sample(pairs, MAX_PAIRS_PER_ITEM) if len(pairs) > MAX_PAIRS_PER_ITEM else pairs)
    pairs = [p for item in per_item for p in item]
    return rng.sample(pairs, MAX_PAIRS) if len(pairs) > MAX_PAIRS else pairs


def learn(pairs: Sequence[tuple[str, str, float]], seed: int = SEED,
          progress: Callable[[int, int], None] | None = None) -> Reading | None:
    """The reading tuned on these pairs (one epoch, BitFit), or None with fewer than MIN_PAIRS.
    Deterministic for a seed on one machine; `progress(done, total)` after each batch."""
    if len(pairs) < MIN_PAIRS:
        return None
    import copy

    import torch

    torch.manual_seed(seed)
    model = copy.deepcopy(load_model())
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(".bias"))
    tuned = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(tuned, lr=LEARNING_RATE, weight_decay=0.0)
    order = list(pairs)
    random.Random(seed).shuffle(order)
    model.train()
    total = (len(order) + BATCH - 1) // BATCH
    for b in range(0, len(order), BATCH):
        batch = order[b:b + BATCH]
        ea, eb = (torch.nn.functional.normalize(model(model.preprocess([p[i] for p in batch]))["sentence_embedding"], dim=-1)
                  for i in (0, 1))
        loss = ((ea * eb).sum(-1) - torch.tensor([p[2] for p in batch])).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if progress:
            progress(b // BATCH + 1, total)
    return Reading({name: p.detach().numpy().astype(np.float32).copy()
                    for name, p in model.named_parameters() if name.endswith(".bias")}, len(order))


@functools.lru_cache(maxsize=1)
def _bias_shapes() -> dict[str, tuple[int]]:
    return {name: tuple(p.shape) for name, p in load_model().named_parameters() if name.endswith(".bias")}


def embedder(reading: Reading) -> EmbedFn:
    """The reading's EmbedFn (unit-length rows, a text cache of its own), built once per process
    and digest: a runner grading one assignment reads every answer with the same reading."""
    if reading.digest not in _embedders:
        if len(_embedders) >= MAX_READINGS:
            _embedders.pop(next(iter(_embedders)))
        _embedders[reading.digest] = cached_embedder(functools.partial(_model, reading))
    return _embedders[reading.digest]


# Readings kept built per process (a tuned copy of MiniLM is about 90 MB).
MAX_READINGS = 4
_embedders: dict[str, EmbedFn] = {}
_models: dict[str, object] = {}


def _model(reading: Reading):
    """MiniLM with the reading's biases, built on first use."""
    if reading.digest not in _models:
        import copy

        import torch

        model = copy.deepcopy(load_model())
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, values in reading.biases.items():
                params[name].copy_(torch.from_numpy(values))
        model.eval()
        while len(_models) >= MAX_READINGS:
            _models.pop(next(iter(_models)))
        _models[reading.digest] = model
    return _models[reading.digest]
