"""Typed engine errors. Every error a user can cause carries one sentence saying what is wrong and what to do."""

from __future__ import annotations

__all__ = [
    "EngineError",
    "ModelLoadError",
    "InvalidRequestError",
    "SubjectNotInPromptError",
    "Cancelled",
    "OutOfMemoryError",
]


class EngineError(Exception):
    """Base class of every error the engine raises on purpose.

    ``str(err)`` is one sentence for the user; ``hint`` (optional) says what to do about it.
    """

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line, message then hint
        return self.message if not self.hint else f"{self.message} {self.hint}"


class ModelLoadError(EngineError):
    """A model source could not be found, read or understood."""


class InvalidRequestError(EngineError):
    """A generation request is malformed (size, steps, prompts, seeds ...)."""


class SubjectNotInPromptError(InvalidRequestError):
    """A ConsiStory prompt does not contain its subject word."""

    def __init__(self, prompt: str, word: str, *, token_limit: int | None = None):
        if token_limit is None:
            super().__init__(
                f"The prompt {prompt!r} does not contain the subject word {word!r}.",
                hint=f"Add {word!r} to the prompt or remove that character from the panel.",
            )
        else:  # the word is there, but past what the text encoder reads
            super().__init__(
                f"In the prompt {prompt!r} the subject word {word!r} comes after the model's limit of "
                f"{token_limit} tokens, so the model never reads it.",
                hint=f"Shorten the prompt or move {word!r} nearer its start.",
            )
        self.prompt = prompt
        self.word = word
        self.token_limit = token_limit


class Cancelled(EngineError):
    """The user cancelled a run. Raised at a step boundary; nothing is decoded."""

    def __init__(self, message: str = "Generation was cancelled."):
        super().__init__(message)


class OutOfMemoryError(EngineError):
    """The device ran out of memory."""

    def __init__(self, device: str):
        super().__init__(
            f"The {device} device ran out of memory.",
            hint="Try a smaller batch, a smaller panel size, or turn on CPU offload in the model settings.",
        )
        self.device = device
