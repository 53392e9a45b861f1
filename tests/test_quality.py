"""Quality gates against a suite kept in a temporary expectations folder, and the quarantine split."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks import quality
from tasks.errors import BadInputError, DataQualityError, exit_code_for

SUITE = {
    "name": "demo_prices",
    "meta": {"stage": "prices"},
    "notes": None,
    "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}, "meta": {}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "min_value": 0}, "meta": {}},
        {"type": "expect_column_max_to_be_between",
         "kwargs": {"column": "quarantined_share", "min_value": 0, "max_value": 0.5}, "meta": {}},
    ],
}
SEVERITIES = {
    "name": "demo_posts",
    "meta": {"stage": "posts"},
    "notes": None,
    "expectations": [
        {"type": "expect_column_values_to_be_between", "severity": "critical", "meta": {"notes": "broken"},
         "kwargs": {"column": "length", "min_value": 1, "max_value": {"$PARAMETER": "max_chars"}}},
        {"type": "expect_column_max_to_be_between", "severity": "warning", "meta": {"notes": "real data has some"},
         "kwargs": {"column": "duplicate_share", "min_value": 0, "max_value": 0.1}},
    ],
}


@pytest.fixture
def suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "expectations"
    folder.mkdir()
    (folder / "demo_prices.json").write_text(json.dumps(SUITE))
    (folder / "demo_broken.json").write_text("{not json")
    (folder / "demo_posts.json").write_text(json.dumps(SEVERITIES))
    monkeypatch.setenv("TESSERA_EXPECTATIONS", str(folder))
    return folder


def failing_result() -> dict:
    table = pd.DataFrame({"price": [1.0, -2.0, 3.0], "quarantined_share": [0.7, 0.7, 0.7]})
    return quality.validate_table(table, "demo_prices", stage="prices")


class TestExpectationsDir:
    def test_environment_overrides_project_folder(self, suites: Path) -> None:
        assert quality.expectations_dir() == suites

    def test_default_is_project_folder(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("TESSERA_EXPECTATIONS", raising=False)
        assert quality.expectations_dir() == Path(quality.__file__).resolve().parents[1] / "expectations"


class TestLoadSuite:
    def test_loads_json(self, suites: Path) -> None:
        assert quality.load_suite("demo_prices") == SUITE

    def test_missing_suite_is_bad_input(self, suites: Path) -> None:
        with pytest.raises(BadInputError, match="'demo_missing' not found") as info:
            quality.load_suite("demo_missing")
        assert "demo_missing.json" in str(info.value)
        assert exit_code_for(info.value) == 2

    def test_invalid_json_is_bad_input(self, suites: Path) -> None:
        with pytest.raises(BadInputError, match="not valid JSON"):
            quality.load_suite("demo_broken")


class TestValidateTable:
    def test_passing_table(self, suites: Path) -> None:
        table = pd.DataFrame({"price": [1.0, 2.0, 0.0], "quarantined_share": [0.1, 0.1, 0.1]})
        result = quality.validate_table(table, "demo_prices", stage="prices")
        assert result == {"stage": "prices", "suite": "demo_prices", "success": True, "failed": [], "warnings": [],
                          "rows": 3, "parameters": {}}
        assert quality.raise_if_failed(result) is result

    def test_failing_table_names_expectation_column_and_observed(self, suites: Path) -> None:
        result = failing_result()
        assert result["success"] is False
        assert result["rows"] == 3
        by_column = {f["column"]: f for f in result["failed"]}
        assert set(by_column) == {"price", "quarantined_share"}
        assert by_column["price"]["expectation"] == "expect_column_values_to_be_between"
        assert by_column["price"]["observed"] == "1 unexpected (33.3%), e.g. [-2.0]"
        assert by_column["quarantined_share"]["expectation"] == "expect_column_max_to_be_between"
        assert by_column["quarantined_share"]["observed"] == pytest.approx(0.7)
        assert all(f["exception"] is None for f in result["failed"])

    def test_missing_suite_is_bad_input(self, suites: Path) -> None:
        with pytest.raises(BadInputError):
            quality.validate_table(pd.DataFrame({"price": [1.0]}), "demo_missing", stage="prices")

    def test_missing_column_is_reported_with_the_reason(self, suites: Path) -> None:
        result = quality.validate_table(pd.DataFrame({"other": [1.0]}), "demo_prices", stage="prices")
        price = next(f for f in result["failed"] if f["column"] == "price")
        assert "does not exist" in (price["exception"] or "")
        assert 'column "price"' in quality.gate_message(result)


class TestSeverityAndParameters:
    posts = pd.DataFrame({"length": [10, 9000], "duplicate_share": [0.3, 0.3]})

    def test_a_failed_warning_is_recorded_and_the_gate_passes(self, suites: Path) -> None:
        result = quality.validate_table(self.posts, "demo_posts", stage="posts", parameters={"max_chars": 20000})
        assert result["success"] and result["failed"] == []
        (warning,) = result["warnings"]
        assert (warning["column"], warning["severity"], warning["observed"]) == ("duplicate_share", "warning", 0.3)
        assert warning["notes"] == "real data has some"
        assert quality.raise_if_failed(result) is result
        (line,) = quality.warning_messages(result)
        assert line == ("quality gate 'demo_posts' warning at stage 'posts': expect_column_max_to_be_between"
                        "(duplicate_share) observed 0.3 (real data has some)")

    def test_the_run_sets_the_limit_a_critical_expectation_checks(self, suites: Path) -> None:
        result = quality.validate_table(self.posts, "demo_posts", stage="posts", parameters={"max_chars": 5000})
        assert not result["success"] and [f["column"] for f in result["failed"]] == ["length"]
        assert result["failed"][0]["severity"] == "critical" and result["parameters"] == {"max_chars": 5000}
        with pytest.raises(DataQualityError, match="length"):
            quality.raise_if_failed(result)

    def test_failed_rows_are_named_by_the_suites_row_id(self, suites: Path) -> None:
        spec = {**SEVERITIES, "name": "demo_named", "meta": {"row_id": "post"}}
        (suites / "demo_named.json").write_text(json.dumps(spec))
        table = self.posts.assign(post=["short one", "the long one"])
        result = quality.validate_table(table, "demo_named", stage="posts", parameters={"max_chars": 5000})
        assert result["failed"][0]["rows"] == ["the long one"]
        assert quality.gate_message(result).split(" (suite:")[0].endswith("e.g. [9000] in the long one")

    def test_a_parameter_the_stage_does_not_set_is_bad_input(self, suites: Path) -> None:
        with pytest.raises(BadInputError, match=r"uses \$PARAMETER max_chars, which stage 'posts' does not set"):
            quality.validate_table(self.posts, "demo_posts", stage="posts")

    def test_the_encoded_gate_stops_nothing_encoded_and_warns_on_padding(self, monkeypatch) -> None:
        monkeypatch.delenv("TESSERA_EXPECTATIONS", raising=False)
        empty = pd.DataFrame({"pad_fraction": [], "unknown_fraction": [], "kmer_width": []})
        result = quality.validate_table(empty, "genome_encoded", stage="encoded")
        assert [f["expectation"] for f in result["failed"]] == ["expect_table_row_count_to_be_between"]
        padded = pd.DataFrame({"pad_fraction": [0.72], "unknown_fraction": [0.0], "kmer_width": [4]})
        result = quality.validate_table(padded, "genome_encoded", stage="encoded")
        assert result["success"] and [w["column"] for w in result["warnings"]] == ["pad_fraction"]

    def test_every_project_suite_gives_each_expectation_a_severity_and_a_reason(self) -> None:
        for path in sorted((Path(quality.__file__).resolve().parents[1] / "expectations").glob("*.json")):
            for expectation in json.loads(path.read_text())["expectations"]:
                assert expectation.get("severity") in {"critical", "warning", "info"}, (path.name, expectation)
                assert expectation["meta"].get("notes"), (path.name, expectation)


class TestGateMessage:
    def test_names_suite_stage_expectations_and_observed(self, suites: Path) -> None:
        message = quality.gate_message(failing_result())
        assert message.startswith("quality gate 'demo_prices' failed at stage 'prices': ")
        assert "expect_column_values_to_be_between(price) observed 1 unexpected (33.3%), e.g. [-2.0]" in message
        assert "expect_column_max_to_be_between(quarantined_share) observed 0.7" in message
        assert str(suites / "demo_prices.json") in message
        assert "\n" not in message

    def test_exception_replaces_observed(self, suites: Path) -> None:
        result = {"stage": "s", "suite": "demo_prices", "success": False, "rows": 0,
                  "failed": [{"expectation": "expect_table_row_count_to_be_between", "column": None,
                              "observed": None, "exception": "boom"}]}
        assert "expect_table_row_count_to_be_between observed boom" in quality.gate_message(result)


class TestRaiseIfFailed:
    def test_failed_gate_raises_data_quality_error(self, suites: Path) -> None:
        result = failing_result()
        with pytest.raises(DataQualityError, match="quality gate 'demo_prices' failed") as info:
            quality.raise_if_failed(result)
        assert info.value.exit_code == 3
        assert exit_code_for(info.value) == 3
        assert info.value.result is result
