import torch

from medgemma.streaming import TextPieceStreamer
from tests.support.tiny_model import build_tokenizer


def stream(tokenizer, ids, *, chunk=1):
    streamer = TextPieceStreamer(tokenizer)
    streamer.put(torch.tensor([[2, 3]]))  # the prompt, which generate() pushes first
    for start in range(0, len(ids), chunk):
        streamer.put(torch.tensor(ids[start:start + chunk]))
    streamer.end()
    return list(streamer.pieces()), streamer


def test_pieces_concatenate_to_the_full_decoding_across_multibyte_characters():
    tokenizer = build_tokenizer()
    text = "Fémur — 股骨 🦴 ok"
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces, streamer = stream(tokenizer, ids)
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)  # never a half character
    assert streamer.token_ids == ids and streamer.first_token_at is not None


def test_special_tokens_are_not_emitted():
    tokenizer = build_tokenizer()
    ids = tokenizer.encode("done", add_special_tokens=False) + [tokenizer.convert_tokens_to_ids("<end_of_turn>")]
    pieces, _ = stream(tokenizer, ids)
    assert "".join(pieces) == "done"


def test_invalid_bytes_still_match_full_decoding():
    tokenizer = build_tokenizer()
    ids = [300 - 36, 150, 151, 152, 40, 41, 200, 201]  # arbitrary byte tokens, some invalid UTF-8
    pieces, _ = stream(tokenizer, ids, chunk=3)
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
