"""Base codes, k-mer tokens, one-hot, counts and reverse complements against hand-made expectations."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tasks import splits
from tasks.genome import encode, sources, training

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


def reference_counts(text: str, k: int) -> np.ndarray:
    """k-mer counts the slow, obvious way: records split on '>' lines, whitespace dropped, upper case, k-mers of
    A/C/G/T only."""
    records: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith(">"):
            records.append("")
        elif records:
            records[-1] += "".join(line.split()).upper()
    naive = Counter(seq[i:i + k] for seq in records for i in range(len(seq) - k + 1)
                    if set(seq[i:i + k]) <= set("ACGT"))
    return np.array([naive[name] for name in encode.kmer_strings(k)], dtype=np.int64)


def wrapped(seq: str, width: int) -> str:
    return "".join(seq[i:i + width] + "\n" for i in range(0, len(seq), width)) if width else seq + "\n"


def multi_record_fasta(seed: int = 0) -> str:
    """Records of 0 to 700 bases, wrapped at various widths (or not), lowercase runs, Ns, IUPAC codes, a stray
    '>' inside a line, headers holding bases and '>', blank lines; no final newline."""
    rng = np.random.default_rng(seed)
    parts = ["\n"]
    for i, (length, width) in enumerate([(700, 60), (0, 60), (3, 60), (6, 60), (450, 7), (300, 0), (520, 61),
                                         (40, 1), (650, 13)]):
        seq = rng.choice(list("ACGT"), size=length)
        seq[rng.random(length) < 0.02] = "N"
        seq[rng.random(length) < 0.005] = "R"
        if length > 100:
            seq[50:90] = np.char.lower(seq[50:90])
            seq[100:112] = "N"
        parts.append(f">rec{i} {''.join(seq[:9])} label=x>y\n" + wrapped("".join(seq), width))
    parts.insert(4, "\n>stray\nACGTACGT>CGTACGTAC\n\n")
    return "".join(parts).rstrip("\n")


class TestCountKmersFile:
    @pytest.fixture
    def fasta(self, tmp_path: Path) -> tuple[Path, str]:
        text = multi_record_fasta()
        (tmp_path / "g.fa").write_text(text)
        return tmp_path / "g.fa", text

    @pytest.mark.parametrize("k", [1, 3, 6])
    def test_equal_to_a_reference_and_to_the_per_record_counts(self, fasta, k) -> None:
        path, text = fasta
        counts = sources.count_kmers_file(path, k, workers=1)
        np.testing.assert_array_equal(counts, reference_counts(text, k))
        per_record = np.zeros(4**k, dtype=np.int64)
        for _id, _label, seq in sources.iter_records(path):
            encode.count_kmers_in(encode.codes_of(seq), k, per_record)
        np.testing.assert_array_equal(counts, per_record)

    @pytest.fixture
    def led(self, tmp_path: Path) -> tuple[Path, str]:
        text = "ACGTACGTTT skipped: before the first header\n" + multi_record_fasta()
        (tmp_path / "lead.fa").write_text(text)
        return tmp_path / "lead.fa", text

    @staticmethod
    def count_ranges(path: Path, bounds: list[int], k: int, chunk_bytes: int = 4) -> np.ndarray:
        counts = np.zeros(4**k, dtype=np.int64)
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            for codes in sources.iter_range_codes(path, start, stop, chunk_bytes=chunk_bytes, overlap=k - 1):
                encode.count_kmers_in(codes, k, counts)
        return counts

    @pytest.mark.parametrize("range_bytes", [1, 3, 8, 61])
    def test_byte_ranges_tiling_the_file_count_every_kmer_once(self, led, range_bytes: int) -> None:
        path, text = led
        size = path.stat().st_size
        counts = self.count_ranges(path, [*range(0, size, range_bytes), size], 6)
        np.testing.assert_array_equal(counts, reference_counts(text, 6))

    def test_a_split_at_any_byte(self, led) -> None:
        path, text = led
        expected, size = reference_counts(text, 6), path.stat().st_size
        for split in range(1, size):
            counts = self.count_ranges(path, [0, split, size], 6, chunk_bytes=1 << 16)
            np.testing.assert_array_equal(counts, expected, err_msg=f"split at byte {split}")

    def test_one_and_two_workers_agree(self, fasta) -> None:
        path, text = fasta
        one = sources.count_kmers_file(path, 6, workers=1, range_bytes=97)
        two = sources.count_kmers_file(path, 6, workers=2, range_bytes=97, chunk_bytes=16)
        np.testing.assert_array_equal(one, two)
        np.testing.assert_array_equal(two, reference_counts(text, 6))

    @pytest.mark.parametrize("newline", ["\r\n", "\r"])
    def test_crlf_and_cr_line_endings(self, tmp_path: Path, newline: str) -> None:
        text = multi_record_fasta(seed=1).replace("\n", newline)
        (tmp_path / "w.fa").write_bytes(text.encode())
        np.testing.assert_array_equal(sources.count_kmers_file(tmp_path / "w.fa", 4, range_bytes=29, workers=1),
                                      reference_counts(text, 4))

    def test_gzip_is_streamed_in_small_blocks(self, tmp_path: Path) -> None:
        text = multi_record_fasta(seed=2)
        (tmp_path / "g.fa.gz").write_bytes(gzip.compress(text.encode()))
        counts = sources.count_kmers_file(tmp_path / "g.fa.gz", 5, workers=2, chunk_bytes=7)
        np.testing.assert_array_equal(counts, reference_counts(text, 5))
