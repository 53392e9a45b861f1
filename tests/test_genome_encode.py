"""Base codes, k-mer tokens, one-hot, counts and reverse complements against hand-made expectations."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tasks import splits
from tasks.genome import encode, training

A, C, G, T, N, P = 0, 1, 2, 3, encode.N_CODE, encode.PAD_CODE


class TestBaseCodes:
    def test_soft_masked_and_unknown_bases(self) -> None:
        assert encode.base_codes(["acGTNR"], 6).tolist() == [[A, C, G, T, N, N]]

    @pytest.mark.parametrize("padding, short, long", [
        ("right", [A, C, G, P, P], [A, A, C, C, G]),
        ("left", [P, P, A, C, G], [C, G, G, T, T]),
        ("centre", [P, A, C, G, P], [A, C, C, G, G]),
    ])
    def test_padding_and_truncation(self, padding, short, long) -> None:
        out = encode.base_codes(["ACG", "AACCGGTT"], 5, padding=padding)
        assert out.tolist() == [short, long]

    def test_unknown_padding(self) -> None:
        with pytest.raises(ValueError, match="right, left, centre"):
            encode.base_codes(["A"], 2, padding="middle")


class TestKmers:
    def test_tokens_are_base4_values_plus_two(self) -> None:
        codes = encode.base_codes(["ACGTN"], 6)
        assert encode.kmer_tokens(codes, 2).tolist() == [[2 + 1, 2 + 6, 2 + 11, encode.UNKNOWN_TOKEN,
                                                          encode.PAD_TOKEN]]
        assert encode.vocabulary_size(2) == 18

    def test_counts_match_a_naive_counter(self) -> None:
        rng = np.random.default_rng(0)
        seqs = ["".join(rng.choice(list("ACGTN"), size=n, p=[0.24, 0.24, 0.24, 0.24, 0.04])) for n in (30, 57, 80)]
        k = 3
        counts = encode.kmer_counts(encode.kmer_tokens(encode.base_codes(seqs, 80), k), k)
        names = encode.kmer_strings(k)
        for row, seq in zip(counts, seqs, strict=True):
            naive = Counter(seq[i:i + k] for i in range(len(seq) - k + 1) if "N" not in seq[i:i + k])
            assert {names[j]: int(c) for j, c in enumerate(row) if c} == dict(naive)

    def test_streaming_counts_of_one_long_sequence(self) -> None:
        seq = "ACGTTGCANACGT"
        counts = encode.count_kmers_in(encode.codes_of(seq), 2)
        naive = Counter(seq[i:i + 2] for i in range(len(seq) - 1) if "N" not in seq[i:i + 2])
        names = encode.kmer_strings(2)
        assert {names[j]: int(c) for j, c in enumerate(counts) if c} == dict(naive)


class TestOneHotAndReverseComplement:
    def test_one_hot(self) -> None:
        out = encode.one_hot(encode.base_codes(["AN"], 3))
        assert out.shape == (1, 3, 4)
        assert out[0].tolist() == [[1, 0, 0, 0], [0.25] * 4, [0, 0, 0, 0]]

    def test_reverse_complement(self) -> None:
        codes = encode.base_codes(["AACGN"], 5)
        assert encode.reverse_complement(codes).tolist() == encode.base_codes(["NCGTT"], 5).tolist()


class TestTrainingHelpers:
    def test_stratified_split_keeps_class_proportions(self) -> None:
        labels = np.repeat([0, 1, 2], [100, 200, 300])
        split = splits.stratified_split(labels, seed=0)
        for s in (0, 1, 2):
            shares = np.bincount(labels[split == s], minlength=3) / (split == s).sum()
            np.testing.assert_allclose(shares, [1 / 6, 2 / 6, 3 / 6], atol=0.02)

    def test_sliding_windows_cover_the_whole_sequence(self) -> None:
        rec, starts = training.sliding_windows(np.array([10, 3, 25]), 10, 5)
        assert list(zip(rec.tolist(), starts.tolist(), strict=True)) == [(0, 0), (1, 0), (2, 0), (2, 5), (2, 10),
                                                                        (2, 15)]

    def test_reverse_complement_augmentation_doubles_with_same_labels(self) -> None:
        codes, labels = training.with_reverse_complements(encode.base_codes(["AC", "GG"], 2), np.array([0, 1]))
        assert codes.shape == (4, 2) and labels.tolist() == [0, 1, 0, 1]


def test_streaming_counts_agree_with_the_per_record_counts_for_several_k() -> None:
    rng = np.random.default_rng(3)
    seq = "".join(rng.choice(list("ACGTN"), size=5000, p=[0.249, 0.249, 0.249, 0.249, 0.004]))
    for k in (1, 3, 6, 8):
        tokens = encode.kmer_tokens(encode.base_codes([seq], len(seq)), k)
        np.testing.assert_array_equal(encode.count_kmers_in(encode.codes_of(seq), k),
                                      encode.kmer_counts(tokens, k)[0])
