import threading

import pytest

from medgemma.streaming import CANCELED, DEADLINE, LENGTH, STOP, Detokenizer, TokenSink
from tests.support.tiny_model import END_OF_TURN_ID, EOS_ID, build_tokenizer

STOP_IDS = frozenset({EOS_ID, END_OF_TURN_ID})


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def sink_for(tokenizer, max_new_tokens=100, **kwargs) -> TokenSink:
    return TokenSink(tokenizer, stop_ids=STOP_IDS, max_new_tokens=max_new_tokens, **kwargs)


def test_pieces_concatenate_to_the_full_decoding_across_multibyte_characters(tokenizer):
    text = "Fémur — 股骨 🦴 ok"
    ids = tokenizer.encode(text, add_special_tokens=False)
    sink = sink_for(tokenizer)
    sink.push(ids)
    sink.finish(LENGTH)
    pieces = list(sink.pieces())
    assert len(pieces) > 3 and "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)  # never a half character
    assert sink.token_ids == ids and sink.first_token_at is not None


def test_invalid_bytes_still_match_full_decoding(tokenizer):
    ids = [300 - 36, 150, 151, 152, 40, 41, 200, 201]  # arbitrary byte tokens, some invalid UTF-8
    detokenizer = Detokenizer(tokenizer)
    pieces = [detokenizer.add(ids[i:i + 3]) for i in range(0, len(ids), 3)] + [detokenizer.add([], final=True)]
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def test_end_of_turn_stops_and_is_not_output(tokenizer):
    sink = sink_for(tokenizer)
    sink.push(tokenizer.encode("done", add_special_tokens=False) + [END_OF_TURN_ID, 70, 71])
    assert sink.finish_reason == STOP and "".join(sink.pieces()) == "done"
    assert len(sink.token_ids) == 4  # "done", without the marker or what came after it


def test_max_new_tokens_ends_the_request_exactly(tokenizer):
    sink = sink_for(tokenizer, max_new_tokens=3)
    sink.push([70, 71, 72, 73, 74])
    assert sink.finish_reason == LENGTH and len(sink.token_ids) == 3 and sink.done


def test_the_stop_flag_cancels_and_later_tokens_are_ignored(tokenizer):
    stop = threading.Event()
    sink = sink_for(tokenizer, stop=stop)
    sink.push([70])
    stop.set()
    sink.push([71, 72])
    assert sink.done and sink.finish_reason == CANCELED and sink.token_ids == [70]


def test_the_deadline_ends_a_request_even_when_no_token_comes(tokenizer):
    now = [0.0]
    sink = sink_for(tokenizer, deadline=5.0, clock=lambda: now[0], poll_seconds=0.01)
    assert not sink.done
    now[0] = 6.0
    assert list(sink.pieces()) == [] and sink.finish_reason == DEADLINE


def test_closing_the_reader_sets_the_stop_flag(tokenizer):
    sink = sink_for(tokenizer)
    sink.push(tokenizer.encode("a b c", add_special_tokens=False))
    pieces = sink.pieces()
    next(pieces)
    pieces.close()  # a client gone, a Cog cancel
    assert sink.stop.is_set() and sink.done and sink.finish_reason == CANCELED


def test_a_model_failure_reaches_the_reader(tokenizer):
    sink = sink_for(tokenizer)
    sink.push([70])
    sink.fail(RuntimeError("device lost"))
    pieces = sink.pieces()
    assert next(pieces)
    with pytest.raises(RuntimeError, match="device lost"):
        next(pieces)
