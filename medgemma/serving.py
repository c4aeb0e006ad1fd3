"""How predict.py's `run` meets the Cog server (coglet 0.23): one prediction at a time, or many.

Measured with cog 0.23.1 (SECURITY.md and the README have the details):
- a plain `def run` streams live and can be canceled, but the server runs one prediction at a time;
- `async def run` is required for more than one at once (COG_MAX_CONCURRENCY > 1); one that
  *returns* a plain generator streams live and runs concurrently, but a cancel is not delivered to
  it (the server marks the prediction canceled and discards its output while it runs to the end),
  and metrics must go to the scope captured in the coroutine;
- an async *generator* is canceled properly, but its output is only sent at the end.
No shape has all four. The service therefore runs concurrently by default, with live streaming
and correct metrics; a prediction that cannot be canceled still ends at its `max_new_tokens` or at
the engine's deadline (MEDGEMMA_MAX_SECONDS). COG_MAX_CONCURRENCY=1 gives the sequential shape,
where a cancel stops generation at the next token.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

ENV_MAX_CONCURRENCY = "COG_MAX_CONCURRENCY"  # set by `cog build` from cog.yaml's concurrency.max


def max_concurrency(environ: Mapping[str, str] | None = None) -> int:
    raw = (os.environ if environ is None else environ).get(ENV_MAX_CONCURRENCY, "").strip()
    try:
        return max(1, int(raw)) if raw else 1
    except ValueError:
        raise ValueError(f"{ENV_MAX_CONCURRENCY} must be a whole number; got {raw!r}") from None


def concurrent(run: Callable[..., Any]) -> Callable[..., Any]:
    """The same `run` as a coroutine that returns its generator, which coglet 0.23 needs in order to
    run predictions concurrently while streaming them live. The signature (the inputs) is kept.

    `run` must capture what it needs from the prediction (its metrics scope) when called: the
    coroutine runs in the prediction's context, the generator later in a worker thread.
    """
    from cog.input import FieldInfo

    signature = inspect.signature(run)

    @functools.wraps(run)
    async def run_concurrently(self, *args: Any, **kwargs: Any) -> Any:
        # coglet passes only the inputs a request set; through a wrapper, the others would arrive
        # as their Input(...) declarations instead of those declarations' defaults.
        bound = signature.bind(self, *args, **kwargs)
        for name, parameter in signature.parameters.items():
            if name not in bound.arguments and isinstance(parameter.default, FieldInfo):
                bound.arguments[name] = parameter.default.default
        return run(*bound.args, **bound.kwargs)

    return run_concurrently
