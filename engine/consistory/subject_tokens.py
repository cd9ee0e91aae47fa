"""Where each subject word sits in each prompt, in token positions of the model's (first) tokenizer.

A subject is one or more words ("fox", "teddy bear"); a word that splits into several BPE pieces uses all of its
pieces, and a word that occurs several times uses every occurrence. SDXL's two tokenizers share one BPE vocabulary,
so the positions hold for both text encoders.
"""

from __future__ import annotations

from ..errors import InvalidRequestError, SubjectNotInPromptError

__all__ = ["subject_token_positions"]


def _find_all(seq: list[int], sub: list[int]) -> list[int]:
    n = len(sub)
    out: list[int] = []
    for start in range(len(seq) - n + 1):
        if seq[start:start + n] == sub:
            out.extend(range(start, start + n))
    return out


def subject_token_positions(tokenizer, prompts: list[str], subjects: list[str]) -> list[list[list[int]]]:
    """``positions[c][i]`` = sorted token positions of subject ``c`` in prompt ``i`` (position 0 = start token).

    Raises ``SubjectNotInPromptError`` naming the prompt and the word when a prompt lacks a subject word
    (including when it only appears past the text encoder's token limit).
    """
    if not subjects:
        raise InvalidRequestError("A consistent set needs at least one subject word.")
    max_len = tokenizer.model_max_length
    prompt_ids = [tokenizer(p, padding="max_length", max_length=max_len, truncation=True).input_ids for p in prompts]
    out: list[list[list[int]]] = []
    for subject in subjects:
        words = subject.split()
        if not words:
            raise InvalidRequestError("A subject word is empty.", hint="Give each character a subject word like 'fox'.")
        per_prompt: list[list[int]] = []
        for prompt, ids in zip(prompts, prompt_ids):
            found: set[int] = set()
            for word in words:
                word_ids = tokenizer(word, add_special_tokens=False).input_ids
                hits = _find_all(ids, word_ids) if word_ids else []
                if not hits:
                    whole = tokenizer(prompt, truncation=False).input_ids
                    beyond = bool(word_ids) and bool(_find_all(whole, word_ids))
                    raise SubjectNotInPromptError(prompt, word, token_limit=max_len if beyond else None)
                found.update(hits)
            per_prompt.append(sorted(found))
        out.append(per_prompt)
    return out
