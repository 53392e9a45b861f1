"""Cleaning posts: every step on tiny inputs, and equal to a plain per-post reference."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import fields, replace

import emoji
import numpy as np
import pandas as pd
import pytest
import simplemma

from tasks.sentiment import clean


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
