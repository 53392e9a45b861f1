"""Cleaning, checks, features and readers for posts, with exact expectations on tiny inputs."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import fields, replace
from pathlib import Path

import emoji
import numpy as np
import pandas as pd
import pytest
import simplemma

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


TRICKY = ["@bob I LOVE this phone soooo much 😍😍 :) https://x.co/a?b=1 #Happy2024 3.14 and 1,000",
          "This is NOT good, I will never buy it :( :-( :'(", "<3 ;) :D :-D www.Example.com/x @a_b #c_d",
          "", "   ", None, "\t\n", "Кот любит 😂 молоко", "日本語のテキスト #タグ", "ΣΟΦΟΣ ΚΑΙ Σ", "İstanbul ıı ſ K",
          "café ﬁne ＦＵＬＬ　ｗｉｄｔｈ １２３", "1\ufe0f\u20e3 #1 👩\u200d💻 coding ☕\ufe0e tea 👍🏽",
          "e\u0301te\u0301",
          "NUL\x00inside #x 42", "yesss nooo!!! 2024-01-02 12:30 v1.2.3", "don't won't can't cannot nor",
          "goooood 😍 movies were loved", "@@x ##y http://", "x😍y 12:)34 ab#cd"]


def reference_clean(text: object, o: clean.CleanOptions) -> list[str]:
    """The cleaning steps written plainly, one post at a time, in the order clean.py documents."""
    t = "" if text is None or pd.isna(text) else str(text)
    if o.normalize_unicode:
        t = unicodedata.normalize("NFKC", t)
    if o.emoji_to_words:
        for face, word in clean.EMOTICONS.items():
            t = t.replace(face, word)
        if emoji.emoji_count(t):
            t = emoji.demojize(t, delimiters=(" :", ": "))
    if o.replace_urls:
        t = clean.URL.sub(" <url> ", t)
    if o.replace_mentions:
        t = clean.MENTION.sub(" <user> ", t)
    t = clean.HASHTAG.sub(r" <hashtag> \1 " if o.keep_hashtag_words else " <hashtag> ", t)
    if o.lowercase:
        t = pd.Series([t]).str.lower()[0]
    if o.replace_numbers:
        t = clean.NUMBER.sub(" <number> ", t)
    if o.shorten_elongations:
        t = clean.ELONGATED.sub(r"\1\1", t)
    tokens = clean.TOKEN.findall(re.sub(r"\s+", " ", t).strip())
    if o.remove_stopwords:
        tokens = [x for x in tokens if x not in clean.STOPWORDS]
    return [simplemma.lemmatize(x, lang="en") if o.lemmatize and x.isalpha() else x for x in tokens]


OPTION_SETS = [clean.CleanOptions(), clean.CleanOptions(**dict.fromkeys(clean.CleanOptions().as_dict(), False)),
               *(replace(clean.CleanOptions(), **{f.name: False}) for f in fields(clean.CleanOptions))]


class TestCleanMatchesPerPostReference:
    @pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(k for k, v in o.as_dict().items() if not v)
                             or "defaults")
    def test_tricky_posts(self, options: clean.CleanOptions) -> None:
        texts = pd.Series(TRICKY, index=range(100, 100 + len(TRICKY)))
        out = clean.clean_posts(texts, options)
        expected = [reference_clean(t, options) for t in TRICKY]
        assert out.index.equals(texts.index)
        assert out["tokens"].tolist() == expected
        assert out["clean_text"].tolist() == [" ".join(toks) for toks in expected]

    def test_without_a_nul_the_partition_is_cleaned_in_one_pass_with_the_same_result(self) -> None:
        texts = pd.Series([t for t in TRICKY if t is None or "\x00" not in t])
        assert clean.clean_posts(texts)["tokens"].tolist() == [reference_clean(t, clean.CleanOptions()) for t in texts]


class TestCleanPartitions:
    def test_partitions_on_a_cluster_of_its_own_keep_order_and_index(self, monkeypatch) -> None:
        monkeypatch.setattr(clean, "_workers_share_this_process", lambda: False)
        texts = pd.Series(TRICKY * 2, index=np.arange(len(TRICKY) * 2) * 3)
        out = clean.clean_partitions(texts, partition=7)
        assert out.equals(clean.clean_posts(texts))

    def test_threads_of_this_process_hand_partitions_to_worker_processes(self) -> None:
        texts = pd.Series(TRICKY * 3)
        options = clean.CleanOptions(lemmatize=False, lowercase=False)
        out = clean.clean_partitions(texts, options, partition=25)
        assert clean._workers_share_this_process() and out.equals(clean.clean_posts(texts, options))

    def test_the_default_local_cluster_counts_as_threads_of_this_process(self) -> None:
        from tasks.compute import dask_client

        with dask_client():
            assert clean._workers_share_this_process()

    def test_one_partition_and_no_posts(self) -> None:
        assert clean.clean_partitions(pd.Series(["Loved it"]))["tokens"].tolist() == [["love"]]
        empty = clean.clean_partitions(pd.Series([], dtype=object))
        assert empty.empty and list(empty.columns) == ["clean_text", "tokens"]


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


def test_a_1mb_post_is_quarantined_not_a_crash() -> None:
    posts = pd.DataFrame({"id": ["big", "ok"], "text": ["a" * 1_000_000, "ok"], "label": ["x", "y"]})
    valid, quarantined = checks.check_posts(posts)
    assert valid["id"].tolist() == ["ok"] and quarantined["reason"].tolist() == ["text longer than 5000 characters"]
    assert np.all(clean.clean_posts(valid["text"])["tokens"].map(len) == 1)
