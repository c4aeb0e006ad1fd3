"""The two tiers of errors: what the caller can fix, and what they cannot."""


class UserError(ValueError):
    """A problem with the request that the caller can fix; the message says how.

    Its text is shown to the user as is, so it must never quote prompt text or
    image content back.
    """


class WeightsError(RuntimeError):
    """Weights are missing, incomplete or not allowed in this mode; the message says how to fix it."""
