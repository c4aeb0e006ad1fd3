"""Hardened text for the classifier: undo the tricks that hide words without changing what they say.

Attackers (and some keyboards) write "d o s e", "d0se", "dоse" with a Cyrillic "о", or slip
zero-width and bidi characters inside words. All of that is undone before any check, while real
non-Latin text (Russian, Arabic, Hindi, Chinese...) passes through untouched. The result is only
what the guard reads; the model still gets the caller's text.
"""

from __future__ import annotations

import re
import unicodedata

# Look-alike letters, by the script they are written in -> the script they imitate.
_CYRILLIC_TO_LATIN = dict(zip("аеорсухіјѕԁһԛԝӏАВЕКМНОРСТХІЈЅУ", "aeopcyxijsdhqwlABEKMHOPCTXIJSY", strict=True))
_GREEK_TO_LATIN = dict(zip("αονικυχρτΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "aovikuxptABEZHIKMNOPTYX", strict=True))
_LATIN_TO_CYRILLIC = dict(zip("aeopcyxiABEKMHOPCTX", "аеорсухіАВЕКМНОРСТХ", strict=True))
_TO_LATIN = {"cyrillic": _CYRILLIC_TO_LATIN, "greek": _GREEK_TO_LATIN}

# Digits and symbols that stand in for letters ("d0se", "k!ll", "p@racetamol").
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                       "!": "i", "|": "l"})
_LEET_CHARS = frozenset("013457@$!|")

_MAX_COMBINING_RUN = 3  # enough for any real script's stacked marks; more is "Zalgo" noise
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef\u034f]")
_WORD = re.compile(r"[\w@$!|]+")
_SPACED_TOKEN = re.compile(r"^(?:[^\W\d_][.\-_*·•]){2,}[^\W\d_][.\-_*·•]?$")
_SPACED_SEPARATORS = re.compile(r"[.\-_*·•]")
_APOSTROPHES = str.maketrans(dict.fromkeys("\u2019\u2018\u02bc\u2032`", "'"))
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")


def harden(text: str) -> str:
    """The text the guard classifies: NFKC, invisible characters gone, disguises undone."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    text = _drop_invisible(text)
    text = _undo_look_alikes(text)
    text = _WORD.sub(_undo_leet, text)
    text = _join_spaced_letters(text)
    text = _HORIZONTAL_SPACE.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _drop_invisible(text: str) -> str:
    """Remove format characters (zero-width, bidi controls, BOM, tags, soft hyphen) and Zalgo piles."""
    text = _VARIATION_SELECTORS.sub("", text)
    kept: list[str] = []
    run = 0
    for char in text:
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        if category in ("Mn", "Me"):
            run += 1
            if run > _MAX_COMBINING_RUN:
                continue
        else:
            run = 0
        kept.append(char)
    return "".join(kept)


def _script(char: str) -> str | None:
    code = ord(char)
    if char.isascii():
        return "latin" if char.isalpha() else None
    if 0x00C0 <= code <= 0x024F or 0x1E00 <= code <= 0x1EFF:
        return "latin" if char.isalpha() else None
    if 0x0400 <= code <= 0x052F:
        return "cyrillic"
    if 0x0370 <= code <= 0x03FF:
        return "greek"
    return None


def _undo_look_alikes(text: str) -> str:
    """Map look-alike letters to the script of the word (or text) they hide in.

    A word mixing scripts is mapped to its majority script ("dоse" -> "dose", "тaблетки" ->
    "таблетки"). A word written wholly in Cyrillic or Greek look-alikes inside mostly Latin text
    is mapped to Latin ("ԁоѕе"); real Russian or Greek words contain letters with no Latin twin
    and stay as they are.
    """
    letters = [s for s in map(_script, text) if s]
    if not letters or set(letters) == {"latin"}:
        return text
    text_is_latin = letters.count("latin") * 2 > len(letters)

    def fix(match: re.Match[str]) -> str:
        word = match.group()
        scripts = [_script(char) for char in word]
        counts = {name: scripts.count(name) for name in ("latin", "cyrillic", "greek") if name in scripts}
        if len(counts) > 1:
            majority = max(counts, key=lambda name: (counts[name], name == "latin"))
            if majority == "latin":
                return "".join(_TO_LATIN.get(s, {}).get(c, c) if s != "latin" else c
                               for c, s in zip(word, scripts, strict=True))
            if majority == "cyrillic":
                return "".join(_LATIN_TO_CYRILLIC.get(c, c) if s == "latin" else c
                               for c, s in zip(word, scripts, strict=True))
            return word
        (only,) = counts or {"": 0}
        table = _TO_LATIN.get(only)
        if table and text_is_latin and all(c in table for c in word if c.isalpha()):
            return "".join(table.get(c, c) for c in word)
        return word

    return re.sub(r"\w+", fix, text)


def _undo_leet(match: re.Match[str]) -> str:
    """"d0se" -> "dose"; identifiers such as B12, CYP3A4 or H1N1 are left alone.

    A token is decoded only when a stand-in sits between two letters and the token is not in
    capitals (drug, gene and virus names are).
    """
    token = match.group()
    letters = [c for c in token if c.isalpha()]
    if len(letters) < 2 or all(c.isupper() for c in letters):
        return token
    inner = any(
        c in _LEET_CHARS and token[i - 1].isalpha() and token[i + 1].isalpha()
        for i, c in enumerate(token[1:-1], start=1)
    )
    return token.translate(_LEET) if inner else token


def _join_spaced_letters(text: str) -> str:
    """"d o s e" and "d.o.s.e" -> "dose": three or more single letters in a row become one word."""
    pieces = re.split(r"( +)", text)
    words, separators = pieces[0::2], pieces[1::2]
    out: list[str] = []
    start = 0
    while start < len(words):
        end = start
        while (end + 1 < len(words) and separators[end] == " "
               and _is_single_letter(words[end]) and _is_single_letter(words[end + 1])):
            end += 1
        if end - start >= 2:
            out.append("".join(words[start : end + 1]))
        else:
            end = start
            word = words[start]
            out.append(_SPACED_SEPARATORS.sub("", word) if _SPACED_TOKEN.match(word) else word)
        if end < len(separators):
            out.append(separators[end])
        start = end + 1
    return "".join(out)


def _is_single_letter(word: str) -> bool:
    return len(word) == 1 and word.isalpha()
