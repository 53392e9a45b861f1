"""Row-level checks on posts and the profile table the posts gate validates."""

from __future__ import annotations

import pandas as pd


def check_posts(posts: pd.DataFrame, *, max_chars: int = 5000,
                labelled: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid, quarantined): empty text, missing label, text over ``max_chars``, and exact duplicate texts
    (dropped before any split, so no post is in both train and test; the first is kept)."""
    text = posts["text"].fillna("").astype(str)
    reasons = pd.Series(None, index=posts.index, dtype=object)
    rules = [
        (text.str.strip() == "", "empty text"),
        (posts["label"].isna() if labelled else pd.Series(False, index=posts.index), "missing label"),
        (text.str.len() > max_chars, f"text longer than {max_chars} characters"),
        (text.duplicated(keep="first") & (text.str.strip() != ""), "duplicate text (the first post with it is kept)"),
    ]
    for mask, reason in rules:
        reasons[mask & reasons.isna()] = reason
    bad = reasons.notna()
    quarantined = posts.loc[bad, ["id"]].assign(reason=reasons[bad])
    return posts.loc[~bad].reset_index(drop=True), quarantined.reset_index(drop=True)


def posts_profile(valid: pd.DataFrame, quarantined: pd.DataFrame) -> pd.DataFrame:
    """A row per valid post (label, length) and the table-level shares the gate checks: quarantined, duplicates,
    the rarest class, and whether the labels look like free text (over 50 classes, most of them on one post)."""
    total = len(valid) + len(quarantined)
    duplicates = int(quarantined["reason"].str.startswith("duplicate").sum()) if len(quarantined) else 0
    labels = valid["label"].dropna()
    counts = labels.value_counts() if len(labels) else pd.Series([len(valid)])
    return pd.DataFrame({
        "label": valid["label"], "length": valid["text"].astype(str).str.len(),
        "quarantined_share": len(quarantined) / max(total, 1), "duplicate_share": duplicates / max(total, 1),
        "min_class_share": float(counts.min() / counts.sum()), "min_class_count": int(counts.min()),
        "n_classes": int(labels.nunique()) if len(labels) else 0,
        "labels_like_text": bool(labels.nunique() > 50 and labels.nunique() > len(labels) / 2),
    })
