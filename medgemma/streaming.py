"""Incremental detokenization: token ids in, text pieces out, as generate() produces them."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

from transformers.generation.streamers import BaseStreamer

REPLACEMENT_CHAR = "\ufffd"  # what a partial UTF-8 sequence decodes to

_END = object()


class TextPieceStreamer(BaseStreamer):
    """A generate() streamer that turns new token ids into text pieces on a queue.

    Decodes a sliding window of ids (from the last emitted boundary) rather than the
    whole output each step, so decoding stays linear in the output length; holds a
    piece back while it ends in a partial UTF-8 character. The pieces concatenate to
    the decoding of all generated ids.
    """

    def __init__(self, tokenizer, *, poll_seconds: float = 0.1):
        self._tokenizer = tokenizer
        self._poll_seconds = poll_seconds
        self._queue: queue.Queue = queue.Queue()
        self._saw_prompt = False
        self.token_ids: list[int] = []
        self.first_token_at: float | None = None
        self._prefix_offset = 0
        self._read_offset = 0

    # Called by generate() in its own thread.
    def put(self, value) -> None:
        if not self._saw_prompt:  # generate() first pushes the prompt ids
            self._saw_prompt = True
            return
        new_ids = value.reshape(-1).tolist()
        if not new_ids:
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.token_ids.extend(new_ids)
        piece = self._next_piece(final=False)
        if piece:
            self._queue.put(piece)

    def end(self) -> None:
        piece = self._next_piece(final=True)
        if piece:
            self._queue.put(piece)
        self._queue.put(_END)

    def fail(self) -> None:
        """Unblock the reader when generate() died before calling end()."""
        self._queue.put(_END)

    # Called by the consumer thread.
    def pieces(self) -> Iterator[str]:
        while True:
            try:
                # A short timeout keeps this thread responsive to an asynchronous
                # exception (Cog's cancelation is delivered that way).
                item = self._queue.get(timeout=self._poll_seconds)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _next_piece(self, *, final: bool) -> str:
        ids = self.token_ids
        prefix_text = self._decode(ids[self._prefix_offset : self._read_offset])
        full_text = self._decode(ids[self._prefix_offset :])
        if len(full_text) <= len(prefix_text) or (full_text.endswith(REPLACEMENT_CHAR) and not final):
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(ids)
        return full_text[len(prefix_text) :]
