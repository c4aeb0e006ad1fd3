"""First-person self-harm phrases, in every language the guard serves.

The one rule kept beside the classifier, because measurement shows it adds something: on our
held-out corpus it catches the one suicidal request the classifier let through (wrapped in "for a
novel"), and it matched none of the 7,000+ allowed texts of the training, dev and held-out sets.
A match refuses the request as an emergency, so the crisis-line advice is shown. The phrases
(selfharm.json) are first-person intent as people type it, never the bare words "suicide" or
"self-harm", which teaching and research text use.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

LEXICON_FILE = Path(__file__).resolve().parent / "selfharm.json"

# Scripts written with spaces between words get word boundaries; the others (Chinese, Japanese,
# Thai, Korean with its attached particles) are matched as plain substrings.
_SPACED = re.compile(r"[A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u052f]")


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern[str]:
    phrases = {phrase.casefold() for group in json.loads(LEXICON_FILE.read_text("utf-8")).values() for phrase in group}
    alternatives = sorted(
        (rf"(?<!\w){re.escape(p)}(?!\w)" if _SPACED.search(p) else re.escape(p) for p in phrases),
        key=len, reverse=True,
    )
    return re.compile("|".join(alternatives))


def mentions_self_harm(text: str) -> bool:
    """Whether hardened request text states first-person self-harm or suicidal intent."""
    return _pattern().search(text.casefold()) is not None
