"""Reading posts from CSV, JSON lines and Parquet, repaired and with errors a person can act on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.errors import BadInputError
from tasks.sentiment import sources


class TestReadPosts:
    def test_csv_with_default_columns(self, tmp_path: Path) -> None:
        (tmp_path / "p.csv").write_text("id,Text,Sentiment\n1,hello,positive\n2,meh,negative\n")
        posts, repairs = sources.read_posts(str(tmp_path / "p.csv"))
        assert posts["label"].tolist() == ["positive", "negative"] and repairs["mojibake_repaired"] == 0

    def test_jsonl_and_parquet(self, tmp_path: Path) -> None:
        (tmp_path / "p.jsonl").write_text('{"content": "nice", "label": "pos"}\n{"content": "bad", "label": "neg"}\n')
        assert sources.read_posts(str(tmp_path / "p.jsonl"))[0]["text"].tolist() == ["nice", "bad"]
        pd.DataFrame({"post": ["a"], "label": ["x"]}).to_parquet(tmp_path / "p.parquet")
        assert sources.read_posts(str(tmp_path / "p.parquet"))[0]["text"].tolist() == ["a"]

    def test_invalid_bytes_and_mojibake_are_repaired_and_counted(self, tmp_path: Path) -> None:
        raw = "text,label\ncafÃ© was great,pos\n".encode() + b"bad \xff byte,neg\n"
        (tmp_path / "p.csv").write_bytes(raw)
        posts, repairs = sources.read_posts(str(tmp_path / "p.csv"))
        assert posts["text"][0] == "café was great"
        assert {k: repairs[k] for k in ("undecodable_replaced", "mojibake_repaired")} == {
            "undecodable_replaced": 1, "mojibake_repaired": 1}
        assert repairs["read"] == {"text_column": "text", "label_column": "label", "columns": "text, label",
                                   "encoding": "utf-8"}

    def test_compressed_csv(self, tmp_path: Path) -> None:
        import bz2

        (tmp_path / "p.csv.bz2").write_bytes(bz2.compress(b"text,label\nnice,pos\nbad,neg\n"))
        assert sources.read_posts(str(tmp_path / "p.csv.bz2"))[0]["text"].tolist() == ["nice", "bad"]
        (tmp_path / "t.csv.bz2").write_bytes(bz2.compress(b"text,label\n" * 1000)[:40])
        with pytest.raises(BadInputError, match="truncated or corrupt"):
            sources.read_posts(str(tmp_path / "t.csv.bz2"))

    def test_latin1_input_with_encoding_option(self, tmp_path: Path) -> None:
        (tmp_path / "p.csv").write_bytes("text,label\ncrème brûlée,pos\n".encode("latin-1"))
        posts, repairs = sources.read_posts(str(tmp_path / "p.csv"), encoding="latin-1")
        assert posts["text"][0] == "crème brûlée" and repairs["undecodable_replaced"] == 0

    def test_missing_column_lists_the_columns_found(self, tmp_path: Path) -> None:
        (tmp_path / "p.csv").write_text("id,body_text,stars\n1,x,5\n")
        with pytest.raises(BadInputError, match="no text column .*; columns are: id, body_text, stars"):
            sources.read_posts(str(tmp_path / "p.csv"))
        with pytest.raises(BadInputError, match="label column 'mood' not found; columns are: id, body_text"):
            sources.read_posts(str(tmp_path / "p.csv"), text_column="body_text", label_column="mood")

    @pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"\x00\x01\x02" * 100, "binary data")])
    def test_empty_and_binary_files(self, tmp_path: Path, content: bytes, message: str) -> None:
        (tmp_path / "p.csv").write_bytes(content)
        with pytest.raises(BadInputError, match=message):
            sources.read_posts(str(tmp_path / "p.csv"))
