"""The sentiment flow end to end under a Prefect test server, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.cli import main
from flows.params import SentimentParams
from flows.sentiment import sentiment

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]
FAST = {"epochs": 3, "synthetic_n": 600}


def test_synthetic_run_counts_everything_and_beats_nothing_silently(data_root: Path) -> None:
    result = sentiment(SentimentParams(folds=2, **FAST))
    record = json.loads((Path(result["dir"]) / "run.json").read_text())
    assert record["status"] == "completed"
    counts = record["counts"]
    assert counts["records_in"] == 600 + 18 + 3
    assert counts["records_in"] == counts["records_valid"] + counts["records_quarantined"]
    assert counts["duplicates_dropped"] > 0
    assert [q["suite"] for q in record["quality"]] == ["sentiment_posts", "sentiment_clean"]
    assert set(record["metrics"]["per_class"]) == {"positive", "negative", "neutral"}
    assert "tfidf_logreg" in record["baselines"]
    assert len(record["metrics"]["cv"]["macro_f1"]["folds"]) == 2
    run_dir = Path(result["dir"])
    cleaned = pd.read_parquet(run_dir / "clean_posts.parquet")
    assert len(cleaned) == counts["records_valid"] and cleaned["text"].is_unique
    assert "Most confident mistakes" in (run_dir / "report.html").read_text()


def test_unlabelled_posts_are_scored_with_the_champion(tmp_path: Path, data_root: Path) -> None:
    sentiment(SentimentParams(**FAST))
    (tmp_path / "new.jsonl").write_text('{"text": "I love this app 😍"}\n{"text": "worst service ever :("}\n')
    result = sentiment(SentimentParams(input=str(tmp_path / "new.jsonl"), **FAST))
    assert result["status"] == "completed" and result["model"]["trained"] is False
    predictions = pd.read_parquet(Path(result["dir"]) / "predictions.parquet")
    assert len(predictions) == 2 and {"p_positive", "p_negative", "p_neutral"} <= set(predictions.columns)


def test_missing_column_exits_2_listing_columns(tmp_path: Path, data_root: Path, capsys) -> None:
    (tmp_path / "p.csv").write_text("id,words,stars\n1,hello,5\n")
    assert main(["run", "sentiment", "--input", str(tmp_path / "p.csv")]) == 2
    assert "columns are: id, words, stars" in capsys.readouterr().err


def test_mostly_duplicates_fail_the_gate_with_exit_3(tmp_path: Path, data_root: Path, capsys) -> None:
    rows = [{"text": "same post", "label": "a"}] * 50 + [{"text": f"post {i}", "label": "ab"[i % 2]}
                                                         for i in range(20)]
    pd.DataFrame(rows).to_csv(tmp_path / "p.csv", index=False)
    assert main(["run", "sentiment", "--input", str(tmp_path / "p.csv")]) == 3
    err = capsys.readouterr().err
    assert "sentiment_posts" in err and "duplicate_share" in err


def test_the_gate_checks_the_runs_own_max_chars(tmp_path: Path, data_root: Path) -> None:
    rows = [{"text": f"post number {i} " + ("word " * (1800 if i < 4 else 3)), "label": "ab"[i % 2]}
            for i in range(60)]
    pd.DataFrame(rows).to_csv(tmp_path / "p.csv", index=False)
    record = sentiment(SentimentParams(input=str(tmp_path / "p.csv"), max_chars=20000, epochs=1))
    assert record["status"] == "completed" and record["counts"]["records_quarantined"] == 0
    assert record["quality"][0]["parameters"] == {"max_chars": 20000}


def test_a_label_column_of_free_text_fails_the_gate_with_exit_3(tmp_path: Path, data_root: Path, capsys) -> None:
    rows = [{"text": f"post {i}", "label": f"comment number {i}"} for i in range(80)]
    pd.DataFrame(rows).to_csv(tmp_path / "p.csv", index=False)
    assert main(["run", "sentiment", "--input", str(tmp_path / "p.csv")]) == 3
    assert "expect_column_values_to_be_in_set(labels_like_text)" in capsys.readouterr().err


def test_posts_that_cleaning_empties_fail_the_clean_gate_with_exit_3(tmp_path: Path, data_root: Path,
                                                                     capsys) -> None:
    rows = [{"text": ["the and of", "is it to", "a an the!"][i % 3] + "!" * (i + 1), "label": "ab"[i % 2]}
            for i in range(60)]
    pd.DataFrame(rows).to_csv(tmp_path / "p.csv", index=False)
    assert main(["run", "sentiment", "--input", str(tmp_path / "p.csv")]) == 3
    err = capsys.readouterr().err
    assert "quality gate 'sentiment_clean' failed" in err and "empty_share" in err


def test_train_auto_reuses_the_champion_and_always_trains_a_challenger(data_root: Path) -> None:
    first = sentiment(SentimentParams(**FAST))
    again = sentiment(SentimentParams(**FAST))
    assert again["model"]["trained"] is False and again["model"]["scored_with"] == first["model"]["version"]
    assert again["metrics"]["test_records"] == first["metrics"]["test_records"]  # the same split: the same test
    challenger = sentiment(SentimentParams(train="always", **FAST))
    assert challenger["model"]["trained"] is True and challenger["model"]["version"] != first["model"]["version"]


def test_no_step_options_turn_cleaning_steps_off_by_name() -> None:
    from flows.cli import build_parser

    args = build_parser().parse_args(["run", "sentiment", "--no", "lemmatize", "--no", "remove_stopwords"])
    assert args.clean_options == {"lemmatize": False, "remove_stopwords": False}
    assert "clean_options" not in vars(build_parser().parse_args(["run", "sentiment"]))  # the model's default: None
