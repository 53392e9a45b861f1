"""Sequences to numbers, vectorised: base codes, overlapping k-mer tokens, one-hot, k-mer counts.

Base codes are A=0, C=1, G=2, T=3, anything else (N and other IUPAC codes) 4, padding 5. No function here
loops over bases in Python: a 256-entry lookup table maps bytes to codes and k-mers are rolled with shifts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_CODE, PAD_CODE = 4, 5
PAD_TOKEN, UNKNOWN_TOKEN = 0, 1
PADDING_MODES = ("right", "left", "centre")

LOOKUP = np.full(256, N_CODE, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    LOOKUP[_b] = _i
    LOOKUP[_b + 32] = _i  # soft-masked lowercase
COMPLEMENT = np.array([3, 2, 1, 0, N_CODE, PAD_CODE], dtype=np.uint8)


def vocabulary_size(k: int) -> int:
    """4^k k-mers plus the padding and unknown tokens."""
    return 4**k + 2


def codes_of(sequence: str | bytes) -> np.ndarray:
    """Base codes of one sequence (uint8)."""
    data = sequence.encode("ascii", "replace") if isinstance(sequence, str) else sequence
    return LOOKUP[np.frombuffer(data, dtype=np.uint8)]


def base_codes(sequences: Sequence[str], length: int, *, padding: str = "right") -> np.ndarray:
    """(n, length) uint8 codes: sequences cut or padded to ``length``.

    ``right`` keeps the start and pads at the end, ``left`` keeps the end and pads at the start,
    ``centre`` keeps the middle and pads both sides equally.
    """
    if padding not in PADDING_MODES:
        raise ValueError(f"unknown padding {padding!r}; choose one of {', '.join(PADDING_MODES)}")
    n = len(sequences)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=n)
    buffer = codes_of("".join(sequences))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if n else np.zeros(0, np.int64)
    excess = lengths - length
    if padding == "right":
        src_skip, dst_skip = np.zeros(n, np.int64), np.zeros(n, np.int64)
    elif padding == "left":
        src_skip, dst_skip = np.maximum(excess, 0), np.maximum(-excess, 0)
    else:
        src_skip, dst_skip = np.maximum(excess, 0) // 2, np.maximum(-excess, 0) // 2
    position = np.arange(length, dtype=np.int64)[None, :] - dst_skip[:, None]
    inside = (position >= 0) & (position < np.minimum(lengths, length)[:, None])
    index = np.where(inside, starts[:, None] + src_skip[:, None] + position, 0)
    out = np.full((n, length), PAD_CODE, dtype=np.uint8)
    if buffer.size:
        out[inside] = buffer[index[inside]]
    return out


def kmer_tokens(codes: np.ndarray, k: int) -> np.ndarray:
    """(n, L - k + 1) int32 token ids of the overlapping k-mers of each row.

    A k-mer of A/C/G/T gets 2 + its base-4 value; one that touches an N is UNKNOWN_TOKEN, one that touches
    padding is PAD_TOKEN.
    """
    n, length = codes.shape
    width = length - k + 1
    if width <= 0:
        return np.zeros((n, 0), dtype=np.int32)
    value = np.zeros((n, width), dtype=np.int64)
    has_n = np.zeros((n, width), dtype=bool)
    has_pad = np.zeros((n, width), dtype=bool)
    for j in range(k):
        window = codes[:, j:j + width]
        value = value * 4 + np.minimum(window, 3)
        has_n |= window == N_CODE
        has_pad |= window == PAD_CODE
    tokens = (value + 2).astype(np.int32)
    tokens[has_n] = UNKNOWN_TOKEN
    tokens[has_pad] = PAD_TOKEN
    return tokens


def one_hot(codes: np.ndarray) -> np.ndarray:
    """(n, L, 4) float32: a 1 per known base, 0.25 everywhere for N, zeros for padding."""
    table = np.zeros((6, 4), dtype=np.float32)
    table[:4] = np.eye(4, dtype=np.float32)
    table[N_CODE] = 0.25
    return table[codes]


def kmer_counts(tokens: np.ndarray, k: int) -> np.ndarray:
    """(n, 4^k) counts of each k-mer per row (padding and unknown tokens are not counted)."""
    n = tokens.shape[0]
    size = 4**k
    rows = np.repeat(np.arange(n, dtype=np.int64), tokens.shape[1])
    flat = tokens.reshape(-1).astype(np.int64) - 2
    keep = flat >= 0
    counts = np.bincount(rows[keep] * size + flat[keep], minlength=n * size)
    return counts.reshape(n, size).astype(np.uint16 if tokens.shape[1] < 65_536 else np.uint32)


def count_kmers_in(codes: np.ndarray, k: int, counts: np.ndarray | None = None) -> np.ndarray:
    """Add the k-mers of one long code array (a chromosome chunk) to ``counts`` (4^k int64).

    Values roll in place in the smallest unsigned type that holds 4^k + 1 values (uint16 up to k = 7); k-mers
    touching a code above 3 go to one extra bin that is dropped; one ``np.bincount``.
    """
    size = 4**k
    counts = np.zeros(size, dtype=np.int64) if counts is None else counts
    width = codes.size - k + 1
    if width <= 0:
        return counts
    dtype = np.uint16 if size < 2**16 else np.uint32 if size < 2**32 else np.uint64
    bases = codes.astype(dtype)
    np.bitwise_and(bases, 3, out=bases)
    value = bases[:width].copy()
    for j in range(1, k):
        np.left_shift(value, 2, out=value)
        np.bitwise_or(value, bases[j:j + width], out=value)
    unknown = codes > 3
    if unknown.any():
        bad = unknown[:width].copy()
        for j in range(1, k):
            np.bitwise_or(bad, unknown[j:j + width], out=bad)
        value[bad] = size
        counts += np.bincount(value, minlength=size + 1)[:size]
    else:
        counts += np.bincount(value, minlength=size)
    return counts


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of each row of base codes (N and padding stay as they are)."""
    return COMPLEMENT[codes[:, ::-1]]


def kmer_strings(k: int) -> list[str]:
    """The k-mer of each count column, in order (for reports and for checking against other tools)."""
    idx = np.arange(4**k)
    letters = np.array(list("ACGT"))
    digits = [(idx // 4 ** (k - 1 - j)) % 4 for j in range(k)]
    return ["".join(chars) for chars in zip(*(letters[d] for d in digits), strict=True)]
