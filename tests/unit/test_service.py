import logging

import pytest

from medgemma import guard, policy
from medgemma.errors import UserError
from medgemma.request import GenerationRequest
from medgemma.service import Service, ServiceError
from tests.support.fakes import FakeEngine

ALLOWED = "Explain how beta blockers work, for a pharmacology lecture."
CLINICAL = "What dose of ibuprofen should I give my 4-year-old tonight?"


def test_allowed_answer_streams_the_model_then_the_disclaimer():
    engine = FakeEngine(["Beta", " blockers"])
    answer = Service(engine).answer(GenerationRequest(prompt=ALLOWED))
    pieces = list(answer)
    assert pieces[:2] == ["Beta", " blockers"]
    assert pieces[-1] == policy.footer()
    assert policy.DISCLAIMER in "".join(pieces)
    metrics = answer.metrics()
    assert metrics["guard.allowed"] is True and metrics["output_token_count"] == 2


def test_clinical_request_is_refused_without_generation():
    engine = FakeEngine()
    answer = Service(engine).answer(GenerationRequest(prompt=CLINICAL))
    text = "".join(answer)
    assert engine.requests == []
    assert "can't help" in text and policy.DISCLAIMER in text
    assert answer.metrics() == {"guard.allowed": False, "guard.category": guard.DOSING, "model": "unknown"}


def test_emergency_refusal_points_to_emergency_services():
    answer = Service(FakeEngine()).answer(GenerationRequest(prompt="My dad has crushing chest pain right now"))
    assert policy.EMERGENCY_ADVICE in "".join(answer)
    assert answer.metrics()["guard.category"] == guard.EMERGENCY


def test_guard_failure_refuses_and_logs_without_the_prompt(caplog):
    def broken_guard(prompt, **kwargs):
        raise RuntimeError(f"cannot parse {prompt}")

    engine = FakeEngine()
    secret = "patient Jane Roe 1970-01-01 biopsy"
    with caplog.at_level(logging.ERROR):
        answer = Service(engine, screen=broken_guard).answer(GenerationRequest(prompt=secret))
    assert not answer.verdict.allowed and answer.verdict.category == guard.GUARD_ERROR
    assert engine.requests == []
    assert caplog.records and all("Jane" not in record.getMessage() for record in caplog.records)


def test_internal_error_is_logged_and_masked(caplog):
    engine = FakeEngine(["a", "b"], fail_after=1, error=RuntimeError("CUDA error: device-side assert"))
    answer = Service(engine).answer(GenerationRequest(prompt=ALLOWED))
    with caplog.at_level(logging.ERROR), pytest.raises(ServiceError, match="internal error") as error:
        list(answer)
    assert "CUDA" not in str(error.value)
    assert any("generation failed" in record.getMessage() for record in caplog.records)


def test_user_errors_pass_through_unmasked():
    engine = FakeEngine(["a"], fail_after=0, error=UserError("the image is empty."))
    with pytest.raises(UserError, match="image is empty"):
        list(Service(engine).answer(GenerationRequest(prompt=ALLOWED)))


def test_system_prompt_is_screened_with_the_prompt():
    engine = FakeEngine()
    answer = Service(engine).answer(GenerationRequest(
        prompt="What dose should I give?", system_prompt="You are assisting with my patient in bed 4."))
    assert not answer.verdict.allowed and engine.requests == []
