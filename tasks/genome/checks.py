"""Row-level checks on sequence records and the profile table the sequence gate validates."""

from __future__ import annotations

import numpy as np
import pandas as pd

IUPAC = set("ACGTURYSWKMBDHVN")


def clean_records(records: pd.DataFrame, *, min_length: int = 20,
                  labelled: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Uppercase soft-masked bases, then split into (valid, quarantined) with a reason per faulty record:
    empty sequence, missing label, characters outside IUPAC, too short, duplicate id (the first is kept)."""
    table = records.copy()
    table["sequence"] = table["sequence"].fillna("").astype(str).str.replace(r"\s+", "", regex=True).str.upper()
    lengths = table["sequence"].str.len()
    bad_chars = table["sequence"].map(lambda s: "".join(sorted(set(s) - IUPAC)))
    reasons = pd.Series(None, index=table.index, dtype=object)
    rules = [
        (lengths == 0, "empty sequence"),
        (table["label"].isna() if labelled else pd.Series(False, index=table.index), "missing label"),
        (bad_chars != "", "characters outside IUPAC: " + bad_chars),
        (lengths < min_length, f"shorter than {min_length} bases"),
        (table["id"].duplicated(keep="first"), "duplicate id (the first record with it is kept)"),
    ]
    for mask, reason in rules:
        fill = mask & reasons.isna()
        reasons[fill] = reason[fill] if isinstance(reason, pd.Series) else reason
    bad = reasons.notna()
    quarantined = table.loc[bad, ["id", "source"]].assign(reason=reasons[bad])
    return table.loc[~bad].reset_index(drop=True), quarantined.reset_index(drop=True)


def sequence_profile(valid: pd.DataFrame, *, quarantined: int) -> pd.DataFrame:
    """A row per valid record (length, GC content, N and ambiguity-code fractions, label) plus the table-level
    shares the gate checks: how much was quarantined and how small the rarest class is."""
    seqs = valid["sequence"]
    lengths = seqs.str.len().to_numpy()
    gc = (seqs.str.count("G") + seqs.str.count("C")).to_numpy()
    n = seqs.str.count("N").to_numpy()
    acgt = np.maximum(lengths - n, 1)
    ambiguous = lengths - n - seqs.str.count("[ACGTU]").to_numpy()
    total = len(valid) + quarantined
    counts = valid["label"].value_counts() if valid["label"].notna().any() else pd.Series([len(valid)])
    return pd.DataFrame({
        "id": valid["id"], "label": valid["label"], "length": lengths, "gc_content": gc / acgt,
        "n_fraction": n / np.maximum(lengths, 1), "ambiguous_fraction": ambiguous / np.maximum(lengths, 1),
        "quarantined_share": quarantined / max(total, 1), "min_class_share": float(counts.min() / counts.sum()),
        "min_class_count": int(counts.min()), "n_classes": int(valid["label"].nunique()),
    })
