"""Errors of the model layer. Messages always name the model, the file and the command that fixes it."""

from __future__ import annotations


class ModelUnavailable(RuntimeError):
    """A model is missing, unverifiable or corrupt; the message says which command fetches it."""


class LicenseNotAccepted(ModelUnavailable):
    """A non-commercial model was requested without the user accepting its licence."""


class FetchError(ModelUnavailable):
    """Downloading or extracting a model failed."""
