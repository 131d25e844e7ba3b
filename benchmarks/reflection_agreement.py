"""Agreement of the reflection scorer with human labels on SemEval-2013 Task 7 (SciEntsBank, 2-way).

Not a test: run it by hand, `python benchmarks/reflection_agreement.py` from the repo root.

The data (CC BY-SA 3.0, Dzikovska et al. 2013, "SemEval-2013 Task 7: The Joint Student Response
Analysis and 8th Recognizing Textual Entailment Challenge") is read in place from
`../shared/data/semeval2013-task7/semeval-3way.zip`; nothing of it is copied or written out.

1. Every answer goes through the scoring engine (`scorer.analyze`), which yields its features
   (similarities to the reference, concept and word overlap, length, ...) and gaming flags.
2. A logistic regression over those features is fitted on the training split and scored on
   the test splits (unseen answers / questions / domains), beside a content-overlap baseline:
   content-word recall of the reference answer, question words removed, one threshold tuned on
   training. For unseen answers (questions seen in training) a second model also uses the
   hand-graded training answers of the same question as exemplars, as a fitted Calibration
   does in the course.
3. A gaming suite built from the test questions counts gamed answers that would pass
   (classified correct) without a review flag.

The last line printed is one line of JSON with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402
from sklearn.model_selection import GroupKFold, cross_val_predict  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import SplineTransformer, StandardScaler  # noqa: E402

from autograder.reflection.calibration import exemplar_features  # noqa: E402
from autograder.reflection.concepts import content_stems, tokens  # noqa: E402
from autograder.reflection.embedding import embed  # noqa: E402
from autograder.reflection.scorer import (  # noqa: E402
    FEATURE_NAMES,
    analysis_texts,
    analyze,
    raw_score,
)
from autograder.reflection.spec import Criterion, ReflectionSpec  # noqa: E402

DEFAULT_ZIP = REPO.parent / "shared" / "data" / "semeval2013-task7" / "semeval-3way.zip"
SPLITS = {
    "train": "training/2way/sciEntsBank/",
    "ua": "test/2way/sciEntsBank/test-unseen-answers/",
    "uq": "test/2way/sciEntsBank/test-unseen-questions/",
    "ud": "test/2way/sciEntsBank/test-unseen-domains/",
}
SPLIT_NAMES = {"ua": "unseen answers", "uq": "unseen questions", "ud": "unseen domains"}
EXEMPLAR_NAMES = ("nearest_sim", "nearest_share", "best_sim_high", "best_sim_low")


@dataclass
class Question:
    id: str
    text: str
    references: list[str]
    answers: list[tuple[str, str, bool]]  # (answer id, text, labelled correct)


def load_split(zf: zipfile.ZipFile, prefix: str) -> list[Question]:
    questions = []
    for name in sorted(n for n in zf.namelist() if n.startswith(prefix) and n.endswith(".xml")):
        root = ET.fromstring(zf.read(name))
        questions.append(
            Question(
                id=root.get("id"),
                text=root.findtext("questionText").strip(),
                references=[(r.text or "").strip() for r in root.find("referenceAnswers")],
                answers=[
                    (a.get("id"), (a.text or "").strip(), a.get("accuracy") == "correct")
                    for a in root.find("studentAnswers")
                ],
            )
        )
    return questions


def spec_for(q: Question) -> ReflectionSpec:
    """A one-point item whose single criterion is the reference answer itself."""
    ref_words = max(len(tokens(r)) for r in q.references)
    return ReflectionSpec(
        id=q.id,
        question=q.text,
        points=1.0,
        reference_answers=tuple(q.references),
        criteria=(Criterion("reference", 1.0, tuple(q.references)),),
        expected_words=(1, max(30, 3 * ref_words)),
    )


class CachedEmbedder:
    """Embeds each distinct text once; kept in memory, and in `cache` (outside the repo) if given."""

    def __init__(self, cache: Path | None = None) -> None:
        self.table: dict[str, np.ndarray] = {}
        self.cache = cache
        if cache and cache.is_file():
            with np.load(cache, allow_pickle=False) as z:
                self.table = dict(zip(z["texts"].tolist(), z["vecs"]))

    def save(self) -> None:
        if self.cache and self.table:
            texts = list(self.table)
            np.savez(self.cache, texts=np.array(texts), vecs=np.stack([self.table[t] for t in texts]))

    def prefetch(self, texts: list[str]) -> None:
        missing = [t for t in dict.fromkeys(texts) if t not in self.table]
        if missing:
            self.table.update(zip(missing, embed(missing, batch_size=128)))

    def __call__(self, texts) -> np.ndarray:
        self.prefetch(list(texts))
        return np.stack([self.table[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


# ---------------------------------------------------------------- baseline


def _baseline_words(text: str, drop: set[str]) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in ENGLISH_STOP_WORDS} - drop


def baseline_recall(answer: str, q: Question) -> float:
    """Content-word recall of the best reference answer, question words removed."""
    drop = _baseline_words(q.text, set())
    got = _baseline_words(answer, drop)
    best = 0.0
    for ref in q.references:
        want = _baseline_words(ref, drop)
        if want:
            best = max(best, len(want & got) / len(want))
    return best


def tune_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    candidates = np.unique(scores)
    return float(max(candidates, key=lambda t: f1_score(labels, scores >= t, average="macro")))


# ---------------------------------------------------------------- features


def engine_features(answer: str, spec: ReflectionSpec, embedder: CachedEmbedder) -> tuple[list[float], list[str]]:
    analysis = analyze(answer, spec, embedder)
    f = analysis.features
    return [*(f[n] for n in FEATURE_NAMES), raw_score(f)], analysis.flags


def exemplar_row(answer: str, pool: list[tuple[str, str, bool]], skip_id: str | None, embedder) -> list[float]:
    """Exemplar features against a question's graded training answers (leaving out skip_id)."""
    others = [(text, float(ok)) for aid, text, ok in pool if aid != skip_id and text]
    if not others or not answer:
        return [0.0] * len(EXEMPLAR_NAMES)
    vecs = embedder([answer, *[t for t, _ in others]])
    ex = exemplar_features(vecs[0], vecs[1:], [s for _, s in others])
    return [ex[n] for n in EXEMPLAR_NAMES]


@dataclass
class SplitData:
    X: np.ndarray
    X_ex: np.ndarray | None
    y: np.ndarray
    groups: list[str]
    baseline: np.ndarray
    flags: list[list[str]]


def featurize(questions: list[Question], embedder: CachedEmbedder, exemplar_pool: dict | None, loo: bool) -> SplitData:
    rows, ex_rows, y, groups, base, flags = [], [], [], [], [], []
    for q in questions:
        spec = spec_for(q)
        pool = exemplar_pool.get(q.id) if exemplar_pool is not None else None
        for aid, text, ok in q.answers:
            row, fl = engine_features(text, spec, embedder)
            rows.append(row)
            flags.append(fl)
            if pool is not None:
                ex_rows.append(exemplar_row(text, pool, aid if loo else None, embedder))
            y.append(ok)
            groups.append(q.id)
            base.append(baseline_recall(text, q))
    return SplitData(
        np.array(rows), np.array(ex_rows) if ex_rows else None, np.array(y), groups, np.array(base), flags
    )


def fit_model(X: np.ndarray, y: np.ndarray, groups: list[str]):
    """Additive logistic model plus a decision threshold tuned for macro-F1 on held-out questions.

    Splines let each feature act non-linearly (similarities matter most in their middle range)
    while the model stays additive and inspectable; scaling first keeps the knots sensible.
    """
    model = make_pipeline(
        StandardScaler(), SplineTransformer(n_knots=4, degree=2), LogisticRegression(C=0.1, max_iter=5000)
    )
    held_out = cross_val_predict(model, X, y, groups=groups, cv=GroupKFold(5), method="predict_proba")[:, 1]
    threshold = float(max(np.arange(0.25, 0.75, 0.01), key=lambda t: f1_score(y, held_out >= t, average="macro")))
    return model.fit(X, y), threshold


# ---------------------------------------------------------------- gaming suite

_AUX = re.compile(r"\b(is|are|was|were|will|can|could|would|should|does|do|did|has|have|had|must)\b", re.I)
_FILLER = [
    "This is a very interesting question that we talked about in class.",
    "I learned a lot from doing this investigation with my group.",
    "Science helps us understand the world around us every day.",
    "My teacher explained this topic and I think I understand it now.",
    "There are many different things to think about here.",
    "We wrote everything down in our science notebooks carefully.",
    "It is important to be careful and to observe closely.",
    "Our results were similar to the results of the other groups.",
]


def negate(text: str) -> str:
    m = _AUX.search(text)
    if m:
        return text[: m.end()] + " not" + text[m.end() :]
    return "It is not true that " + text[0].lower() + text[1:]


def gamed_answers(q: Question) -> dict[str, str]:
    ref = q.references[0]
    spec = spec_for(q)
    keywords = list(dict.fromkeys(w for w in tokens(ref) if content_stems(w)))
    padding, i = ref, 0
    while len(tokens(padding)) <= 1.6 * spec.expected_words[1]:
        padding += " " + _FILLER[i % len(_FILLER)] + " " + q.text
        i += 1
    return {
        "question_pasted": q.text,
        "keyword_list": ", ".join(keywords),
        "reference_copy": ref,
        "padding": padding,
        "correct_then_contradicting": f"{ref} Actually, {negate(ref)[0].lower()}{negate(ref)[1:]}",
    }


def run_gaming(test: dict[str, list[Question]], models: dict, embedder: CachedEmbedder, pool: dict):
    passed, flagged, predicted_correct = Counter(), Counter(), Counter()
    total = Counter()
    for split, questions in test.items():
        model, threshold, use_ex = models[split]
        for q in questions:
            spec = spec_for(q)
            for kind, text in gamed_answers(q).items():
                row, flags = engine_features(text, spec, embedder)
                if use_ex:
                    row = row + exemplar_row(text, pool[q.id], None, embedder)
                correct = model.predict_proba(np.array([row]))[0, 1] >= threshold
                total[kind] += 1
                flagged[kind] += bool(flags)
                predicted_correct[kind] += bool(correct)
                passed[kind] += bool(correct and not flags)
    return total, flagged, predicted_correct, passed


# ---------------------------------------------------------------- main


def prefetch(embedder: CachedEmbedder, data: dict[str, list[Question]]) -> None:
    texts = []
    for split, questions in data.items():
        for q in questions:
            spec = spec_for(q)
            answers = [a for _, a, _ in q.answers]
            if split in SPLIT_NAMES:
                answers += list(gamed_answers(q).values())
            for a in answers:
                texts += analysis_texts(a, spec)
    embedder.prefetch(texts)


def report(name: str, y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    acc, f1 = accuracy_score(y, pred), f1_score(y, pred, average="macro")
    print(f"    {name:<34} accuracy {acc:.3f}   macro-F1 {f1:.3f}")
    return acc, f1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="path of semeval-3way.zip")
    parser.add_argument("--cache", type=Path, help="embedding cache file (.npz), outside the repo")
    args = parser.parse_args()
    if not args.zip.is_file():
        print(f"SemEval-2013 Task 7 data not found at {args.zip}; skipping the benchmark.")
        return 0
    t0 = time.time()
    with zipfile.ZipFile(args.zip) as zf:
        data = {split: load_split(zf, prefix) for split, prefix in SPLITS.items()}
    for split, qs in data.items():
        n = sum(len(q.answers) for q in qs)
        share = np.mean([ok for q in qs for _, _, ok in q.answers])
        print(f"{split:>5}: {len(qs):4d} questions, {n:5d} answers, {share:.0%} correct")

    embedder = CachedEmbedder(args.cache)
    prefetch(embedder, data)
    embedder.save()
    print(f"embedded {len(embedder.table)} distinct texts in {time.time() - t0:.0f} s")

    pool = {q.id: q.answers for q in data["train"]}
    train = featurize(data["train"], embedder, pool, loo=True)
    tests = {s: featurize(data[s], embedder, pool if s == "ua" else None, loo=False) for s in SPLIT_NAMES}

    base_threshold = tune_threshold(train.baseline, train.y)
    model, threshold = fit_model(train.X, train.y, train.groups)
    X_ex = np.hstack([train.X, train.X_ex])
    model_ex, threshold_ex = fit_model(X_ex, train.y, train.groups)

    out: dict[str, float | int] = {}
    print(f"\nAgreement with the human 2-way labels (threshold tuned on training; baseline recall >= {base_threshold:.2f})")
    for split, name in SPLIT_NAMES.items():
        d = tests[split]
        print(f"  test-{name.replace(' ', '-')} ({len(d.y)} answers)")
        _, base_f1 = report("baseline: reference-word recall", d.y, d.baseline >= base_threshold)
        _, f1 = report("scorer features (additive logit)", d.y, model.predict_proba(d.X)[:, 1] >= threshold)
        out[f"{split}_f1"] = round(f1, 3)
        out[f"baseline_{split}_f1"] = round(base_f1, 3)
        if split == "ua":
            pred = model_ex.predict_proba(np.hstack([d.X, d.X_ex]))[:, 1] >= threshold_ex
            _, f1_ex = report("  + graded training answers", d.y, pred)
            out["ua_f1"] = round(f1_ex, 3)
        flagged = Counter(f for fl in d.flags for f in fl)
        any_flag = np.mean([bool(fl) for fl in d.flags])
        print(f"    honest answers sent to review by a flag: {any_flag:.1%} {dict(flagged)}")

    models = {"ua": (model_ex, threshold_ex, True), "uq": (model, threshold, False), "ud": (model, threshold, False)}
    total, flagged, predicted, passed = run_gaming({s: data[s] for s in SPLIT_NAMES}, models, embedder, pool)
    print("\nGaming suite (answers built from the test questions)")
    print(f"  {'form':<28} {'answers':>7} {'flagged':>8} {'classed correct':>16} {'passed unflagged':>17}")
    for kind in total:
        print(f"  {kind:<28} {total[kind]:7d} {flagged[kind]:8d} {predicted[kind]:16d} {passed[kind]:17d}")
    out["gamed_passed"] = int(sum(passed.values()))
    print(f"\nscorer F1 uses the exemplar model on unseen answers; total time {time.time() - t0:.0f} s")
    print(json.dumps({k: out[k] for k in ("ua_f1", "uq_f1", "ud_f1", "baseline_ua_f1", "baseline_uq_f1", "baseline_ud_f1", "gamed_passed")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
