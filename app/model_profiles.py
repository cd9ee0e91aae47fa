"""What the built-in models can draw: their native size, the steps worth running and, for the toy model, the
only words it knows. Real models (hub ids, folders, checkpoints) have no profile limits.

Contract:
- ``profile_for(source) -> ModelProfile`` (no torch import).
- ``ModelProfile.panel_side(longest)``: the longest side to generate at, given the user's setting.
- ``ModelProfile.dropout``: the likeness (attention dropout) a new character, or a ``generate`` run without
  ``--dropout``, starts with on this model: the paper's 0.5, 0 on the toy model.
- ``ModelProfile.unknown_words(text)``: the words of ``text`` the model does not know (always empty for real
  models); ``unknown_words_message(...)`` / ``job_words_message(profile, job)``: one sentence for the user, or
  ``None``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["ModelProfile", "profile_for", "unknown_words_message", "job_words_message", "scaled_size"]

_WORD = re.compile(r"[a-z]+")


def scaled_size(width: int, height: int, max_side: int, multiple: int) -> tuple[int, int]:
    """(w, h) with the long side ``max_side`` and the aspect kept, each a positive multiple of ``multiple``."""
    k = max_side / max(width, height)
    return (max(multiple, round(width * k / multiple) * multiple),
            max(multiple, round(height * k / multiple) * multiple))


@dataclass(frozen=True)
class ModelProfile:
    source: str
    label: str
    max_side: int | None = None          # longest side it draws well; None: whatever the user sets
    size_multiple: int = 64              # panel sides are rounded to multiples of this
    steps: int | None = None             # headless renders use this step count unless told otherwise
    fixed_size: tuple[int, int] | None = None   # trained at one size only: every panel is drawn at it (the page
    # crops it to the slot)
    vocabulary: frozenset[str] | None = None   # None: an open vocabulary
    dropout: float = 0.5                 # the likeness a new character starts with (attention dropout): the
    # paper's 0.5; lower where a model is measured to hold a look better (README, "The built-in toy model")

    def panel_side(self, longest: int) -> int:
        return longest if self.max_side is None else min(longest, self.max_side)

    def panel_size(self, aspect_size: tuple[int, int]) -> tuple[int, int]:
        """The size to draw a panel at, given the size that follows its page slot."""
        return self.fixed_size or aspect_size

    def fit(self, size: tuple[int, int]) -> tuple[int, int]:
        """A size this model draws, for a picture first made at ``size`` (another model's anchors, say): its one
        trained size, or ``size`` scaled down to its longest side (aspect kept, on its multiple); a size within
        its reach is kept."""
        if self.fixed_size:
            return self.fixed_size
        if self.max_side is None or max(size) <= self.max_side:
            return size
        return scaled_size(*size, self.max_side, self.size_multiple)

    def unknown_words(self, text: str) -> list[str]:
        if self.vocabulary is None:
            return []
        return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in self.vocabulary))


def _toy_vocabulary(model_dir: Path | None = None) -> frozenset[str]:
    """The toy world's words that the installed toy model holds as one token each (a model trained before the
    world grew a word does not know it); the whole world's vocabulary when no model is installed."""
    from engine.model_loader import TOY_MODEL_DIR
    from engine.toyworld.captions import VOCABULARY

    vocab_file = (model_dir or TOY_MODEL_DIR) / "tokenizer" / "vocab.json"
    try:
        stat = vocab_file.stat()
    except OSError:
        return frozenset(VOCABULARY)
    return _words_held(vocab_file, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _words_held(vocab_file: Path, mtime_ns: int, size: int) -> frozenset[str]:  # noqa: ARG001 (cache key)
    """Read once per version of the file: the UI asks for the profile on every refresh."""
    from engine.toyworld.captions import VOCABULARY

    try:
        tokens = json.loads(vocab_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset(VOCABULARY)
    return frozenset(w for w in VOCABULARY if f"{w}</w>" in tokens)


def profile_for(source: str | None) -> ModelProfile:
    source = (source or "").strip()
    if source == "toy":
        return ModelProfile("toy", "the built-in toy model", max_side=64, size_multiple=16, steps=20,
                            fixed_size=(64, 64), vocabulary=_toy_vocabulary(), dropout=0.0)
    if source in ("tiny", "tiny-sd15"):
        # random weights: pictures are noise whatever the size, so keep them small and the steps few
        return ModelProfile(source, "the tiny test model", max_side=128, size_multiple=16, steps=3)
    return ModelProfile(source, source or "the model")


def unknown_words_message(profile: ModelProfile, texts: list[str]) -> str | None:
    """A sentence naming the words the model cannot draw, or ``None`` when it knows them all."""
    unknown = list(dict.fromkeys(w for t in texts for w in profile.unknown_words(t)))
    if not unknown:
        return None
    shown = ", ".join(unknown[:8]) + (" …" if len(unknown) > 8 else "")
    known = " ".join(sorted(profile.vocabulary or ()))
    return (f"{profile.label[0].upper()}{profile.label[1:]} does not know the words {shown}; it only knows: {known}. "
            "Write prompts with those words (see the toy-world sample), or choose a real model (Model → Model… in "
            "the app, --model on the command line).")


def job_words_message(profile: ModelProfile, job) -> str | None:
    """``unknown_words_message`` for everything a queued job would write into prompts (panel and anchor prompts,
    subject words)."""
    if profile.vocabulary is None:
        return None
    spec = getattr(job, "spec", None)
    if spec is not None:
        texts = [*spec.prompts, *spec.subjects]
    else:  # a character's anchors
        c = job.project.character(job.character_id)
        texts = [*c.anchor_prompts, *c.subjects] if c is not None else []
    return unknown_words_message(profile, texts)
