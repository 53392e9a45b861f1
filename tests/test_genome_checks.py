"""Each fault of a sequence record is quarantined with its reason; the profile the gate reads."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.genome import checks


class TestChecks:
    def test_each_fault_is_quarantined_with_its_reason(self) -> None:
        records = pd.DataFrame({
            "id": ["ok", "empty", "bad", "short", "ok", "nolabel"],
            "label": ["a", "a", "a", "a", "b", None],
            "sequence": ["acgtacgtacgtacgtacgtacgt", "", "ACGTXACGTACGTACGTACGTA", "ACG", "ACGTACGTACGTACGTACGTAC",
                         "ACGTACGTACGTACGTACGTAC"],
            "source": "f.fa"})
        valid, quarantined = checks.clean_records(records, min_length=20)
        assert valid["id"].tolist() == ["ok"] and valid["sequence"][0] == "ACGTACGTACGTACGTACGTACGT"
        assert quarantined["reason"].tolist() == ["empty sequence", "characters outside IUPAC: X",
                                                  "shorter than 20 bases",
                                                  "duplicate id (the first record with it is kept)", "missing label"]
        assert len(valid) + len(quarantined) == len(records)

    def test_profile_gc_and_n(self) -> None:
        valid = pd.DataFrame({"id": ["a"], "label": ["x"], "sequence": ["GGCCNNAATT"]})
        row = checks.sequence_profile(valid, quarantined=1).iloc[0]
        assert row["gc_content"] == pytest.approx(0.5) and row["n_fraction"] == pytest.approx(0.2)
        assert row["quarantined_share"] == pytest.approx(0.5)
