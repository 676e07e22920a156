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
