"""The trained guard: linear heads over multilingual sentence embeddings, loaded from one artifact.

Scoring a request (text already hardened):
0. a topic head on that embedding (below) tells whether the text is about health at all: greetings,
   small talk and everyday tasks are allowed whatever the other heads say;
1. the *overview* (whole text, or head + tail of a long one) is embedded; the decision head reads
   that embedding together with the overview's hashed character and word n-grams and gives a logit,
   refused at or above its threshold;
2. in a long text, the sentence window outside the overview that a hashed n-gram model ranks most
   suspicious is embedded too; the window head gives a second logit with its own threshold, so an
   ask buried in the middle is still found while exam vignettes stay allowed;
3. a category head (multi-class, same embedding) names what kind of request it is, including
   emergencies; a language head (hashed n-grams) picks the language of the refusal text.

Everything is deterministic: the embedder is, and the heads are fixed arrays.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import features

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifact"
ARTIFACT_WEIGHTS = ARTIFACT_DIR / "guard.npz"
ARTIFACT_CARD = ARTIFACT_DIR / "guard.json"

LANGUAGE_DIM = 2**15  # the language head reads the n-gram hashes folded to this size
MIN_LANGUAGE_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Scores:
    """What the model says about one request."""

    decision: float  # logit of the overview minus its threshold; >= 0 means refuse
    window: float | None  # the same for the most suspicious middle window, if one was read
    category: str  # the most likely category, among the refused ones when refused
    emergency: float  # margin of the emergency head over its advice threshold
    language: str  # ISO 639-1 code, or "" when unsure

    @property
    def refused(self) -> bool:
        return self.worst >= 0

    @property
    def worst(self) -> float:
        return max(self.decision, self.window if self.window is not None else -math.inf)

    @property
    def probability(self) -> float:
        """A 0-1 clinical score, 0.5 at the refusal line (the logistic of the worst margin)."""
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, self.worst))))


@dataclass(frozen=True)
class GuardModel:
    topic_weight: np.ndarray  # (384,) health-related or everyday, over the overview's embedding
    topic_bias: float
    topic_threshold: float  # below it, the text is everyday and allowed
    decision_weight: np.ndarray  # (384,) over the overview's embedding
    decision_ngram_weight: np.ndarray  # (NGRAM_DIM,) over the overview's hashed n-grams
    decision_bias: float
    decision_threshold: float
    window_weight: np.ndarray  # (384,)
    window_bias: float
    window_threshold: float
    ranker_weight: np.ndarray  # (NGRAM_DIM,) n-gram model that picks the window to read
    ranker_bias: float
    category_weight: np.ndarray  # (categories, 384)
    category_bias: np.ndarray
    categories: tuple[str, ...]
    refused_categories: tuple[str, ...]
    emergency_weight: np.ndarray  # (384,) emergency-or-not, the one category that must never be missed
    emergency_bias: float
    emergency_threshold: float  # logit at which a refused request gets the emergency advice
    language_weight: np.ndarray  # (languages, LANGUAGE_DIM)
    language_bias: np.ndarray
    languages: tuple[str, ...]

    # -- scoring ---------------------------------------------------------------------------

    def score(self, text: str, embedder: features.Embedder) -> Scores:
        overview = features.overview(text)
        window = self._suspicious_window(text)
        vectors = embedder.embed([overview] if window is None else [overview, window])
        decision = float(vectors[0] @ self.decision_weight)
        decision += features.ngram_score(self.decision_ngram_weight, self.decision_bias, overview)
        decision -= self.decision_threshold
        window_margin = None
        if window is not None:
            window_margin = float(vectors[1] @ self.window_weight + self.window_bias) - self.window_threshold
        # Nothing about health is allowed whatever the rest says, scored by how far off topic. Each
        # part is judged on its own: a chatty long text can hide one health ask in its middle.
        topics = [float(vector @ self.topic_weight + self.topic_bias) - self.topic_threshold for vector in vectors]
        decision = min(decision, topics[0]) if topics[0] < 0 else decision
        if window_margin is not None and topics[1] < 0:
            window_margin = min(window_margin, topics[1])
        # The category comes from what was refused: the window when only it crossed the line.
        about = vectors[1] if window_margin is not None and window_margin >= 0 > decision else vectors[0]
        refused = max(decision, window_margin if window_margin is not None else -math.inf) >= 0
        emergency = max(float(vector @ self.emergency_weight + self.emergency_bias) for vector in vectors)
        emergency -= self.emergency_threshold
        if refused and emergency >= 0:
            category = "emergency"
        else:
            logits = self.category_weight @ about + self.category_bias
            pool = [i for i, name in enumerate(self.categories)
                    if (name in self.refused_categories) == refused and name != "emergency"]
            category = self.categories[max(pool, key=lambda i: logits[i])]
        return Scores(decision=decision, window=window_margin, category=category, emergency=emergency,
                      language=self.language(text))

    def _suspicious_window(self, text: str) -> str | None:
        candidates = features.middle_windows(text)
        if not candidates:
            return None
        ranks = [features.ngram_score(self.ranker_weight, self.ranker_bias, window) for window in candidates]
        return candidates[int(np.argmax(ranks))]

    def language(self, text: str) -> str:
        grams = features.ngram_indices(text)
        if not grams:
            return ""
        folded: dict[int, float] = {}
        for index, value in grams.items():
            folded[index % LANGUAGE_DIM] = folded.get(index % LANGUAGE_DIM, 0.0) + value
        indices = np.fromiter(folded.keys(), dtype=np.int64, count=len(folded))
        values = np.fromiter(folded.values(), dtype=np.float64, count=len(folded))
        probabilities = _softmax(self.language_weight[:, indices].astype(np.float64) @ values + self.language_bias)
        best = int(np.argmax(probabilities))
        return self.languages[best] if probabilities[best] >= MIN_LANGUAGE_CONFIDENCE else ""

    # -- storage ---------------------------------------------------------------------------

    def save(self, weights_path: Path = ARTIFACT_WEIGHTS) -> None:
        arrays = {
            "topic_weight": self.topic_weight.astype(np.float32),
            "decision_weight": self.decision_weight.astype(np.float32),
            "decision_ngram_weight": self.decision_ngram_weight.astype(np.float16),
            "window_weight": self.window_weight.astype(np.float32),
            "ranker_weight": self.ranker_weight.astype(np.float16),
            "category_weight": self.category_weight.astype(np.float32),
            "category_bias": self.category_bias.astype(np.float32),
            "emergency_weight": self.emergency_weight.astype(np.float32),
            "language_weight": self.language_weight.astype(np.float16),
            "language_bias": self.language_bias.astype(np.float32),
            "scalars": np.array([self.topic_bias, self.topic_threshold, self.decision_bias, self.decision_threshold,
                                 self.window_bias, self.window_threshold, self.ranker_bias, self.emergency_bias,
                                 self.emergency_threshold], dtype=np.float64),
            "categories": np.array(self.categories),
            "refused_categories": np.array(self.refused_categories),
            "languages": np.array(self.languages),
        }
        weights_path.parent.mkdir(parents=True, exist_ok=True)
        with weights_path.open("wb") as handle:  # a file handle keeps numpy from adding a suffix
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, weights_path: Path = ARTIFACT_WEIGHTS) -> GuardModel:
        with np.load(weights_path, allow_pickle=False) as data:
            (topic_bias, topic_threshold, decision_bias, decision_threshold, window_bias, window_threshold,
             ranker_bias, emergency_bias, emergency_threshold) = (float(value) for value in data["scalars"])
            return cls(
                topic_weight=data["topic_weight"].astype(np.float32),
                topic_bias=topic_bias,
                topic_threshold=topic_threshold,
                decision_weight=data["decision_weight"].astype(np.float32),
                decision_ngram_weight=data["decision_ngram_weight"].astype(np.float32),
                decision_bias=decision_bias,
                decision_threshold=decision_threshold,
                window_weight=data["window_weight"].astype(np.float32),
                window_bias=window_bias,
                window_threshold=window_threshold,
                ranker_weight=data["ranker_weight"].astype(np.float32),
                ranker_bias=ranker_bias,
                category_weight=data["category_weight"],
                category_bias=data["category_bias"],
                categories=tuple(str(name) for name in data["categories"]),
                refused_categories=tuple(str(name) for name in data["refused_categories"]),
                emergency_weight=data["emergency_weight"].astype(np.float32),
                emergency_bias=emergency_bias,
                emergency_threshold=emergency_threshold,
                language_weight=data["language_weight"],
                language_bias=data["language_bias"],
                languages=tuple(str(name) for name in data["languages"]),
            )


def read_card(card_path: Path = ARTIFACT_CARD) -> dict:
    """The artifact's card: what it was trained on, under which licences, and how it scored."""
    return json.loads(card_path.read_text(encoding="utf-8"))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()
