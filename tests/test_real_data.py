"""Every pipeline end to end on small clips of real data (tests/data/README.md says what each is): the run
completes with its defaults, the gates record what they saw, and the known facts of each clip hold."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.cli import main
from flows.genome import genome
from flows.market import market
from flows.params import GenomeParams, MarketParams, SatelliteParams, SentimentParams
from flows.satellite import satellite
from flows.sentiment import sentiment

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]
DATA = Path(__file__).parent / "data"


def run_json(result: dict) -> dict:
    return json.loads((Path(result["dir"]) / "run.json").read_text())


def gates_passed(record: dict) -> dict:
    """The gates by suite, after checking each ran and none failed."""
    assert record["status"] == "completed", record["error"]
    assert all(q["success"] and q["failed"] == [] for q in record["quality"]), record["quality"]
    return {q["suite"]: q for q in record["quality"]}


def test_a_real_landsat_scene_with_saturated_pixels_trains_and_classifies(data_root: Path) -> None:
    clip = DATA / "nc_landsat7_clip"
    record = run_json(satellite(SatelliteParams(source="local", input=str(clip / "lsat7_2000_*.tif"),
                                labels=str(clip / "landsat96_polygons.geojson"), label_column="label", epochs=3)))
    gates = gates_passed(record)
    assert set(gates) == {"satellite_scenes", "satellite_mosaic"}
    assert record["counts"]["pixels_saturated"] == 34 and record["counts"]["label_polygons_in"] == 14
    assert {(e["dtype"], round(e["scale"] * 255, 6), e["saturation_value"])
            for e in record["inputs"]["reflectance"]} == {("float32", 1.0, 255.0), ("int16", 1.0, 255.0)}
    run_dir = Path(record["dir"])
    scenes = pd.read_parquet(run_dir / "scene_profile.parquet")
    assert scenes.set_index("band")["saturated_pixels"].to_dict() == {
        "B10": 1, "B20": 1, "B30": 7, "B40": 0, "B50": 13, "B70": 12}
    assert scenes["p99"].between(0.2, 1.0).all()
    mosaic = pd.read_parquet(run_dir / "mosaic_profile.parquet")
    assert mosaic["p1"].gt(-5).all() and mosaic["p99"].lt(5).all()  # robust normalization keeps a sane range
    assert {"accuracy", "macro_f1"} <= set(record["metrics"]) and "pixel_logreg" in record["baselines"]
    assert (run_dir / "classmap.tif").exists()


def test_real_prices_with_an_unadjusted_split_are_adjusted_on_its_date(data_root: Path) -> None:
    record = run_json(market(MarketParams(input=str(DATA / "zipline_aapl_split" / "AAPL.csv"), epochs=1, folds=2,
                                          lag=10)))
    gates = gates_passed(record)
    assert gates["market_prices"]["warnings"] == []  # the 7:1 jump no longer looks like a -86% day
    (split,) = record["inputs"]["splits"]
    assert (split["symbol"], split["date"], split["split"], split["action"]) == ("AAPL", "2014-06-09", "7:1", "adjust")
    assert split["ratio"] == pytest.approx(93.699997 / 645.570023)
    assert record["inputs"]["date_column"] == "day"
    used = pd.read_parquet(Path(record["dir"]) / "valid_prices.parquet").set_index("date")["price"]
    assert used[pd.Timestamp("2014-06-06")] == pytest.approx(645.570023 / 7)
    forecasts = pd.read_parquet(Path(record["dir"]) / "forecasts.parquet")
    assert forecasts["predicted_price"].between(80, 120).all()


def test_real_posts_with_bytes_that_are_not_utf8_are_repaired_and_counted(data_root: Path) -> None:
    posts = DATA / "sms_spam_cp1252" / "sms_spam_300.csv"
    record = run_json(sentiment(SentimentParams(input=str(posts), label_column="spam", epochs=2)))
    gates_passed(record)
    counts = record["counts"]
    assert counts["undecodable_bytes_replaced"] == 118
    assert counts["records_in"] == 300 == counts["records_valid"] + counts["records_quarantined"]
    assert set(record["metrics"]["per_class"]) == {"0", "1"} and "tfidf_logreg" in record["baselines"]
    assert record["inputs"]["label_column"] == "spam"
    again = run_json(sentiment(SentimentParams(input=str(posts), label_column="spam", encoding="cp1252", epochs=1)))
    assert again["counts"]["undecodable_bytes_replaced"] == 0


def test_real_posts_without_a_known_label_column_name_the_option(data_root: Path, capsys) -> None:
    assert main(["run", "sentiment", "--input", str(DATA / "sms_spam_cp1252" / "sms_spam_300.csv")]) == 2
    assert "pass --label-column" in capsys.readouterr().err


def test_real_promoter_sequences_train_against_their_baselines(data_root: Path) -> None:
    record = run_json(genome(GenomeParams(input=str(DATA / "ecoli_promoters" / "ecoli_promoters_kernlab.csv"),
                                          length=57, epochs=2)))
    gates = gates_passed(record)
    assert gates["genome_sequences"]["parameters"] == {"min_length": 20}
    assert record["counts"] == {"records_in": 106, "records_valid": 106, "records_quarantined": 0}
    assert set(record["metrics"]["per_class"]) == {"promoter", "non_promoter"}
    assert {"onehot_logreg", "kmer_counts_logreg"} <= set(record["baselines"])
