"""A CLIP-layout byte-level BPE tokenizer built offline, for the tiny test models.

Layout (the same as CLIP's): ids 0-255 are the byte symbols in CLIP's byte-to-unicode order, 256-511 the same
symbols with ``</w>``, then one id per merge learned by a small deterministic BPE over ``WORDS`` (every listed
word becomes a single token), then ``<|startoftext|>`` and ``<|endoftext|>`` last. Words outside the list split
into several tokens, which is what subject-token lookup has to handle.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

__all__ = ["WORDS", "write_tokenizer_files", "bytes_to_unicode"]

# Common prompt words (scenes, creatures, colours, actions) plus the toy world's vocabulary.
WORDS: tuple[str, ...] = tuple(
    """
a an the of in on at with and under over near by from to into its his her their is are
photo picture painting drawing illustration comic storybook style cartoon watercolor sketch 3d render
cute small big little old young happy sad angry brave tiny giant friendly
dog cat fox bear owl rabbit bunny mouse bird dragon robot girl boy man woman child knight wizard witch
princess king queen pirate hedgehog turtle frog lion tiger wolf panda penguin horse unicorn monster
creature blob cube cone ball sphere pyramid star
red green blue yellow orange purple pink white black brown gray grey gold silver
hat scarf cape crown glasses backpack umbrella lantern map book sword shield boots coat
reads reading holds holding walks walking runs running sits sitting sleeps sleeping jumps jumping flies flying
eats eating plays playing looks looking stands standing dances dancing swims swimming climbs climbing
forest beach desert snow snowy field night day city castle mountain river lake sea ocean garden park room
house kitchen library street market village cave island sky space moon sun rain storm cloud clouds tree trees
flower flowers grass sand water fire ice light dark morning evening sunset
""".split()
)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _learn_merges(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """Plain BPE training (most frequent pair first, ties broken by the pair's text) until every word is one token."""
    bu = bytes_to_unicode()
    seqs: dict[str, list[str]] = {}
    for w in dict.fromkeys(words):
        symbols = [bu[b] for b in w.encode("utf-8")]
        symbols[-1] = symbols[-1] + "</w>"
        seqs[w] = symbols
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols in seqs.values():
            for a, b in zip(symbols, symbols[1:]):
                pairs[(a, b)] += 1
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        joined = best[0] + best[1]
        for w, symbols in seqs.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            seqs[w] = out


@lru_cache(maxsize=4)
def _vocab_and_merges(words: tuple[str, ...]) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    bu = bytes_to_unicode()
    symbols = list(bu.values())
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    merges = _learn_merges(words)
    for a, b in merges:
        tok = a + b
        if tok not in vocab:
            vocab[tok] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, tuple(merges)


def vocab_size(words: tuple[str, ...] = WORDS) -> int:
    return len(_vocab_and_merges(words)[0])


def write_tokenizer_files(folder: str | Path, *, words: tuple[str, ...] = WORDS, max_length: int = 77,
                          pad_token: str = "<|endoftext|>") -> Path:
    """Write ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` loadable by ``CLIPTokenizer.from_pretrained``.

    ``pad_token`` is ``<|endoftext|>`` for SDXL's first tokenizer and SD 1.x, ``!`` (id 0) for SDXL's second.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocab_and_merges(words)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": pad_token,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": pad_token}), encoding="utf-8")
    return folder
