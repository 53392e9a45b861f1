"""The quarantine reasons of posts and the profile the gate reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.sentiment import checks, clean


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

def test_a_1mb_post_is_quarantined_not_a_crash() -> None:
    posts = pd.DataFrame({"id": ["big", "ok"], "text": ["a" * 1_000_000, "ok"], "label": ["x", "y"]})
    valid, quarantined = checks.check_posts(posts)
    assert valid["id"].tolist() == ["ok"] and quarantined["reason"].tolist() == ["text longer than 5000 characters"]
    assert np.all(clean.clean_posts(valid["text"])["tokens"].map(len) == 1)
