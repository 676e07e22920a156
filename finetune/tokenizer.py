"""The word-level tokenizer of the embedded base model.

Element symbols, words, single digits and punctuation are tokens: ``Sc2Ni6`` becomes
``Sc 2 Ni 6``, ``-0.389`` becomes ``- 0 . 3 8 9``, a Wyckoff label ``12k`` becomes ``1 2 k``.
Digits one by one is what large models do too, and it keeps the vocabulary a few hundred words,
so the embedded model stays a few MB. Concatenating texts concatenates their tokens, which the
scorer relies on.
"""

from __future__ import annotations

from collections.abc import Iterable

SPECIAL_TOKENS = {"pad": "<pad>", "unk": "<unk>", "bos": "<s>", "eos": "</s>"}
# an element symbol directly followed by its count, any word, one digit, or one other character
TOKEN_PATTERN = r"[A-Z][a-z]?(?=\d)|[A-Za-z]+|\d|[^\sA-Za-z\d]"


def _split(text: str) -> list[str]:
    import re

    return re.findall(TOKEN_PATTERN, text)


def build_tokenizer(texts: Iterable[str]):
    """A ``PreTrainedTokenizerFast`` whose vocabulary covers ``texts``, all elements and digits."""
    from pymatgen.core.periodic_table import Element
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words: dict[str, None] = {}
    for token in SPECIAL_TOKENS.values():
        words[token] = None
    for element in Element:
        words[element.symbol] = None
    for digit in "0123456789":
        words[digit] = None
    for letter in "abcdefghijklmnopqrstuvwxyzA":  # Wyckoff letters (pyxtal writes 'A' for alpha)
        words[letter] = None
    for text in texts:
        for token in _split(text):
            words[token] = None
    vocab = {word: i for i, word in enumerate(words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk"]))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="isolated")]
    )
    core.decoder = decoders.WordPiece(prefix="##")  # joins tokens with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=SPECIAL_TOKENS["pad"],
        unk_token=SPECIAL_TOKENS["unk"],
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
    )


def load_tokenizer(path: str):
    """Load a model's tokenizer without letting transformers swap in the architecture's own.

    transformers 5 builds a Qwen2 model's tokenizer as ``Qwen2Tokenizer`` with Qwen's byte-level
    pre-tokenizer, even when ``tokenizer.json`` holds our word-level one; that silently splits
    every word into letters. Tokenizers saved as a generic fast tokenizer are therefore loaded
    as exactly what ``tokenizer.json`` says; every other model (hub models) via ``AutoTokenizer``.
    """
    import json
    from pathlib import Path

    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    config = Path(path) / "tokenizer_config.json"
    if config.exists() and json.loads(config.read_text()).get("tokenizer_class") in GENERIC_CLASSES:
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


GENERIC_CLASSES = {"TokenizersBackend", "PreTrainedTokenizerFast"}
