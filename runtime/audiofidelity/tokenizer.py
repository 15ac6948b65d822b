"""RoBERTa's byte-level BPE tokenizer, as LAION-CLAP feeds its text tower, in pure Python.

LAION-CLAP (``laion_clap/hook.py`` ``CLAP_Module.tokenizer``, ``training/data.py`` ``tokenizer``) encodes
captions with ``RobertaTokenizer.from_pretrained("roberta-base")(text, padding="max_length", truncation=True,
max_length=77, return_tensors="pt")``: transformers' slow, pure-Python ``RobertaTokenizer`` (transformers < 5;
the class of that name in transformers >= 5 is the ``tokenizers``-backed one). This module does what that one
does with those settings, with the standard library only (NumPy for the batch arrays):

1. split the text on the special tokens ``<s>`` ``<pad>`` ``</s>`` ``<unk>`` ``<mask>`` (leftmost, longest
   first), each becoming its id; ``<mask>`` eats the whitespace on its left (``lstrip=True``: ``str.rstrip`` of
   the text before it);
2. pre-tokenise the rest with GPT-2's pattern ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|
   \\s+(?!\\S)|\\s+`` (``pretokenize``, a hand-written scanner: ``re`` has no ``\\p{..}``);
3. map each piece's UTF-8 bytes to GPT-2's printable characters (``bytes_to_unicode``) and merge by rank
   (``bpe``), looking each result up in the vocab (``<unk>`` when absent);
4. keep the first ``max_length - 2`` ids, put ``<s>`` before and ``</s>`` after, pad with ``<pad>`` to
   ``max_length`` (attention mask 1 on the tokens, 0 on the padding).

No other normalisation (no lowercasing, no Unicode normalisation, no prefix space: ``add_prefix_space=False``).

References: Radford et al. 2019 (GPT-2; ``openai/gpt-2`` ``src/encoder.py``); Liu et al. 2019 (RoBERTa);
transformers 4.x ``models/roberta/tokenization_roberta.py`` and ``tokenization_utils.py`` (``tokenize``,
``Trie``); Wu et al. 2023 (LAION-CLAP).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import TokenizerFilesError, literal

CLAP_MAX_LENGTH = 77
"""LAION-CLAP's ``max_length``: every caption becomes 77 ids."""

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
SPECIAL_TOKENS = (BOS, PAD, EOS, UNK, MASK)
"""RobertaTokenizer's special tokens; their ids are read from ``vocab.json`` (0, 1, 2, 3, 50264 in roberta-base)."""

WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                       "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
"""What ``\\s`` matches in a ``regex`` str pattern: the Unicode White_Space property (stable since Unicode 6.3).
``re``'s ``\\s`` (``str.isspace``) matches these and U+001C..U+001F (the information separators) as well, which
``regex`` counts as ``[^\\s\\p{L}\\p{N}]``; U+200B (zero width space) and U+180E are in neither."""

_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")  # after an ASCII apostrophe, in the pattern's order
_MERGES_HEADER = "#version"
_CACHE_WORDS = 1 << 16


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters.

    The printable Latin-1 bytes (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) map to themselves; the other 68
    (controls, space, U+00A0, U+00AD) to U+0100.. in byte order, so that no BPE symbol is whitespace or a control
    (a space becomes ``Ġ``, a newline ``Ċ``).

    Returns
    -------
    dict
        byte value (0..255) -> one-character str.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in mapping]
    mapping.update({b: chr(256 + n) for n, b in enumerate(others)})
    return dict(sorted(mapping.items()))


# str.translate table from the Latin-1 reading of UTF-8 bytes to the BPE alphabet
_BYTE_SYMBOLS = bytes_to_unicode()


def char_class(char: str) -> str:
    """The class GPT-2's pattern sees ``char`` in: ``"S"`` (``\\s``), ``"L"`` (``\\p{L}``), ``"N"`` (``\\p{N}``)
    or ``"O"`` (``[^\\s\\p{L}\\p{N}]``: marks, punctuation, symbols, controls, format characters, unassigned).

    Letters and numbers are the general categories L* and N* of ``unicodedata``, so of the Unicode version of the
    running Python (14.0 for 3.11): a code point assigned later (``regex`` carries a newer table) is ``"O"`` here.
    Combining marks (M*) are neither letters nor numbers: ``"e\\u0301"`` splits after the ``e``.
    """
    if char in WHITESPACE:
        return "S"
    major = unicodedata.category(char)[0]
    return major if major in ("L", "N") else "O"


def pretokenize(text: str) -> list[str]:
    """``regex.findall`` of GPT-2's pre-tokenisation pattern on ``text``, without the ``regex`` module.

    The pattern's alternatives, tried in order at each position: an ASCII apostrophe with ``s t re ve m ll d``;
    an optional U+0020 then a run of letters, of numbers or of other characters (one class per run); a run of
    whitespace that is followed by whitespace or the end (``\\s+(?!\\S)``: a run before a word leaves its last
    character to it, which becomes that word's leading space when it is U+0020); a lone whitespace character.
    Every character is in exactly one class, so the pieces concatenate back to ``text``.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str
        The pieces, in order; ``"".join(pieces) == text``.
    """
    classes = [char_class(char) for char in text]
    n = len(text)
    pieces = []
    i = 0
    while i < n:
        if text[i] == "'":
            suffix = next((s for s in _CONTRACTIONS if text.startswith(s, i + 1)), None)
            if suffix is not None:
                pieces.append(text[i:i + 1 + len(suffix)])
                i += 1 + len(suffix)
                continue
        start = i
        if text[i] == " " and i + 1 < n and classes[i + 1] != "S":
            i += 1  # `` ?`` before a run of letters, numbers or other characters
        kind = classes[i]
        end = i + 1
        while end < n and classes[end] == kind:
            end += 1
        if kind == "S" and end < n and end - i > 1:
            end -= 1  # ``\s+(?!\S)`` backtracks one character before a non-space
        pieces.append(text[start:end])
        i = end
    return pieces


def byte_symbols(piece: str) -> str:
    """``piece``'s UTF-8 bytes as BPE symbols (``bytes_to_unicode``), one character per byte."""
    return piece.encode("utf-8").decode("latin-1").translate(_BYTE_SYMBOLS)


def bpe(word: str, ranks: Mapping[tuple[str, str], int]) -> list[str]:
    """Merge ``word``'s symbols by rank, as GPT-2's (and RobertaTokenizer's) ``bpe``.

    Repeatedly take the adjacent pair of lowest rank among the word's pairs and merge every occurrence of it,
    left to right without overlap (``aaa`` with ``a a`` gives ``aa a``), until no pair has a rank.

    Parameters
    ----------
    word : str
        Symbols, one per character (``byte_symbols`` of a pre-token).
    ranks : mapping (str, str) -> int
        Merge ranks, lower first (line order of ``merges.txt``).

    Returns
    -------
    list of str
        The merged symbols; their concatenation is ``word``.
    """
    parts = list(word)
    while len(parts) > 1:
        first, second = min(zip(parts, parts[1:]), key=lambda pair: ranks.get(pair, math.inf))
        if (first, second) not in ranks:
            break
        merged = []
        i = 0
        while i < len(parts):
            if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                merged.append(first + second)
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def split_special_tokens(text: str, special_tokens: Sequence[str] = SPECIAL_TOKENS, *,
                         lstrip: Sequence[str] = (MASK,)) -> list[tuple[str, bool]]:
    """Split ``text`` on special tokens as RobertaTokenizer's ``tokenize`` does (its added-token ``Trie``).

    Leftmost occurrence first, the longest token at a position; the text just before a token in ``lstrip`` loses
    its trailing whitespace (``str.rstrip``, so ``str.isspace``'s whitespace, U+001C..U+001F included); empty
    pieces are dropped. A special token's text is never pre-tokenised: ``"a <s> b"`` holds ``<s>``'s id.

    Parameters
    ----------
    text : str
    special_tokens : sequence of str
        The tokens to split on (RoBERTa's five by default).
    lstrip : sequence of str
        Those that strip whitespace on their left (``<mask>``, an ``AddedToken(lstrip=True)`` in RobertaTokenizer).

    Returns
    -------
    list of (str, bool)
        The pieces in order, each with whether it is a special token.
    """
    pattern = _alternation(tuple(special_tokens))
    pieces: list[tuple[str, bool]] = []
    start = 0
    for match in pattern.finditer(text):
        pieces.append((text[start:match.start()], False))
        if match.group() in lstrip and pieces and not pieces[-1][1]:
            pieces[-1] = (pieces[-1][0].rstrip(), False)
        pieces.append((match.group(), True))
        start = match.end()
    pieces.append((text[start:], False))
    return [(piece, special) for piece, special in pieces if piece]


@lru_cache(maxsize=8)
def _alternation(tokens: tuple[str, ...]) -> re.Pattern[str]:
    """A pattern matching any of ``tokens``, the longest first where several start at one position."""
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)))


def _check_text(text: object, where: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{where} must be a str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # RobertaTokenizer fails on it too (``str.encode`` of the piece)
        raise ValueError(f"{where} holds an unpaired surrogate {text[exc.start]!r} at index {exc.start}: not "
                         f"encodable as UTF-8; decode the caption's bytes with errors='replace'") from exc
    return text


class RobertaTokenizer:
    """RoBERTa's tokenizer (roberta-base's ``vocab.json`` and ``merges.txt``) with LAION-CLAP's settings.

    Build it with ``from_files``. Results do not depend on the order texts are encoded in (the per-word cache
    only saves time).

    Parameters
    ----------
    vocab : mapping str -> int
        Token (BPE symbols) -> id; must hold ``SPECIAL_TOKENS``.
    merges : sequence of (str, str)
        Merge pairs, highest priority first. A pair listed twice takes its later rank, as in RobertaTokenizer
        (``dict(zip(merges, range(len(merges))))``).

    Raises
    ------
    ValueError
        If ``vocab`` lacks a special token.
    """

    def __init__(self, vocab: Mapping[str, int], merges: Sequence[tuple[str, str]]) -> None:
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"the vocab lacks the special token(s) {', '.join(missing)}")
        self.vocab = dict(vocab)
        self.ranks = dict(zip(merges, range(len(merges))))
        self.special_ids = {token: self.vocab[token] for token in SPECIAL_TOKENS}
        self.bos_id, self.eos_id = self.vocab[BOS], self.vocab[EOS]
        self.pad_id, self.unk_id = self.vocab[PAD], self.vocab[UNK]
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_files(cls, vocab_json: str | Path, merges_txt: str | Path, *, vocab_sha256: str | None = None,
                   merges_sha256: str | None = None) -> RobertaTokenizer:
        """Read roberta-base's ``vocab.json`` and ``merges.txt``, checking their sha256 when given.

        Parameters
        ----------
        vocab_json : str or Path
            A JSON object token -> id holding ``<s>`` ``<pad>`` ``</s>`` ``<unk>`` ``<mask>``.
        merges_txt : str or Path
            A ``#version`` line, then one merge a line (two tokens separated by a space, their concatenation in
            the vocab), each line ending with a newline.
        vocab_sha256, merges_sha256 : str, optional
            Hex sha256 each file must have (checked on the bytes that are then parsed).

        Returns
        -------
        RobertaTokenizer

        Raises
        ------
        TokenizerFilesError
            (also a ``ValueError``; ``.path``, ``.expected``, ``.actual``) If a file cannot be read, differs from
            its sha256, or is malformed: vocab not UTF-8 JSON, not an object of token -> non-negative int, or
            lacking a special token; merges not UTF-8, without the ``#version`` line or the final newline, with a
            line that is not two tokens, or a merge whose result is not in the vocab.
        """
        vocab = parse_vocab(_read(Path(vocab_json), vocab_sha256), path=Path(vocab_json))
        merges = parse_merges(_read(Path(merges_txt), merges_sha256), vocab, path=Path(merges_txt))
        return cls(vocab, merges)

    def _word_ids(self, piece: str) -> tuple[int, ...]:
        ids = self._cache.get(piece)
        if ids is None:
            ids = tuple(self.vocab.get(symbol, self.unk_id) for symbol in bpe(byte_symbols(piece), self.ranks))
            if len(self._cache) >= _CACHE_WORDS:
                self._cache.clear()
            self._cache[piece] = ids
        return ids

    def tokenize(self, text: str) -> list[str]:
        """``text``'s tokens (BPE symbols and special tokens), without ``<s>`` and ``</s>``.

        Raises
        ------
        TypeError
            If ``text`` is not a str.
        ValueError
            If it holds an unpaired surrogate.
        """
        tokens: list[str] = []
        for piece, special in split_special_tokens(_check_text(text, "text")):
            if special:
                tokens.append(piece)
            else:
                for word in pretokenize(piece):
                    tokens += bpe(byte_symbols(word), self.ranks)
        return tokens

    def token_ids(self, text: str) -> list[int]:
        """The ids of ``tokenize(text)`` (``<unk>``'s for a symbol not in the vocab); no truncation."""
        ids: list[int] = []
        for piece, special in split_special_tokens(_check_text(text, "text")):
            if special:
                ids.append(self.special_ids[piece])
            else:
                for word in pretokenize(piece):
                    ids += self._word_ids(word)
        return ids

    def encode_with_mask(self, text: str, *, max_length: int = CLAP_MAX_LENGTH) -> tuple[list[int], list[int]]:
        """``text`` as the text tower takes it: ids and attention mask, each of length ``max_length``.

        Parameters
        ----------
        text : str
        max_length : int
            At least 2. The first ``max_length - 2`` token ids are kept (``truncation=True``), between ``<s>`` and
            ``</s>``; ``<pad>`` fills the rest (``padding="max_length"``).

        Returns
        -------
        ids : list of int, length max_length
        mask : list of int, length max_length
            1 on ``<s>``, the tokens and ``</s>``; 0 on the padding. (A literal ``"<pad>"`` in the text has the
            pad id and mask 1, so the mask is not ``ids != pad``.)

        Raises
        ------
        TypeError
            If ``text`` is not a str, or ``max_length`` not an int.
        ValueError
            If ``text`` holds an unpaired surrogate, or ``max_length`` < 2.
        """
        _check_max_length(max_length)
        ids = [self.bos_id, *self.token_ids(text)[:max_length - 2], self.eos_id]
        padding = max_length - len(ids)
        return ids + [self.pad_id] * padding, [1] * len(ids) + [0] * padding

    def encode(self, text: str, *, max_length: int = CLAP_MAX_LENGTH) -> list[int]:
        """The ids of ``encode_with_mask`` (``<s> ... </s>``, truncated, padded to ``max_length``)."""
        return self.encode_with_mask(text, max_length=max_length)[0]

    def encode_batch(self, texts: Sequence[str], *,
                     max_length: int = CLAP_MAX_LENGTH) -> tuple[np.ndarray, np.ndarray]:
        """A batch of captions as LAION-CLAP's ``tokenizer(texts)`` gives it (``input_ids``, ``attention_mask``).

        Parameters
        ----------
        texts : sequence of str, length batch
            Not a str itself (that would be a batch of characters).
        max_length : int
            As in ``encode_with_mask``.

        Returns
        -------
        input_ids : np.ndarray, shape (batch, max_length), int64
        attention_mask : np.ndarray, shape (batch, max_length), int64

        Raises
        ------
        TypeError
            If ``texts`` is a str or an element is not a str (named by index).
        ValueError
            As ``encode_with_mask``.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, got a str; wrap a single caption in a list")
        _check_max_length(max_length)
        rows = [self.encode_with_mask(_check_text(text, f"texts[{i}]"), max_length=max_length)
                for i, text in enumerate(texts)]
        ids = np.array([r[0] for r in rows], dtype=np.int64).reshape(len(rows), max_length)
        mask = np.array([r[1] for r in rows], dtype=np.int64).reshape(len(rows), max_length)
        return ids, mask


def _check_max_length(max_length: int) -> None:
    if not isinstance(max_length, int) or isinstance(max_length, bool):
        raise TypeError(f"max_length must be an int, got {type(max_length).__name__}")
    if max_length < 2:
        raise ValueError(f"max_length is {max_length}: it must be at least 2 (room for <s> and </s>)")


def _read(path: Path, sha256: str | None) -> bytes:
    """``path``'s bytes, after checking their sha256 against ``sha256`` (when given)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenizerFilesError("{path} cannot be read ({actual}); expected {expected}", path=path,
                                  expected="a readable file", actual=exc.strerror or type(exc).__name__) from exc
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256.lower():
            raise TokenizerFilesError("{path}: sha256 is {actual}, but {expected} is pinned for it; the file is "
                                      "corrupt or another tokenizer's: download roberta-base's again",
                                      path=path, expected=sha256, actual=actual)
    return data


def _refuse(path: Path, problem: str, expected: str, actual: str) -> TokenizerFilesError:
    return TokenizerFilesError("{path}: " + literal(problem) + ": expected {expected}, got {actual}", path=path,
                               expected=expected, actual=actual)


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(path, "not UTF-8 text", "UTF-8", f"byte {data[exc.start]:#04x} at offset {exc.start}") from exc


def parse_vocab(data: bytes, *, path: Path) -> dict[str, int]:
    """roberta-base's ``vocab.json`` from its bytes (``path`` names it in errors).

    Returns
    -------
    dict
        token -> id, in the file's order.

    Raises
    ------
    TokenizerFilesError
        If it is not UTF-8 JSON, not an object of token -> non-negative int, or lacks a special token.
    """
    try:
        vocab = json.loads(_decode(data, path))
    except json.JSONDecodeError as exc:
        raise _refuse(path, "not JSON", "a JSON object token -> id", f"{exc.msg} at line {exc.lineno} column "
                                                                     f"{exc.colno}") from exc
    if not isinstance(vocab, dict):
        raise _refuse(path, "not a vocab", "a JSON object token -> id", f"a JSON {type(vocab).__name__}")
    for token, index in vocab.items():
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise _refuse(path, f"token {token!r} has no valid id", "a non-negative integer", repr(index))
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise _refuse(path, "missing special token(s)", " ".join(SPECIAL_TOKENS), "no " + " ".join(missing))
    return vocab


def parse_merges(data: bytes, vocab: Mapping[str, int], *, path: Path) -> list[tuple[str, str]]:
    """roberta-base's ``merges.txt`` from its bytes, checked against ``vocab`` (``path`` names it in errors).

    RobertaTokenizer reads ``text.split("\\n")[1:-1]``: it drops the first line (the ``#version`` header) and
    the last (empty after the final newline), whatever they hold; a file whose first line is a merge, or with no
    final newline, would lose a merge silently, so both are refused here.

    Returns
    -------
    list of (str, str)
        The merges, in rank order.

    Raises
    ------
    TokenizerFilesError
        If it is not UTF-8, its first line is not ``#version...``, it does not end with a newline, a line is not
        two tokens (named by line number), or a merge's result is not in the vocab.
    """
    lines = _decode(data, path).split("\n")
    if not lines[0].startswith(_MERGES_HEADER):
        raise _refuse(path, "line 1 is not the header", "'#version: 0.2'", repr(lines[0][:80]))
    if len(lines) < 2 or lines[-1]:
        raise _refuse(path, f"line {len(lines)} does not end with a newline (RobertaTokenizer would drop it)",
                      "a newline after the last line", repr(lines[-1][:80]))
    merges = []
    for number, line in enumerate(lines[1:-1], start=2):
        parts = line.split()
        if len(parts) != 2:
            raise _refuse(path, f"line {number} is not a merge", "two tokens separated by a space",
                          f"{len(parts)} token(s): {line[:80]!r}")
        if parts[0] + parts[1] not in vocab:
            raise _refuse(path, f"line {number}: the merge's result is not in the vocab",
                          "a token of the vocab", repr(parts[0] + parts[1]))
        merges.append((parts[0], parts[1]))
    return merges
