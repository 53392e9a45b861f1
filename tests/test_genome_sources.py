"""Reading FASTA, FASTQ, gzip and CSV with labels from every place they can come from; bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tasks.errors import BadInputError
from tasks.genome import sources

FASTA = ">s1 label=promoter some text\nACGTACGT\nACGT\n>s2 label=background\nTTTT\n"


class TestFormats:
    def test_fasta_with_labels_in_headers(self, tmp_path: Path) -> None:
        (tmp_path / "a.fa").write_text(FASTA)
        table = sources.read_records(str(tmp_path / "a.fa"))
        assert table[["id", "label", "sequence"]].values.tolist() == [["s1", "promoter", "ACGTACGTACGT"],
                                                                      ["s2", "background", "TTTT"]]

    def test_gzipped_fastq(self, tmp_path: Path) -> None:
        with gzip.open(tmp_path / "r.fq.gz", "wt") as fh:
            fh.write("@r1 label=x\nACGT\n+\nIIII\n@r2 label=y\nGGCC\n+\nIIII\n")
        table = sources.read_records(str(tmp_path / "r.fq.gz"))
        assert table["id"].tolist() == ["r1", "r2"] and table["label"].tolist() == ["x", "y"]

    def test_csv_id_label_sequence(self, tmp_path: Path) -> None:
        (tmp_path / "s.csv").write_text("id,label,sequence\na,pos,ACGT\nb,neg,TTGG\n")
        assert sources.read_records(str(tmp_path / "s.csv"))["label"].tolist() == ["pos", "neg"]

    def test_csv_columns_under_other_common_names(self, tmp_path: Path) -> None:
        (tmp_path / "s.csv").write_text("Name,Class,Seq\na,pos,ACGT\nb,neg,TTGG\n")
        table = sources.read_records(str(tmp_path / "s.csv"))
        assert table[["id", "label", "sequence"]].values.tolist() == [["a", "pos", "ACGT"], ["b", "neg", "TTGG"]]

    def test_mixed_line_endings(self, tmp_path: Path) -> None:
        (tmp_path / "m.fa").write_bytes(b">s1 label=a\r\nACGT\r\nAC\n>s2 label=b\rGG\r\n")
        table = sources.read_records(str(tmp_path / "m.fa"))
        assert table["sequence"].tolist() == ["ACGTAC", "GG"]

    def test_labels_csv_overrides_and_filename_labels(self, tmp_path: Path) -> None:
        (tmp_path / "a.fa").write_text(FASTA)
        (tmp_path / "labels.csv").write_text("id,label\ns1,x\ns2,y\n")
        table = sources.read_records(str(tmp_path / "a.fa"), labels=str(tmp_path / "labels.csv"))
        assert table["label"].tolist() == ["x", "y"]
        (tmp_path / "enhancer.fasta").write_text(">e1\nACGT\n")
        table = sources.read_records([str(tmp_path / "enhancer.fasta")], label_from_filename=True)
        assert table["label"].tolist() == ["enhancer"]


class TestBadFiles:
    def test_label_file_naming_unknown_ids(self, tmp_path: Path) -> None:
        (tmp_path / "a.fa").write_text(FASTA)
        (tmp_path / "labels.csv").write_text("id,label\ns1,x\nghost,y\n")
        with pytest.raises(BadInputError, match=r"names 1 id\(s\) not in the sequences, e\.g\. \['ghost'\]"):
            sources.read_records(str(tmp_path / "a.fa"), labels=str(tmp_path / "labels.csv"))

    def test_truncated_gzip(self, tmp_path: Path) -> None:
        data = gzip.compress((FASTA * 200).encode())
        (tmp_path / "t.fa.gz").write_bytes(data[: len(data) // 2])
        with pytest.raises(BadInputError, match=r"t\.fa\.gz: .*(truncated|corrupt)"):
            sources.read_records(str(tmp_path / "t.fa.gz"))

    def test_binary_data(self, tmp_path: Path) -> None:
        (tmp_path / "b.fa").write_bytes(bytes(range(256)) * 4)
        with pytest.raises(BadInputError, match=r"b\.fa: binary data"):
            sources.read_records(str(tmp_path / "b.fa"))

    def test_empty_file(self, tmp_path: Path) -> None:
        (tmp_path / "e.fa").write_text("")
        with pytest.raises(BadInputError, match=r"e\.fa: empty file"):
            sources.read_records(str(tmp_path / "e.fa"))

    def test_not_a_sequence_file(self, tmp_path: Path) -> None:
        (tmp_path / "x.txt").write_text("hello world\n")
        with pytest.raises(BadInputError, match=r"not FASTA \('>'\), FASTQ \('@'\) or a CSV"):
            sources.read_records(str(tmp_path / "x.txt"))

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(BadInputError, match="no such file or folder"):
            sources.read_records(str(tmp_path / "nope.fa"))

    def test_kmer_counts_of_a_fastq_missing_or_truncated_file(self, tmp_path: Path) -> None:
        (tmp_path / "r.fq").write_text("@r1\nACGT\n+\nIIII\n")
        with pytest.raises(BadInputError, match=r"r\.fq: is FASTQ, not FASTA"):
            sources.count_kmers_file(tmp_path / "r.fq", 4)
        with pytest.raises(BadInputError, match=r"nope\.fa: no such file"):
            sources.count_kmers_file(tmp_path / "nope.fa", 4)
        data = gzip.compress((FASTA * 2000).encode())
        (tmp_path / "t.fa.gz").write_bytes(data[: len(data) // 2])
        with pytest.raises(BadInputError, match=r"t\.fa\.gz: .*truncated or corrupt"):
            sources.count_kmers_file(tmp_path / "t.fa.gz", 4)
