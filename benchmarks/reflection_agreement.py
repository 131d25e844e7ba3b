"""Agreement of the reflection scorer with human labels on SemEval-2013 Task 7 (SciEntsBank, 2-way).

Not a test: run it by hand, `python benchmarks/reflection_agreement.py` from the repo root
(`--subset 20` for a quick look at 20 questions per split).

The data (CC BY-SA 3.0, Dzikovska et al. 2013, "SemEval-2013 Task 7: The Joint Student Response
Analysis and 8th Recognizing Textual Entailment Challenge") is read in place from
`<repo>/../shared/data/semeval2013-task7/semeval-3way.zip` (the folder beside the checkout;
AUTOGRADER_SEMEVAL_ZIP or --zip override); nothing of it is copied or written out.

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
4. Reference-only mode: the same with items that have no criteria, only the reference answer
   (the engine derives criteria from it), as an instructor in a hurry writes them.
5. False flags: the share of answers labelled correct (SciEntsBank and Beetle test splits)
   that get any flag, per flag.
6. The suggestions themselves, with default settings and one course calibration fitted from
   the training split's (raw score, label) pairs: Pearson r and RMSE of the suggested share
   against the 3-way labels as 1/0/0, and stress sets built from the test items (another
   question's correct answer, placeholders, the question pasted, a keyword list of the
   reference, the reference negated, the reference padded with off-topic text), each of which
   must stay below half points unless routed to review.
7. Few-shot mode, the instructor's workflow: k graded answers per test item (k=10) are its
   only references and its calibration (fit_course over the items); the rest are suggested.
   Share of suggestions equal to the label and not routed, share off by half or more and not
   routed, RMSE, against suggesting the mean of the k grades; and the item check (fitting.check_item):
   how often the graded answers, each suggested without its grade, were missed, against how
   often the rest of the same item was.

The last line printed is one line of JSON with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
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
from scipy.stats import pearsonr, spearmanr  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402
from sklearn.model_selection import GroupKFold, cross_val_predict  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import SplineTransformer, StandardScaler  # noqa: E402

from autograder.reflection.calibration import exemplar_features, fit_pairs  # noqa: E402
from autograder.reflection.fitting import fit_course  # noqa: E402
from autograder.reflection.concepts import content_stems, split_sentences, tokens  # noqa: E402
from autograder.reflection.gaming import COPY_MIN_WORDS, NO_REVIEW_FLAGS  # noqa: E402
from autograder.reflection.embedding import embed  # noqa: E402
from autograder.reflection.scorer import (  # noqa: E402
    FEATURE_NAMES,
    REVIEW_BELOW,
    analysis_texts,
    analyze,
    course_embedder,
    item_spec,
    raw_score,
    suggestion_for,
)
from autograder.reflection.spec import Criterion, ReflectionSpec  # noqa: E402

DEFAULT_ZIP = Path(
    os.environ.get("AUTOGRADER_SEMEVAL_ZIP")
    or REPO.parent / "shared" / "data" / "semeval2013-task7" / "semeval-3way.zip"
)
BEETLE = {
    "beetle_ua": "test/2way/beetle/test-unseen-answers/",
    "beetle_uq": "test/2way/beetle/test-unseen-questions/",
}
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


def spec_for(q: Question, ref_only: bool = False, references: list[str] | None = None) -> ReflectionSpec:
    """A one-point item whose single criterion is the reference answer itself, or (ref_only)
    without criteria, as a reference-only item (the engine derives them)."""
    refs = tuple(references or q.references)
    ref_words = max(len(tokens(r)) for r in refs)
    return ReflectionSpec(
        id=q.id,
        question=q.text,
        points=1.0,
        reference_answers=refs,
        criteria=() if ref_only else (Criterion("reference", 1.0, refs),),
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
    return feature_row(analysis), analysis.flags


def feature_row(analysis) -> list[float]:
    f = analysis.features
    return [*(f[n] for n in FEATURE_NAMES), raw_score(f)]


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
    analyses: list  # (question, spec, answer id, text, label, Analysis)


def featurize(
    questions: list[Question], embedder: CachedEmbedder, exemplar_pool: dict | None, loo: bool,
    ref_only: bool = False,
) -> SplitData:
    rows, ex_rows, y, groups, base, flags, analyses = [], [], [], [], [], [], []
    for q in questions:
        spec = spec_for(q, ref_only)
        pool = exemplar_pool.get(q.id) if exemplar_pool is not None else None
        for aid, text, ok in q.answers:
            analysis = analyze(text, spec, embedder)
            rows.append(feature_row(analysis))
            flags.append(analysis.flags)
            analyses.append((q, spec, aid, text, ok, analysis))
            if pool is not None:
                ex_rows.append(exemplar_row(text, pool, aid if loo else None, embedder))
            y.append(ok)
            groups.append(q.id)
            base.append(baseline_recall(text, q))
    return SplitData(
        np.array(rows), np.array(ex_rows) if ex_rows else None, np.array(y), groups, np.array(base), flags,
        analyses,
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
                # a short hidden reference is what a student who learned the course writes
                honest = kind == "reference_copy" and len(tokens(text)) < COPY_MIN_WORDS
                passed[kind] += bool(correct and not flags and not honest)
    return total, flagged, predicted_correct, passed


# ---------------------------------------------------------------- suggestions, stress sets

PLACEHOLDERS = ("NO ANSWER", "idk", "-", "see above")
_OFF_TOPIC = [
    "My favourite food is pizza and I like to eat it on Fridays with my family.",
    "The football team from our town won the match last weekend after a long season.",
    "Yesterday it rained a lot so we stayed inside and played board games all afternoon.",
    "My cousin has a new bicycle that is red and has twelve gears and a bell.",
]


def module(q: Question) -> str:
    return q.id.split("_")[0]


def stress_answers(q: Question, others: list[Question]) -> dict[str, str]:
    """Answers that deserve less than half points, built from the item and its split."""
    ref = q.references[0]
    keywords = list(dict.fromkeys(w for w in tokens(ref) if content_stems(w)))
    padded, i = ref, 0
    while len(tokens(padded)) <= 3 * len(tokens(ref)) + 20:
        padded += " " + _OFF_TOPIC[i % len(_OFF_TOPIC)]
        i += 1
    # another question's correct answer: the next question of another module (another topic)
    start = others.index(q)
    other = next(
        (o for o in others[start + 1 :] + others[:start] if module(o) != module(q)),
        others[(start + 1) % len(others)],
    )
    other_answer = next((t for _, t, ok in other.answers if ok and t), other.references[0])
    out = {f"placeholder {p!r}": p for p in PLACEHOLDERS}
    out.update({
        "other_question_correct": other_answer,
        "question_pasted": q.text,
        "keyword_list": ", ".join(keywords),
        "reference_negated": " ".join(negate(sentence) for sentence in split_sentences(ref)),
        "reference_padded_off_topic": padded,
    })
    return out


def course_calibration(train: SplitData):
    """One course curve from the training split's (raw score, label) pairs (reference-only items)."""
    pairs = [(row[-1], float(y)) for row, y in zip(train.X, train.y)]
    return fit_pairs(pairs, "")


def suggested_shares(d: SplitData, calibration, embedder) -> tuple[np.ndarray, list]:
    suggestions = [suggestion_for(a, spec, calibration, embedder) for _, spec, _, _, _, a in d.analyses]
    return np.array([s.points / s.max_points for s in suggestions]), suggestions


def run_stress(test: dict[str, list[Question]], calibration, embedder) -> tuple[Counter, Counter, Counter, list]:
    total, passed, low, failures = Counter(), Counter(), Counter(), []
    for split, questions in test.items():
        for q in questions:
            spec = spec_for(q, ref_only=True)
            for kind, text in stress_answers(q, questions).items():
                kind_key = kind.split(" ")[0]
                s = suggestion_for(analyze(text, spec, embedder), spec, calibration, embedder)
                ok = s.needs_review or s.points < 0.5 * s.max_points
                total[kind_key] += 1
                passed[kind_key] += ok
                low[kind_key] += s.points < 0.5 * s.max_points
                if not ok:
                    failures.append((split, q.id, kind, text[:80], s.points, s.confidence))
    return total, passed, low, failures


# ---------------------------------------------------------------- few-shot


def few_shot(questions: list[Question], k: int, embedder, seed: int = 0, own_reference: bool = False,
             reading: bool = True) -> dict[str, float]:
    """k graded answers per item as its only references and calibration; suggest the rest.
    own_reference: the item keeps its own reference answer; the k graded answers are its
    calibration, and those with full points join its references (what `autograder calibrate`
    does with grades given in formgrader). reading: the course's reading is learned from the
    k graded answers first, as `autograder calibrate` does by default."""
    rng = np.random.default_rng(seed)
    items, held = [], []
    for q in questions:
        if len(q.answers) < k + 5:
            continue
        order = rng.permutation(len(q.answers))
        graded = [q.answers[i] for i in order[:k]]
        rest = [q.answers[i] for i in order[k:]]
        correct = [t for _, t, ok in graded if ok and t.strip()]
        spec = spec_for(q, ref_only=True, references=None if own_reference else correct or None)
        items.append((spec, [(t, float(ok)) for _, t, ok in graded]))
        held.append((spec, rest, np.mean([ok for _, _, ok in graded])))
    if not reading:
        embedder.prefetch([t for spec, graded in items for a, _ in graded for t in analysis_texts(a, spec)])
    started = time.time()
    calibrations = fit_course(items, embedder, learn_reading=reading, log=lambda m: print("   ", m, flush=True))
    fit_s = time.time() - started
    points, labels, routed, means, conf, shares, flagged = [], [], [], [], [], [], []
    for spec, rest, mean_k in held:
        cal = calibrations[spec.id]
        seen = item_spec(spec, cal)   # with the graded answers that got full points, as `suggest` reads it
        read = course_embedder(embedder, cal)   # the course's reading when one was learned
        if read is embedder:
            embedder.prefetch([t for _, a, _ in rest for t in analysis_texts(a, seen)] + [a for a, _ in cal.exemplars])
        for _, text, ok in rest:
            own = item_spec(spec, cal, text)
            s = suggestion_for(analyze(text, own, read), own, cal, read)
            points.append(s.points)
            labels.append(float(ok))
            routed.append(s.needs_review)
            means.append(mean_k)
            conf.append(s.confidence)
            shares.append(s.share_before_caps)
            flagged.append(any(f not in NO_REVIEW_FLAGS for f in s.flags))
    points, labels, routed, means = map(np.array, (points, labels, routed, means))
    # the item check (fitting.check_item): its misses on the k graded answers against the share
    # of the item's other answers whose suggested share is off by half, routed or not (routing
    # already uses the check)
    cals = [calibrations[spec.id] for spec, _, _ in held]
    sizes = np.cumsum([0] + [len(rest) for _, rest, _ in held])
    wrong = np.abs(np.array(shares) - labels) >= 0.5
    off_item = [float(wrong[a:b].mean()) for a, b in zip(sizes, sizes[1:])]
    check = {
        "checked": sum(c.checked for c in cals),
        "missed": sum(c.missed for c in cals),
        "penalised_items": sum(c.reliability_penalty() > 0 for c in cals),
        "spearman": float(spearmanr([c.missed / max(1, c.checked) for c in cals], off_item)[0]),
    }
    # the trade-off the review line makes: what other lines would give (step-rounded share)
    right = np.round(np.array(shares)) == labels
    curve = []
    for line in (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
        sure = (np.array(conf) >= line) & ~np.array(flagged)
        curve.append((line, float((sure & right).mean()), float((sure & ~right).mean())))
    exact = (np.abs(points - labels) < 1e-9) & ~routed
    off = (np.abs(points - labels) >= 0.5) & ~routed
    return {
        "line": cals[0].review_below,
        "reading": cals[0].reading is not None,
        "fit_s": fit_s,
        "items": len(items),
        "answers": len(labels),
        "exact_unrouted": float(exact.mean()),
        "off_half_unrouted": float(off.mean()),
        "routed": float(routed.mean()),
        "rmse": float(np.sqrt(np.mean((points - labels) ** 2))),
        "mean_rmse": float(np.sqrt(np.mean((means - labels) ** 2))),
        "curve": curve,
        "check": check,
    }


# ---------------------------------------------------------------- main


def prefetch(embedder: CachedEmbedder, data: dict[str, list[Question]]) -> None:
    texts = []
    for split, questions in data.items():
        for q in questions:
            spec = spec_for(q)
            answers = [a for _, a, _ in q.answers]
            if split in SPLIT_NAMES:
                answers += list(gamed_answers(q).values()) + list(stress_answers(q, questions).values())
            for a in answers:
                texts += analysis_texts(a, spec)
                if split in SPLIT_NAMES:
                    texts += analysis_texts(a, spec_for(q, ref_only=True))
    embedder.prefetch(texts)


def report(name: str, y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    acc, f1 = accuracy_score(y, pred), f1_score(y, pred, average="macro")
    print(f"    {name:<34} accuracy {acc:.3f}   macro-F1 {f1:.3f}")
    return acc, f1


def load(zf: zipfile.ZipFile, prefixes: dict[str, str], subset: int | None) -> dict[str, list[Question]]:
    data = {split: load_split(zf, prefix) for split, prefix in prefixes.items()}
    if subset:
        data = {split: qs[:: max(1, len(qs) // subset)][:subset] for split, qs in data.items()}
    return data


def three_way_labels(zf: zipfile.ZipFile, split: str) -> dict[str, str]:
    prefix = SPLITS[split].replace("/2way/", "/3way/")
    out = {}
    for name in (n for n in zf.namelist() if n.startswith(prefix) and n.endswith(".xml")):
        for a in ET.fromstring(zf.read(name)).find("studentAnswers"):
            out[a.get("id")] = a.get("accuracy")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="path of semeval-3way.zip")
    parser.add_argument("--cache", type=Path, help="embedding cache file (.npz), outside the repo")
    parser.add_argument("--subset", type=int, help="only this many questions per split (quick look)")
    parser.add_argument("--k", type=int, default=10, help="graded answers per item in the few-shot mode")
    parser.add_argument("--draws", type=int, default=3, help="draws of the k graded answers (the few-shot shares are their mean)")
    parser.add_argument("--no-reading", action="store_true",
                        help="few-shot mode without the course's reading (`autograder calibrate --no-reading`)")
    args = parser.parse_args()
    if not args.zip.is_file():
        print(f"SemEval-2013 Task 7 data not found at {args.zip}; skipping the benchmark.")
        return 0
    t0 = time.time()
    with zipfile.ZipFile(args.zip) as zf:
        data = load(zf, SPLITS, args.subset)
        beetle = load(zf, BEETLE, args.subset)
        labels3 = {s: three_way_labels(zf, s) for s in SPLIT_NAMES}
    for split, qs in {**data, **beetle}.items():
        n = sum(len(q.answers) for q in qs)
        share = np.mean([ok for q in qs for _, _, ok in q.answers])
        print(f"{split:>9}: {len(qs):4d} questions, {n:5d} answers, {share:.0%} correct")

    embedder = CachedEmbedder(args.cache)
    prefetch(embedder, {**data, **beetle})
    embedder.save()
    print(f"embedded {len(embedder.table)} distinct texts in {time.time() - t0:.0f} s")

    pool = {q.id: q.answers for q in data["train"]}
    out: dict[str, float | int] = {}
    models = {}
    for mode in ("criteria", "ref_only"):
        ref_only = mode == "ref_only"
        prefix = "ref_only_" if ref_only else ""
        train = featurize(data["train"], embedder, pool, loo=True, ref_only=ref_only)
        tests = {
            s: featurize(data[s], embedder, pool if s == "ua" and not ref_only else None, loo=False, ref_only=ref_only)
            for s in SPLIT_NAMES
        }
        base_threshold = tune_threshold(train.baseline, train.y)
        model, threshold = fit_model(train.X, train.y, train.groups)
        if not ref_only:
            model_ex, threshold_ex = fit_model(np.hstack([train.X, train.X_ex]), train.y, train.groups)
            models = {"ua": (model_ex, threshold_ex, True), "uq": (model, threshold, False), "ud": (model, threshold, False)}
        else:  # the suggestions below are measured as the hold-outs were: reference answers only
            kept_train, kept_tests = train, tests
        title = "reference answers only, criteria derived" if ref_only else "the reference as the criterion"
        print(f"\nAgreement with the human 2-way labels, {title} "
              f"(threshold tuned on training; baseline recall >= {base_threshold:.2f})")
        for split, name in SPLIT_NAMES.items():
            d = tests[split]
            print(f"  test-{name.replace(' ', '-')} ({len(d.y)} answers)")
            _, f1 = report("scorer features (additive logit)", d.y, model.predict_proba(d.X)[:, 1] >= threshold)
            out[f"{prefix}{split}_f1"] = round(f1, 3)
            if not ref_only:
                _, base_f1 = report("baseline: reference-word recall", d.y, d.baseline >= base_threshold)
                out[f"baseline_{split}_f1"] = round(base_f1, 3)
            if split == "ua" and not ref_only:
                pred = model_ex.predict_proba(np.hstack([d.X, d.X_ex]))[:, 1] >= threshold_ex
                _, f1_ex = report("  + graded training answers", d.y, pred)
                out["ua_f1"] = round(f1_ex, 3)

    # false flags: honest (correct-labelled) answers that get any flag
    honest = [fl for d in kept_tests.values() for fl, ok in zip(d.flags, d.y) if ok]
    beetle_honest = [
        analyze(t, spec_for(q, ref_only=True), embedder).flags for qs in beetle.values() for q in qs for _, t, ok in q.answers if ok
    ]
    all_honest = honest + beetle_honest
    out["false_flag_rate"] = round(float(np.mean([bool(f) for f in all_honest])), 4)
    print(f"\nFalse flags on answers labelled correct: {out['false_flag_rate']:.1%} of {len(all_honest)}")
    for name, flags in (("SciEntsBank", honest), ("Beetle", beetle_honest)):
        per = Counter(f for fl in flags for f in fl)
        print(f"  {name:<12} {np.mean([bool(f) for f in flags]):.1%} of {len(flags)}  {dict(per)}")

    total, flagged, predicted, passed = run_gaming({s: data[s] for s in SPLIT_NAMES}, models, embedder, pool)
    print("\nGaming suite (answers built from the test questions; a copy of a reference shorter than "
          f"{COPY_MIN_WORDS} words is not counted as passing: students write such sentences themselves)")
    print(f"  {'form':<28} {'answers':>7} {'flagged':>8} {'classed correct':>16} {'passed unflagged':>17}")
    for kind in total:
        print(f"  {kind:<28} {total[kind]:7d} {flagged[kind]:8d} {predicted[kind]:16d} {passed[kind]:17d}")
    out["gamed_passed"] = int(sum(passed.values()))

    # suggestions with default settings and one course calibration from the training labels
    calibration = course_calibration(kept_train)
    print("\nSuggested share against the 3-way labels (correct 1, contradictory 0, incorrect 0), reference-only "
          f"items, course calibration from {calibration.n_graded} training answers")
    shares, labels = [], []
    for split, name in SPLIT_NAMES.items():
        d = kept_tests[split]
        sh, _ = suggested_shares(d, calibration, embedder)
        y3 = np.array([labels3[split].get(aid) == "correct" for _, _, aid, _, _, _ in d.analyses], float)
        r = pearsonr(sh, y3)[0]
        print(f"  test-{name.replace(' ', '-'):<22} r {r:.3f}   RMSE {np.sqrt(np.mean((sh - y3) ** 2)):.3f}")
        shares += sh.tolist()
        labels += y3.tolist()
    shares, labels = np.array(shares), np.array(labels)
    out["r_3way"] = round(float(pearsonr(shares, labels)[0]), 3)
    out["rmse_3way"] = round(float(np.sqrt(np.mean((shares - labels) ** 2))), 3)
    print(f"  all test answers            r {out['r_3way']:.3f}   RMSE {out['rmse_3way']:.3f} "
          f"(the label mean would give RMSE {np.std(labels):.3f})")

    s_total, s_passed, s_low, failures = run_stress({s: data[s] for s in SPLIT_NAMES}, calibration, embedder)
    print("\nStress sets: passed (below half points, or routed to review) / total; below half points")
    for kind in s_total:
        print(f"  {kind:<28} {s_passed[kind]:5d} / {s_total[kind]:5d}   {s_low[kind]:5d} below half")
    for f in failures[:12]:
        print("    failed:", f)
    out["stress_passed"] = int(sum(s_passed.values()))
    out["stress_total"] = int(sum(s_total.values()))

    # one draw of the k graded answers moves the shares by several points: the mean of a few
    draws = [few_shot(data["uq"] + data["ud"], args.k, embedder, seed=seed, reading=not args.no_reading) for seed in range(args.draws)]
    fs = {key: float(np.mean([d[key] for d in draws]))
          for key in ("exact_unrouted", "off_half_unrouted", "routed", "rmse", "mean_rmse")}
    print(f"\nFew-shot, k={args.k} graded answers per item as its references and calibration "
          f"({draws[0]['items']} items, {draws[0]['answers']} answers suggested; {len(draws)} draws of the k)")
    for seed, d in enumerate(draws):
        ck = d["check"]
        line = f"{d['line']:.2f} (set from the checks)" if d["line"] is not None else f"{REVIEW_BELOW} (default)"
        print(f"  draw {seed}: equal to the label and not routed {d['exact_unrouted']:.1%}; off by half or more "
              f"and not routed {d['off_half_unrouted']:.1%}; routed {d['routed']:.1%}; RMSE {d['rmse']:.3f} "
              f"(mean of the k grades {d['mean_rmse']:.3f}); review line {line}; "
              + (f"course reading learned, fitting took {d['fit_s']:.0f} s" if d["reading"] else "MiniLM as shipped"))
        print(f"          item check: {ck['missed']} of {ck['checked']} graded answers missed (off by half, not "
              f"routed, suggested without their grade); {ck['penalised_items']} items lose confidence for it; "
              f"Spearman {ck['spearman']:.2f} between an item's misses and its share of the rest off by half")
    print(f"  mean: equal and not routed {fs['exact_unrouted']:.1%}; off and not routed {fs['off_half_unrouted']:.1%}; "
          f"RMSE {fs['rmse']:.3f} (mean of the k grades: {fs['mean_rmse']:.3f})")
    print("  fixed review lines instead (confidence below the line is routed), mean of the draws: line, equal and "
          "not routed, off and not routed")
    for i, (line, _, _) in enumerate(draws[0]["curve"]):
        exact, off = (float(np.mean([d["curve"][i][j] for d in draws])) for j in (1, 2))
        print(f"    {line:.2f}  {exact:6.1%}  {off:6.1%}" + ("   <- REVIEW_BELOW, the default" if abs(line - REVIEW_BELOW) < 1e-9 else ""))
    own = [few_shot(data["uq"] + data["ud"], args.k, embedder, seed=seed, own_reference=True, reading=not args.no_reading)
           for seed in range(args.draws)]
    own_fs = {key: float(np.mean([d[key] for d in own])) for key in ("exact_unrouted", "off_half_unrouted", "rmse")}
    print(f"  the item's own reference kept, the k graded answers calibrate it and those with full points join "
          f"its references (the `calibrate` workflow): "
          f"equal and not routed {own_fs['exact_unrouted']:.1%}; off and not routed {own_fs['off_half_unrouted']:.1%}; "
          f"RMSE {own_fs['rmse']:.3f}; by draw " + ", ".join(
              f"{d['exact_unrouted']:.1%} / {d['off_half_unrouted']:.1%} at line "
              f"{REVIEW_BELOW if d['line'] is None else d['line']:.2f}" for d in own))
    for i, (line, _, _) in enumerate(own[0]["curve"]):
        if abs(line - REVIEW_BELOW) < 1e-9:
            exact, off = (float(np.mean([d["curve"][i][j] for d in own])) for j in (1, 2))
            print(f"    at the default line {REVIEW_BELOW} instead: {exact:.1%} / {off:.1%}")
    out[f"fewshot_k{args.k}_own_reference_exact_unrouted"] = round(own_fs["exact_unrouted"], 3)
    out[f"fewshot_k{args.k}_own_reference_off_half_unrouted"] = round(own_fs["off_half_unrouted"], 3)
    out[f"fewshot_k{args.k}_exact_unrouted"] = round(fs["exact_unrouted"], 3)
    out[f"fewshot_k{args.k}_rmse"] = round(fs["rmse"], 3)
    out[f"fewshot_k{args.k}_mean_rmse"] = round(fs["mean_rmse"], 3)
    out[f"fewshot_k{args.k}_off_half_unrouted"] = round(fs["off_half_unrouted"], 3)
    out["fewshot_reading"] = all(d["reading"] for d in draws + own)
    embedder.save()

    print(f"\nscorer F1 uses the exemplar model on unseen answers; total time {time.time() - t0:.0f} s")
    keys = ("ua_f1", "uq_f1", "ud_f1", "baseline_ua_f1", "baseline_uq_f1", "baseline_ud_f1", "gamed_passed",
            "ref_only_ua_f1", "ref_only_uq_f1", "ref_only_ud_f1", "false_flag_rate", "stress_passed",
            "stress_total", "r_3way", "rmse_3way")
    print(json.dumps({**{k: out[k] for k in keys}, **{k: v for k, v in out.items() if k.startswith("fewshot")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
