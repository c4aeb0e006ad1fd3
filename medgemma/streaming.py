"""One request's output: token ids pushed by a model thread, text pieces read by the request's thread.

The sink decides when the request is done (end of turn, its own max_new_tokens, a cancel, its
deadline), so every decoding path (alone, in a batch, or continuously batched) stops requests
the same way, and a batch can finish one row without disturbing the others.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator

REPLACEMENT_CHAR = "\ufffd"  # what a partial UTF-8 sequence decodes to

STOP = "stop"  # the model ended its turn
LENGTH = "length"  # max_new_tokens reached
CANCELED = "canceled"  # the caller stopped reading, or canceled
DEADLINE = "deadline"  # ran past the service's time limit for one prediction

_END = object()


class Detokenizer:
    """Incremental decoding: token ids in, text pieces out, never half a UTF-8 character.

    Decodes a sliding window of ids (from the last emitted boundary) rather than the whole
    output each step, so it stays linear in the output length. The pieces concatenate to the
    decoding of all ids.
    """

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def add(self, ids: Iterable[int], *, final: bool = False) -> str:
        self._ids.extend(ids)
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full_text = self._decode(self._ids[self._prefix_offset :])
        if len(full_text) <= len(prefix_text) or (full_text.endswith(REPLACEMENT_CHAR) and not final):
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return full_text[len(prefix_text) :]

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


class TokenSink:
    """Where a model thread delivers one request's tokens, and its reader takes text pieces.

    Thread-safe: `push`/`finish`/`fail` come from model threads, `pieces` from the reader. The
    request stops at its first stop id (not counted as output), at `max_new_tokens`, when `stop` is
    set, or at `deadline` (a `time.monotonic()` value).
    """

    def __init__(self, tokenizer, *, stop_ids: frozenset[int], max_new_tokens: int,
                 stop: threading.Event | None = None, deadline: float | None = None,
                 poll_seconds: float = 0.1, clock: Callable[[], float] = time.monotonic):
        self._detokenizer = Detokenizer(tokenizer)
        self._stop_ids = stop_ids
        self.max_new_tokens = max_new_tokens
        self.stop = stop or threading.Event()
        self.deadline = deadline
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self.token_ids: list[int] = []
        self.first_token_at: float | None = None  # time.perf_counter()
        self.finished_at: float | None = None
        self.finish_reason: str | None = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        """Whether the request wants no more tokens; checks the cancel flag and deadline as well."""
        if self.finish_reason is None:
            if self.stop.is_set():
                self.finish(CANCELED)
            elif self.deadline is not None and self._clock() >= self.deadline:
                self.finish(DEADLINE)
        return self.finish_reason is not None

    def push(self, ids: Iterable[int]) -> None:
        """New token ids from the model; anything after the request is done is ignored."""
        for token in ids:
            if self.done:
                return
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            if token in self._stop_ids:
                self.finish(STOP)
                return
            self.token_ids.append(token)
            piece = self._detokenizer.add([token])
            if piece:
                self._queue.put(piece)
            if len(self.token_ids) >= self.max_new_tokens:
                self.finish(LENGTH)

    def finish(self, reason: str) -> None:
        with self._lock:
            if self.finish_reason is not None:
                return
            self.finish_reason = reason
            self.finished_at = time.perf_counter()
        tail = self._detokenizer.add([], final=True)
        if tail:
            self._queue.put(tail)
        self._queue.put(_END)

    def fail(self, error: BaseException) -> None:
        """The model thread failed on this request: its reader raises `error`."""
        self.error = error
        self.finish(CANCELED if self.stop.is_set() else "error")

    def pieces(self) -> Iterator[str]:
        """Text pieces as they arrive. Closing the iterator (a cancel, a client gone) sets `stop`."""
        ended = False
        try:
            while True:
                try:
                    # A short timeout keeps this thread responsive to an asynchronous exception
                    # (Cog's cancelation is delivered that way) and to the deadline.
                    item = self._queue.get(timeout=self._poll_seconds)
                except queue.Empty:
                    _ = self.done  # lets a deadline end a request the model has not reached yet
                    continue
                if item is _END:
                    ended = True
                    break
                yield item
        finally:
            if not ended:
                self.stop.set()
        if self.error is not None:
            raise self.error
