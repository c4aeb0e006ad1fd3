import logging

import pytest

from medgemma import guard, policy
from medgemma.errors import UserError
from medgemma.request import GenerationRequest
from medgemma.service import Service, ServiceError
from tests.support.fakes import FakeEngine, FakeGuard, refusing

ALLOWED = "Explain how beta blockers work, for a pharmacology lecture."
CLINICAL = "What dose of ibuprofen should I give my 4-year-old tonight?"


def service(engine, screen=None) -> Service:
    return Service(engine, screen=screen or FakeGuard())


def test_allowed_answer_streams_the_model_then_the_disclaimer():
    engine = FakeEngine(["Beta", " blockers"])
    answer = service(engine).answer(GenerationRequest(prompt=ALLOWED))
    pieces = list(answer)
    assert pieces[:2] == ["Beta", " blockers"]
    assert pieces[-1] == policy.footer()
    assert policy.DISCLAIMER in "".join(pieces)
    metrics = answer.metrics()
    assert metrics["guard.allowed"] is True and metrics["output_token_count"] == 2 and metrics["guard.score"] == 0.1


def test_clinical_request_is_refused_without_generation():
    engine = FakeEngine()
    answer = service(engine, refusing(guard.DOSING)).answer(GenerationRequest(prompt=CLINICAL, images=(b"a", b"b")))
    text = "".join(answer)
    assert engine.requests == []
    assert text.startswith(policy.REFUSALS["en"].refusal) and text.endswith(policy.DISCLAIMER)
    assert answer.metrics() == {"guard.allowed": False, "guard.category": guard.DOSING, "guard.score": 0.9,
                                "model": "unknown", "image_count": 2}


def test_emergency_refusal_points_to_emergency_services_first():
    answer = service(FakeEngine(), refusing(guard.EMERGENCY)).answer(GenerationRequest(prompt="chest pain now"))
    assert "".join(answer).startswith(policy.REFUSALS["en"].emergency)
    assert answer.metrics()["guard.category"] == guard.EMERGENCY


@pytest.mark.parametrize("language", ["es", "zh", "ar", "hi"])
def test_refusal_is_written_in_the_request_language(language):
    answer = service(FakeEngine(), refusing(guard.EMERGENCY, language)).answer(GenerationRequest(prompt="..."))
    text = "".join(answer)
    assert text.startswith(policy.REFUSALS[language].emergency) and policy.REFUSALS[language].refusal in text


def test_refusal_falls_back_to_english_for_other_languages():
    answer = service(FakeEngine(), refusing(guard.DOSING, "")).answer(GenerationRequest(prompt="..."))
    assert "".join(answer).startswith(policy.REFUSALS["en"].refusal)


def test_the_guard_reads_the_prompt_system_prompt_and_image_flag(tmp_path):
    screen = FakeGuard()
    image = tmp_path / "x.png"
    service(FakeEngine(), screen).answer(GenerationRequest(prompt="Describe.", system_prompt="Be brief.", image=image))
    assert screen.calls == [("Describe.", "Be brief.", True)]


def test_guard_failure_refuses_and_logs_without_the_prompt(caplog):
    def broken_guard(prompt, **kwargs):
        raise RuntimeError(f"cannot parse {prompt}")

    engine = FakeEngine()
    secret = "patient Jane Roe 1970-01-01 biopsy"
    with caplog.at_level(logging.ERROR):
        answer = service(engine, broken_guard).answer(GenerationRequest(prompt=secret))
    assert not answer.verdict.allowed and answer.verdict.category == guard.GUARD_ERROR
    assert engine.requests == []
    assert caplog.records and all("Jane" not in record.getMessage() for record in caplog.records)


def test_internal_error_is_logged_and_masked(caplog):
    engine = FakeEngine(["a", "b"], fail_after=1, error=RuntimeError("CUDA error: device-side assert"))
    answer = service(engine).answer(GenerationRequest(prompt=ALLOWED))
    with caplog.at_level(logging.ERROR), pytest.raises(ServiceError, match="internal error") as error:
        list(answer)
    assert "CUDA" not in str(error.value)
    assert any("generation failed" in record.getMessage() for record in caplog.records)


def test_user_errors_pass_through_unmasked():
    engine = FakeEngine(["a"], fail_after=0, error=UserError("the image is empty."))
    with pytest.raises(UserError, match="image is empty"):
        list(service(engine).answer(GenerationRequest(prompt=ALLOWED)))


@pytest.mark.parametrize("language", sorted(policy.REFUSALS))
def test_every_refusal_text_names_the_fix_and_emergency_text_is_distinct(language):
    texts = policy.REFUSALS[language]
    assert texts.refusal and texts.emergency and texts.refusal != texts.emergency
    assert any(ch.isdigit() for ch in texts.emergency)  # an emergency number


def test_every_announced_request_arrives_whether_refused_or_answered():
    """The engine holds a starting batch for announced requests: each must say it arrived."""
    engine = FakeEngine()
    list(service(engine).answer(GenerationRequest(prompt=ALLOWED)))
    list(service(engine, refusing(guard.DOSING)).answer(GenerationRequest(prompt=CLINICAL)))
    assert engine.announced == engine.arrived == 2
