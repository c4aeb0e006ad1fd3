"""MedGemma 4B-IT served behind a non-clinical guard.

Import-light on purpose: nothing here loads torch or transformers; the modules
that need them import them when used.
"""

__version__ = "0.1.0"
