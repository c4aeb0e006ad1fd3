"""The non-clinical guard: decide, before any generation, whether a request is allowed.

Policy. A real, specific person's health situation (the asker, a relative or friend, a patient
being treated, a real animal) together with any clinical ask (diagnosis, treatment, medication or
dose, triage, or prognosis) is refused; emergencies are refused with emergency advice. Exam and
benchmark items (third-person vignettes, "Which of the following...", answer options), general
education about conditions, drugs and doses, and research, dataset and prompt-engineering work are
allowed. Framings ("hypothetically", "for a novel", "I am a doctor", "ignore your rules") change
nothing: the decision is about whether a real person's care is at stake.

How. The system prompt and the prompt are read together, hardened against disguises
(`normalize.harden`), and scored by a learned multilingual classifier (`model.GuardModel`:
multilingual-e5-small sentence embeddings and hashed n-grams with linear heads, trained by
`python -m medgemma train-guard`); first-person self-harm phrases (`lexicon`) are refused as
emergencies whatever the score. The same text always gets the same verdict. If anything in the
guard fails, the request is refused (fail closed) by the service.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..prompt import DEFAULT_SYSTEM_PROMPT
from .lexicon import mentions_self_harm
from .normalize import harden

DIAGNOSIS = "diagnosis"
TREATMENT = "treatment"
DOSING = "dosing"
TRIAGE = "triage"
PROGNOSIS = "prognosis"
EMERGENCY = "emergency"
ALLOWED_BENCHMARK = "allowed-benchmark"
ALLOWED_EDUCATION = "allowed-education"
ALLOWED_RESEARCH = "allowed-research"
ALLOWED_GENERAL = "allowed-general"
GUARD_ERROR = "guard-error"

REFUSED_CATEGORIES = (EMERGENCY, DOSING, TREATMENT, TRIAGE, DIAGNOSIS, PROGNOSIS, GUARD_ERROR)
ALLOWED_CATEGORIES = (ALLOWED_BENCHMARK, ALLOWED_EDUCATION, ALLOWED_RESEARCH, ALLOWED_GENERAL)

REASONS = {
    EMERGENCY: "this sounds like a medical emergency happening now, which needs real help, not a model.",
    DOSING: "it asks for a medication or dose decision for a real person or animal.",
    TREATMENT: "it asks for a treatment decision for a real person or animal.",
    TRIAGE: "it asks how urgently a real person or animal needs care, which is a triage decision.",
    DIAGNOSIS: "it asks for a diagnosis of a real person or animal, or of their own image or results.",
    PROGNOSIS: "it asks how a real person's or animal's condition will turn out.",
    GUARD_ERROR: "the safety check could not run, so the request was refused.",
    ALLOWED_BENCHMARK: "Exam or benchmark item; no decision about a real person is asked for.",
    ALLOWED_EDUCATION: "General educational request; no decision about a real person is asked for.",
    ALLOWED_RESEARCH: "Research, dataset or prompt-engineering request; no decision about a real person is asked for.",
    ALLOWED_GENERAL: "No clinical decision about a real person is asked for.",
}

@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str
    reason: str
    score: float | None = None  # the classifier's clinical score, 0-1, refused at >= 0.5
    language: str = ""  # the request's language (ISO 639-1) when the guard recognised it

    @property
    def emergency(self) -> bool:
        return self.category == EMERGENCY

    def as_dict(self) -> dict[str, object]:
        return {"allowed": self.allowed, "category": self.category, "reason": self.reason,
                "score": None if self.score is None else round(self.score, 4), "language": self.language}


def request_text(prompt: str, system_prompt: str | None = None) -> str:
    """What the guard reads: the caller's system prompt and prompt together, hardened."""
    # The default system prompt says nothing about anyone, so it is left out.
    system = (system_prompt or "").strip()
    joined = f"{system}\n{prompt}" if system and system != DEFAULT_SYSTEM_PROMPT else prompt
    return harden(joined)


class Guard:
    """The trained classifier and its embedder, loaded once (on `load()` or first use)."""

    def __init__(self, model=None, embedder=None):
        self._model = model
        self._embedder = embedder
        self._lock = threading.Lock()

    def load(self) -> Guard:
        with self._lock:
            if self._model is None:
                from .model import GuardModel

                self._model = GuardModel.load()
            if self._embedder is None:
                from .features import Embedder

                self._embedder = Embedder()
            self._embedder.load()
        return self

    @property
    def model(self):
        """The loaded GuardModel."""
        return self.load()._model

    def screen(self, prompt: str, *, system_prompt: str | None = None, has_image: bool = False) -> Verdict:
        """Classify one request. `has_image` is accepted for the record; the text carries the decision."""
        if self._model is None or self._embedder is None:
            self.load()
        text = request_text(prompt, system_prompt)
        scores = self._model.score(text, self._embedder)
        if mentions_self_harm(text):
            return Verdict(allowed=False, category=EMERGENCY, reason=REASONS[EMERGENCY],
                           score=max(scores.probability, 0.5), language=scores.language)
        category = scores.category if scores.refused else f"allowed-{scores.category}"
        return Verdict(allowed=not scores.refused, category=category, reason=REASONS[category],
                       score=scores.probability, language=scores.language)


_default = Guard()


def load() -> Guard:
    """Load the default guard now (service setup), so the first request does not pay for it."""
    return _default.load()


def screen(prompt: str, *, system_prompt: str | None = None, has_image: bool = False) -> Verdict:
    """The default guard's verdict on one request."""
    return _default.screen(prompt, system_prompt=system_prompt, has_image=has_image)
