"""Model quality on real data: every pipeline with its defaults on each labelled real dataset in shared/data.

One row per dataset: the deep model's headline metric on the test split, the best baseline's on the same split,
their ratio (higher is better) and the train stage's seconds; then ``ratio=`` as the smallest ratio. Classifiers
compare macro F1; market compares RMSE as persistence RMSE / model RMSE. A dataset whose files are absent is
skipped with a line saying so.

    .venv/bin/python benchmarks/model_quality.py [--data ../shared/data] [--only genome,rt]
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NC = "satellite/nc_landsat7_2000"
VADER = "sentiment/vader_groundtruth"
ZIPLINE = "market/zipline_quandl"

# name, domain, arguments ({data} is the shared data folder); only what a dataset needs to be read as labelled
DATASETS: list[tuple[str, str, str]] = [
    ("nc_polygons", "satellite", f"--source local --input {{data}}/{NC}/lsat7_2000_*.tif "
                                 f"--labels {{data}}/{NC}/landsat96_polygons.shp --label-column label"),
    ("nc_points", "satellite", f"--source local --input {{data}}/{NC}/landsat_multiband.tif "
                               f"--labels {{data}}/{NC}/landsat96_points.shp --label-column label"),
    ("nc_label_raster", "satellite", f"--source local --input {{data}}/{NC}/landsat_multiband.tif "
                                     f"--labels {{data}}/{NC}/landsat96_labelled_pixels.tif"),
    ("ecoli_promoters", "genome", "--input {data}/genome/ecoli_promoters_kernlab.csv"),
    ("oct4_vs_mafk", "genome", "--input {data}/genome/oct4_vs_mafk_chipseq/oct4.fa "
                               "{data}/genome/oct4_vs_mafk_chipseq/mafk.fa --label-from-filename"),
    ("rotten_tomatoes", "sentiment", "--input {data}/sentiment/rotten_tomatoes_corpus.csv.bz2"),
    ("amazon_fine_foods", "sentiment", "--input {data}/sentiment/amazon_fine_foods_modeldata_train.csv"),
    ("vader_tweets", "sentiment", f"--input {{data}}/{VADER}/tweets_labelled.csv"),
    ("vader_amazon", "sentiment", f"--input {{data}}/{VADER}/amazonReviewSnippets_labelled.csv"),
    ("vader_movies", "sentiment", f"--input {{data}}/{VADER}/movieReviewSnippets_labelled.csv"),
    ("vader_nyt", "sentiment", f"--input {{data}}/{VADER}/nytEditorialSnippets_labelled.csv"),
    ("sms_spam", "sentiment", "--input {data}/sentiment/sms_spam.csv --label-column spam"),
    ("sp500", "market", "--input {data}/market/arch_sp500_daily_ohlcv.csv.gz"),
    ("nasdaq", "market", "--input {data}/market/arch_nasdaq_daily_ohlcv.csv.gz"),
    ("goog", "market", "--input {data}/market/backtesting_GOOG_daily_ohlcv.csv"),
    ("eurusd_hourly", "market", "--input {data}/market/backtesting_EURUSD_hourly_ohlcv.csv"),
    ("quandl_sample", "market", f"--input {{data}}/{ZIPLINE}/QUANDL_SAMPLE_TABLE.csv"),
    ("csvdir_ibm", "market", f"--input {{data}}/{ZIPLINE}/csvdir_daily/IBM.csv.gz"),
    ("etf_wide", "market", "--input {data}/market/etf_daily_wide/etf_daily_closes_wide.csv"),
]


def comparison(domain: str, run: dict) -> tuple[float, str, float, float]:
    """(model's metric, best baseline's name, its metric, ratio) from a run.json."""
    metrics, baselines = run["metrics"], run["baselines"]
    if domain == "market":
        model, persistence = metrics["rmse"], baselines["persistence"]["rmse"]
        return model, "persistence", persistence, persistence / model
    name = max(baselines, key=lambda b: baselines[b]["macro_f1"])
    best = baselines[name]["macro_f1"]
    return metrics["macro_f1"], name, best, metrics["macro_f1"] / best


def run_one(name: str, domain: str, args: str, data: Path, out: Path) -> str | tuple:
    words = args.format(data=data).split()
    inputs = [w for w in words if w.startswith(str(data))]
    if not all(glob.glob(w) for w in inputs):
        return f"skipped: {', '.join(w for w in inputs if not glob.glob(w))} not found"
    cmd = [sys.executable, "-m", "flows.cli", "run", domain, *words, "--out", str(out / name)]  # tessera globs
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        return f"failed (exit {done.returncode}): {(done.stderr.strip().splitlines() or ['?'])[-1][:160]}"
    run = json.loads(Path(glob.glob(str(out / name / domain / "runs" / "*" / "run.json"))[0]).read_text())
    train = next(stage for stage in run["stages"].values() if str(stage.get("output")).endswith("training.json"))
    return (*comparison(domain, run), train["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--only", help="comma-separated dataset names or domains")
    args = parser.parse_args()
    chosen = [d for d in DATASETS if not args.only or {d[0], d[1]} & set(args.only.split(","))]
    ratios = []
    print(f"{'dataset':18} {'domain':9} {'model':>8} {'best baseline':>28} {'ratio':>6} {'train s':>8}")
    with tempfile.TemporaryDirectory(prefix="tessera-quality-") as tmp:
        for name, domain, line in chosen:
            result = run_one(name, domain, line, args.data.resolve(), Path(tmp))
            if isinstance(result, str):
                print(f"{name:18} {domain:9} {result}", flush=True)
                continue
            model, baseline, best, ratio, seconds = result
            ratios.append(ratio)
            print(f"{name:18} {domain:9} {model:8.4f} {baseline + ' ' + format(best, '.4f'):>28} {ratio:6.3f} "
                  f"{seconds:8.1f}", flush=True)
    if not ratios:
        print("no dataset ran")
        return 1
    print(f"ratio={min(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
