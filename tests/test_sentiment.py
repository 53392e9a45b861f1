"""Cleaning, checks, features and readers for posts, with exact expectations on tiny inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.errors import BadInputError
from tasks.sentiment import checks, clean, features, sources


class TestClean:
    def test_every_step(self) -> None:
        out = clean.clean_posts(pd.Series(["@bob I LOVE this phone soooo much 😍 :) https://x.co/a #Happy 2024"]))
        assert out["tokens"][0] == ["<user>", "love", "phone", "soo", "much", ":smiling_face_with_heart-eyes:",
                                    "emo_smile", "<url>", "<hashtag>", "happy", "<number>"]

    def test_negations_survive_stopword_removal(self) -> None:
        out = clean.clean_posts(pd.Series(["This is NOT good and I will never buy it, no way"]))
        assert out["tokens"][0] == ["not", "good", "never", "buy", "no", "way"]

    def test_lemmas(self) -> None:
        assert clean.clean_posts(pd.Series(["loved the movies"]))["tokens"][0] == ["love", "movie"]

    def test_steps_can_be_turned_off(self) -> None:
        options = clean.CleanOptions(lowercase=False, remove_stopwords=False, lemmatize=False, replace_urls=False)
        out = clean.clean_posts(pd.Series(["The Movies http://a.b"]), options)
        assert out["tokens"][0] == ["The", "Movies", "http", "a", "b"]

    def test_empty_and_missing_text(self) -> None:
        out = clean.clean_posts(pd.Series(["", None]))
        assert out["tokens"].tolist() == [[], []]


class TestChecks:
    def test_quarantine_reasons_and_duplicates(self) -> None:
        posts = pd.DataFrame({"id": list("abcdef"), "text": ["good", " ", "bad", "good", "x" * 20, "fine"],
                              "label": ["pos", "neg", None, "pos", "neg", "pos"]})
        valid, quarantined = checks.check_posts(posts, max_chars=10)
        assert valid["id"].tolist() == ["a", "f"]
        assert dict(zip(quarantined["id"], quarantined["reason"], strict=True)) == {
            "b": "empty text", "c": "missing label", "d": "duplicate text (the first post with it is kept)",
            "e": "text longer than 10 characters"}
        profile = checks.posts_profile(valid, quarantined)
        assert profile["duplicate_share"].iloc[0] == pytest.approx(1 / 6)


class TestFeatures:
    def test_vocabulary_from_training_tokens_only(self) -> None:
        vocab = features.build_vocabulary([["good", "good", "film"], ["good", "plot"]], min_count=2)
        assert vocab == {"good": 2}
        ids = features.token_ids([["good", "film", "good"], []], vocab, 4)
        assert ids.tolist() == [[2, features.UNKNOWN, 2, 0], [0, 0, 0, 0]]

    def test_tfidf_ignores_tokens_unseen_in_training(self) -> None:
        vectorizer = features.fit_tfidf([["good", "film"], ["bad", "film"]])
        matrix = features.tfidf_matrix(vectorizer, [["unseen", "words"]])
        assert matrix.nnz == 0


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
        assert repairs == {"undecodable_replaced": 1, "mojibake_repaired": 1}

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


def test_a_1mb_post_is_quarantined_not_a_crash() -> None:
    posts = pd.DataFrame({"id": ["big", "ok"], "text": ["a" * 1_000_000, "ok"], "label": ["x", "y"]})
    valid, quarantined = checks.check_posts(posts)
    assert valid["id"].tolist() == ["ok"] and quarantined["reason"].tolist() == ["text longer than 5000 characters"]
    assert np.all(clean.clean_posts(valid["text"])["tokens"].map(len) == 1)
