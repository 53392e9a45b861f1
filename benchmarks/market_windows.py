"""Benchmark: tessera's per-symbol scaling + sliding windows against the tutorial loop that appends slices to lists.

Not a test: it generates a long price frame (``date, symbol, price, volume``; default 2,000 symbols x 2,500 trading
days, 5 M rows, sorted by symbol then date as ``checks.check_prices`` leaves it; cached as Parquet in
``--workdir``), then runs every variant in its own subprocess so that its peak RSS (psutil polling every 50 ms, and
the child's own ``ru_maxrss``) is its own. One fold: training before the date at ``--split`` (80 %) of the dates,
testing from there to the end, ``lag=20``, ``horizon=1``. Variants:

- ``dask`` (the headline): ``tasks/market/tasks.py:_fold_windows`` as it is, i.e. ``windows.symbol_fold`` mapped
  over ``prices.groupby("symbol")`` with ``dask.delayed``, one task per symbol, under ``tasks.compute.dask_client()``.
- ``dask-stack``: the same, then ``walk_forward``'s ``_stack`` (``np.concatenate(...).astype(np.float32)``) of
  ``x_train, y_train, x_test, y_test, returns_test`` while the parts are alive, as ``walk_forward`` holds them.
- ``numpy``: the same ``symbol_fold`` calls in a plain loop over one ``groupby`` (no Dask), to show what Dask costs.
- ``loop``: the usual tutorial: per symbol, log-return and log1p(volume) features, a scaler fitted on the training
  rows ((x - mean) / std, ddof 0), ``for i in range(lag, n - horizon + 1): X.append(scaled[i - lag:i]);
  y.append(...)``, ``np.array(X)``, then the train/test split by date. ``--iloc-symbols`` more symbols are also run
  through the pandas flavour of it (``scaled.iloc[i - lag:i].to_numpy()``), for information only.
- ``slices``: a proposed ``symbol_fold`` (``symbol_fold_slices``) that selects the training and test windows by
  slice rather than boolean mask, so they stay zero-copy views; plain loop as ``numpy``.
- ``vectorised``, ``vectorised-stack``, ``vectorised-batches``: a proposed replacement for ``_fold_windows`` (see
  ``fold_windows_vectorised``): one pass over the whole frame, no groupby, no per-symbol tasks, and every array of
  the result a zero-copy view; then stacked to float32 in one copy, or cut into shuffled float32 training batches of
  64 (one epoch) instead of being stacked.

A ``load`` run first reports what ``pd.read_parquet`` (``tasks.store.read_parquet``) alone costs in memory.

Checks: per-symbol window counts and sums for every symbol the loop ran on, and the arrays themselves for a sample
of symbols (``np.allclose``), loop vs ``dask``, and ``numpy``/``slices``/``vectorised`` vs ``dask``. Targets from
the issue: ``ratio >= 50`` (tessera windows/s over the loop's) and a peak RSS within 2x of the input frame.
Windows/s count the train + test windows over the windowing step only (not reading the frame, not starting the
cluster); ``ratio_cpu`` is the same ratio on the child's CPU seconds, steadier when the machine is shared.

    python benchmarks/market_windows.py                                    # 2,000 x 2,500, all variants, ~3 min
    python benchmarks/market_windows.py --symbols 200 --days 600           # quick check, ~20 s
    python benchmarks/market_windows.py --variants loop,dask --repeat 3    # headline only, best of 3

Exit status: 0 when all checks pass, 1 when an output differs, 2 on a usage or setup error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import NoReturn

import numpy as np
from _rss import run_measured  # benchmarks/_rss.py: runs a child and polls its peak RSS

ROOT = Path(__file__).resolve().parents[1]
POLL = 0.05  # RSS polling interval (s)
KEYS = ("x_train", "y_train", "x_test", "y_test")  # what the tutorial loop produces too
ALL_KEYS = (*KEYS, "returns_test", "test_dates", "test_log_price")
VARIANTS = ("loop", "numpy", "slices", "dask", "dask-stack", "vectorised", "vectorised-stack", "vectorised-batches")
BATCH = 64  # walk_forward trains with batch_size=64


def die(message: str) -> NoReturn:
    """A usage or setup error (not a mismatch): exit status 2."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


# ----------------------------------------------------------------------------------------------- synthetic input

def synthetic_frame(symbols: int, days: int, seed: int):
    """A geometric random walk per symbol with its own volatility, volatility regimes and volume, all symbols at
    once (``tasks.market.synthetic`` loops per symbol and per day); the trading calendar is tessera's."""
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from tasks.market.synthetic import trading_days

    rng = np.random.default_rng(seed)
    dates = trading_days("2014-01-02", days).to_numpy()
    calm = rng.uniform(0.008, 0.012, (symbols, 1))
    regime = np.cumsum(rng.random((symbols, days)) < 0.01, axis=1) % 2
    vol = np.where(regime == 1, 2.5 * calm, calm)
    returns = rng.normal(0.0003, 1.0, (symbols, days)) * vol
    price = 50.0 * (1 + np.arange(symbols) % 40)[:, None] * np.exp(np.cumsum(returns, axis=1))
    volume = (1e6 * (1 + 20 * np.abs(returns)) * rng.lognormal(0, 0.2, (symbols, days))).astype(np.int64)
    width = len(str(symbols - 1))
    names = pd.Series([f"S{i:0{width}d}" for i in range(symbols)], dtype="str")
    return pd.DataFrame({"date": np.tile(dates, symbols), "symbol": names.repeat(days).reset_index(drop=True),
                         "price": price.ravel(), "volume": volume.ravel()})


def generate(path: Path, symbols: int, days: int, seed: int) -> dict:
    """Write the frame as Parquet unless the same one is already there."""
    marker = path.with_suffix(".json")
    params = {"symbols": symbols, "days": days, "seed": seed, "version": 1}
    if path.exists() and marker.exists() and json.loads(marker.read_text()) == params:
        return {"generated": False, "seconds": 0.0}
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_frame(symbols, days, seed).to_parquet(path, index=False)
    marker.write_text(json.dumps(params))
    return {"generated": True, "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------------- tessera paths

def fold_dask(prices, start, stop, lag: int, horizon: int) -> list[dict]:
    """``tasks/market/tasks.py:_fold_windows``, copied so that the child does not import torch and Prefect (which
    the pipeline has loaded anyway, but which would blur what the windows cost)."""
    import dask

    from tasks.market import windows

    parts = [dask.delayed(windows.symbol_fold)(group.reset_index(drop=True), start, stop, lag=lag, horizon=horizon)
             for _, group in prices.groupby("symbol", sort=True)]
    return list(dask.compute(*parts))


def fold_numpy(prices, start, stop, lag: int, horizon: int) -> list[dict]:
    """The same ``symbol_fold`` per symbol, one groupby, no Dask."""
    from tasks.market import windows

    return [windows.symbol_fold(group.reset_index(drop=True), start, stop, lag=lag, horizon=horizon)
            for _, group in prices.groupby("symbol", sort=True)]


def stack_project(parts: list[dict], key: str) -> np.ndarray:
    """``tasks/market/tasks.py:_stack``."""
    arrays = [p[key] for p in parts if len(p[key])]
    return np.concatenate(arrays).astype(np.float32) if arrays else np.empty((0,))


def stack_float32(parts: list[dict], key: str) -> np.ndarray:
    """Proposed ``_stack``: concatenate straight into float32 (no float64 intermediate of the whole set)."""
    arrays = [p[key] for p in parts if len(p[key])]
    return np.concatenate(arrays, dtype=np.float32) if arrays else np.empty((0,), dtype=np.float32)


def symbol_fold_slices(group, start, stop, *, lag: int, horizon: int) -> dict:
    """The slice-selecting ``symbol_fold`` this benchmark proposed, now the project's own
    (``windows.symbol_fold``); kept as a variant name so earlier outputs stay comparable."""
    from tasks.market import windows

    return windows.symbol_fold(group, start, stop, lag=lag, horizon=horizon)


def fold_slices(prices, start, stop, lag: int, horizon: int) -> list[dict]:
    """``symbol_fold_slices`` per symbol, one groupby, no Dask."""
    return [symbol_fold_slices(group.reset_index(drop=True), start, stop, lag=lag, horizon=horizon)
            for _, group in prices.groupby("symbol", sort=True)]


def _vectorised(prices, start, stop, lag: int, horizon: int) -> dict:
    """The arrays behind ``fold_windows_vectorised``: log prices, returns and scaled features of the whole frame
    (three arrays, no per-symbol copies), each symbol scaled in place with ``fit_scaler``'s statistics, and per
    symbol the [lo, hi) ranges of the end rows of its training and test windows."""
    from numpy.lib.stride_tricks import sliding_window_view

    symbol = prices["symbol"]
    first = np.flatnonzero(symbol.ne(symbol.shift()).to_numpy())  # runs of one symbol
    names = symbol.iloc[first].tolist()
    if any(a >= b for a, b in zip(names, names[1:], strict=False)):
        raise ValueError("prices must be sorted by symbol then date (checks.check_prices does)")
    ends = np.append(first[1:], len(symbol))
    dates = prices["date"].to_numpy()
    logp = np.log(prices["price"].to_numpy(dtype=float))
    returns = np.empty_like(logp)
    np.subtract(logp[1:], logp[:-1], out=returns[1:])
    returns[first] = np.nan  # a symbol's first row has no return and is never part of a window
    scaled = np.empty((len(logp), 2))
    scaled[:, 0] = returns
    np.log1p(prices["volume"].to_numpy(), out=scaled[:, 1], casting="unsafe")
    np.nan_to_num(scaled[:, 1], copy=False, nan=0.0)
    means, stds = np.zeros((len(first), 2)), np.ones((len(first), 2))
    bounds = np.empty((len(first), 4), dtype=np.intp)
    for s, (a, b) in enumerate(zip(first.tolist(), ends.tolist(), strict=True)):
        before_start, before_stop = (a + np.searchsorted(dates[a:b], [start, stop])).tolist()
        rows = scaled[a + 1:b]
        if before_start - a - 1 >= 2:  # windows.fit_scaler: rows dated before start; fewer than 2 -> (0, 1)
            train = scaled[a + 1:before_start]
            mean, std = train.mean(axis=0), train.std(axis=0)
            std[std == 0] = 1.0
            rows -= mean
            rows /= std
            means[s], stds[s] = mean, std
        lo, hi = a + lag, b - horizon  # window ending at row g covers rows g-lag+1..g, targets g+horizon
        train_hi = max(min(hi, before_start - horizon), lo)
        test_lo = max(before_start, lo)
        bounds[s] = lo, train_hi, test_lo, max(min(hi, before_stop), test_lo)
    return {"names": names, "dates": dates, "logp": logp, "mean": means, "std": stds, "bounds": bounds,
            "windows": sliding_window_view(scaled, lag, axis=0).transpose(0, 2, 1),
            "return_windows": sliding_window_view(returns, lag), "y": logp[horizon:] - logp[:-horizon]}


def fold_windows_vectorised(prices, start, stop, lag: int, horizon: int) -> list[dict]:
    """Proposed ``_fold_windows``: the same list of per-symbol dicts as ``windows.symbol_fold`` gives, without a
    groupby (the frame is sorted by symbol then date) or a task per symbol; every array is a view of four
    whole-frame arrays (scaled features, returns, log prices, targets): training and test windows are contiguous
    per symbol, so slices select them. ``returns_test`` are the raw returns, as in ``symbol_fold_slices``."""
    v = _vectorised(prices, start, stop, lag, horizon)
    win, rwin, y, dates, logp = v["windows"], v["return_windows"], v["y"], v["dates"], v["logp"]
    parts = []
    for s, (name, (a, b, c, d)) in enumerate(zip(v["names"], v["bounds"].tolist(), strict=True)):
        parts.append({"symbol": name, "x_train": win[a - lag + 1:b - lag + 1], "y_train": y[a:b],
                      "x_test": win[c - lag + 1:d - lag + 1], "y_test": y[c:d], "test_dates": dates[c:d],
                      "test_log_price": logp[c:d], "returns_test": rwin[c - lag + 1:d - lag + 1],
                      "scaler": (v["mean"][s].tolist(), v["std"][s].tolist())})
    return parts


def epoch_of_batches(prices, start, stop, lag: int, horizon: int, seed: int = 0) -> dict:
    """What training needs instead of a stacked copy: shuffled float32 batches gathered from the window view."""
    t0 = time.perf_counter()
    v = _vectorised(prices, start, stop, lag, horizon)
    ends = np.concatenate([np.arange(a, b) for a, b, _, _ in v["bounds"].tolist()])
    t1 = time.perf_counter()
    order = np.random.default_rng(seed).permutation(ends)
    win, y, total = v["windows"], v["y"], 0.0
    for i in range(0, len(order), BATCH):
        rows = order[i:i + BATCH]
        xb, yb = win[rows - lag + 1].astype(np.float32), y[rows].astype(np.float32)
        total += float(xb[0, 0, 0]) + float(yb[0])
    return {"windows_seconds": t1 - t0, "epoch_seconds": time.perf_counter() - t1, "batches": -(-len(order) // BATCH),
            "train_windows": len(order), "checksum": total}


# ------------------------------------------------------------------------------------------------- tutorial loop

def tutorial_loop(prices, start, stop, lag: int, horizon: int, limit: int | None = None,
                  use_iloc: bool = False) -> list[dict]:
    """The usual tutorial, per symbol: features, a scaler fitted on the training rows, a Python loop appending
    window slices and targets to lists, ``np.array``, then the split by date. Window i covers rows i-lag..i-1 and
    targets the log return from row i-1 to i-1+horizon: make_windows' window ending at row t = i-1."""
    import pandas as pd

    parts = []
    for n, (symbol, group) in enumerate(prices.groupby("symbol", sort=True)):
        if limit is not None and n >= limit:
            break
        log_price = np.log(group["price"].to_numpy(dtype=float))
        features = np.column_stack([np.diff(log_price),
                                    np.log1p(np.nan_to_num(group["volume"].to_numpy(dtype=float)))[1:]])
        log_price, dates = log_price[1:], group["date"].to_numpy()[1:]
        fit = features[dates < start]
        mean, std = (fit.mean(axis=0), fit.std(axis=0)) if len(fit) >= 2 else (np.zeros(2), np.ones(2))
        scaled = (features - mean) / np.where(std > 0, std, 1.0)
        X, y = [], []
        if use_iloc:
            frame = pd.DataFrame(scaled, columns=["log_return", "log_volume"])
            for i in range(lag, len(scaled) - horizon + 1):
                X.append(frame.iloc[i - lag:i].to_numpy())
                y.append(log_price[i - 1 + horizon] - log_price[i - 1])
        else:
            for i in range(lag, len(scaled) - horizon + 1):
                X.append(scaled[i - lag:i])
                y.append(log_price[i - 1 + horizon] - log_price[i - 1])
        X = np.array(X).reshape(-1, lag, scaled.shape[1])
        y = np.array(y, dtype=float)
        end = np.arange(lag - 1, lag - 1 + len(y))
        train = dates[end + horizon] < start if len(y) else np.zeros(0, bool)
        test = (dates[end] >= start) & (dates[end] < stop) if len(y) else np.zeros(0, bool)
        parts.append({"symbol": symbol, "x_train": X[train], "y_train": y[train], "x_test": X[test],
                      "y_test": y[test]})
    return parts


# ------------------------------------------------------------------------------------------------- child process

def rss_mb() -> float:
    import psutil

    return mib(psutil.Process().memory_info().rss)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def summary(parts: list[dict], sample: set[str], keys: tuple[str, ...], out: str) -> dict:
    """Per-symbol window counts and sums, and the sample symbols' arrays, saved to ``out`` (npz)."""
    arrays = {"symbols": np.array([p["symbol"] for p in parts], dtype=str),
              "counts": np.array([[len(p["y_train"]), len(p["y_test"])] for p in parts], dtype=np.int64)
              .reshape(-1, 2),
              "sums": np.array([[float(np.sum(p[k], dtype=np.float64)) for k in KEYS] for p in parts])
              .reshape(-1, len(KEYS))}
    for p in parts:
        if p["symbol"] in sample:
            for k in keys:
                value = np.asarray(p[k])
                arrays[f"{p['symbol']}|{k}"] = value.astype(np.int64) if value.dtype.kind == "M" else value
    np.savez(out, **arrays)
    return {"windows": int(arrays["counts"].sum()), "train_windows": int(arrays["counts"][:, 0].sum()),
            "test_windows": int(arrays["counts"][:, 1].sum()), "symbols_done": len(parts)}


def run_child(variant: str, opts: dict) -> dict:
    """One variant on the cached frame; times and RSS of each phase (the parent polls the total)."""
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from tasks.market import windows

    if variant.startswith("dask"):
        import distributed  # noqa: F401  (imported before the baseline, as the pipeline has it loaded)
    rss_imports = rss_mb()
    prices = pd.read_parquet(opts["input"])  # = tasks.store.read_parquet
    input_mb = mib(prices.memory_usage(deep=True).sum())
    start, stop = windows.fold_boundaries(prices["date"].to_numpy(), 1, test_share=1 - opts["split"])
    lag, horizon = opts["lag"], opts["horizon"]
    info = {"input_frame_mb": input_mb, "rows": len(prices), "rss_imports_mb": rss_imports,
            "load_peak_mb": maxrss_mb(), "rss_loaded_mb": rss_mb(), "start": str(start)[:10],
            "stop": str(stop)[:10], "import_load_s": time.perf_counter() - t0}
    if variant == "load":  # what reading the frame leaves behind, and how much of it is Arrow's pool
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
        return {**info, "rss_released_mb": rss_mb(), "arrow_pool": pa.default_memory_pool().backend_name,
                "peak_mb": maxrss_mb()}
    folds = {"loop": tutorial_loop, "numpy": fold_numpy, "slices": fold_slices, "dask": fold_dask,
             "dask-stack": fold_dask, "vectorised": fold_windows_vectorised,
             "vectorised-stack": fold_windows_vectorised}
    kwargs = {"limit": opts["loop_symbols"] or None} if variant == "loop" else {}
    with contextlib.ExitStack() as stack:
        if variant.startswith("dask"):
            from tasks.compute import dask_client

            t1 = time.perf_counter()
            stack.enter_context(dask_client())
            info["cluster_s"] = time.perf_counter() - t1
        cpu0, t1 = time.process_time(), time.perf_counter()
        if variant == "vectorised-batches":
            info.update(epoch_of_batches(prices, start, stop, lag, horizon))
            info["windows_s"], info["epoch_s"] = info.pop("windows_seconds"), info.pop("epoch_seconds")
            info["windows_cpu_s"] = time.process_time() - cpu0  # includes the epoch
            return {**info, "windows": info["train_windows"], "test_windows": 0, "peak_mb": maxrss_mb()}
        with warnings.catch_warnings(record=True) as caught:  # distributed: "Sending large graph of size ..."
            warnings.simplefilter("always")
            parts = folds[variant](prices, start, stop, lag, horizon, **kwargs)
        info["windows_s"], info["windows_cpu_s"] = time.perf_counter() - t1, time.process_time() - cpu0
        graph = [str(w.message) for w in caught if "large graph" in str(w.message)]
        info["graph_mib"] = float(re.search(r"([\d.]+) MiB", graph[0]).group(1)) if graph else 0.0
        info["rss_after_windows_mb"], info["peak_to_windows_mb"] = rss_mb(), maxrss_mb()
        if variant.endswith("-stack"):  # as walk_forward: everything stacked while the parts are alive
            join = stack_project if variant == "dask-stack" else stack_float32
            t2 = time.perf_counter()
            stacked = [join(parts, k) for k in (*KEYS, "returns_test")]
            info["stack_s"], info["stacked_mb"] = time.perf_counter() - t2, mib(sum(a.nbytes for a in stacked))
        t2 = time.perf_counter()
    info["shutdown_s"] = time.perf_counter() - t2
    keys = ALL_KEYS
    if variant == "loop":
        keys = KEYS
        if opts["iloc_symbols"]:
            t2 = time.perf_counter()
            iloc = tutorial_loop(prices, start, stop, lag, horizon, limit=opts["iloc_symbols"], use_iloc=True)
            info["iloc_s"] = time.perf_counter() - t2
            info["iloc_windows"] = sum(len(p["y_train"]) + len(p["y_test"]) for p in iloc)
            info["iloc_equal"] = all(np.array_equal(a[k], b[k]) for a, b in zip(iloc, parts, strict=False)
                                     for k in KEYS)
    info["peak_mb"] = maxrss_mb()
    info.update(summary(parts, set(opts["sample"]), keys, opts["out"]))
    return info


def warm(megabytes: int) -> float:
    """Touch and free ``megabytes`` of memory in a subprocess; seconds per GiB. On this VM the first touch of guest
    memory that has not been used for a while costs ~3.5 s/GiB (host-side faults), a recently freed page ~0.1 s/GiB:
    warming before each run keeps that out of the comparison (``--warm-mb 0`` to see it). A subprocess, because a
    child's ``ru_maxrss`` starts from its parent's high-water mark at fork."""
    code = ("import sys, time, numpy as np; t = time.perf_counter(); b = np.ones(int(sys.argv[1]) * 2**17); "
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code, str(megabytes)], capture_output=True, text=True, check=True)
    return float(out.stdout) / max(megabytes / 1024, 1e-9)


# ------------------------------------------------------------------------------------------------- parent

def measured(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run ``cmd``; wall-clock seconds and peak RSS (MiB, the process and its children, polled every 50 ms)."""
    seconds, peak_bytes, result = run_measured(cmd, poll=POLL, cwd=ROOT)
    if result.returncode:
        sys.stderr.write(result.stderr[-4000:])
        die(f"failed ({result.returncode}): {' '.join(cmd)}")
    return seconds, mib(peak_bytes), result


def run_variant(variant: str, opts: dict) -> dict:
    load = os.getloadavg()[0]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", variant, json.dumps(opts)]
    seconds, polled, result = measured(cmd)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    return {**info, "wall_s": seconds, "polled_peak_mb": polled, "peak_rss_mb": max(polled, info["peak_mb"]),
            "load_before": load}


def compare(ours: Path, theirs: Path, keys: tuple[str, ...]) -> dict:
    """Counts equal and sums close for every symbol both ran; sample arrays ``np.allclose`` (and the same shape),
    and whether the windows and targets (``KEYS``) are even bit-identical."""
    a, b = np.load(ours), np.load(theirs)
    common, ia, ib = np.intersect1d(a["symbols"], b["symbols"], return_indices=True)
    counts = bool(len(common)) and np.array_equal(a["counts"][ia], b["counts"][ib])
    sums = bool(len(common)) and bool(np.allclose(a["sums"][ia], b["sums"][ib], rtol=1e-9, atol=1e-6))
    checked, bad, max_diff, identical = 0, [], 0.0, True
    for name in a.files:
        if "|" not in name or name.split("|")[1] not in keys or name not in b.files:
            continue
        x, y = a[name], b[name]
        checked += 1
        if x.shape != y.shape or not np.allclose(x, y):
            bad.append(name)
            continue
        if name.split("|")[1] in KEYS:
            identical &= bool(np.array_equal(x, y))
        if x.size:
            max_diff = max(max_diff, float(np.max(np.abs(x.astype(float) - y.astype(float)))))
    return {"equal": counts and sums and checked > 0 and not bad, "symbols_compared": len(common),
            "arrays_compared": checked, "counts_equal": counts, "sums_close": sums, "bad": bad[:5],
            "max_abs_diff": max_diff, "windows_bit_identical": identical and not bad}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000, help="symbols; default 2000")
    parser.add_argument("--days", type=int, default=2500, help="trading days per symbol; default 2500")
    parser.add_argument("--lag", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=1)
    parser.add_argument("--split", type=float, default=0.8, help="share of the dates before the test period")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from {', '.join(VARIANTS)}; loop and dask always run; default all")
    parser.add_argument("--loop-symbols", type=int, default=0,
                        help="run the tutorial loop on the first N symbols only (0 = all, the default)")
    parser.add_argument("--iloc-symbols", type=int, default=5,
                        help="symbols also run through the pandas .iloc flavour of the loop (information only)")
    parser.add_argument("--sample", type=int, default=12, help="symbols whose arrays are compared one by one")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant; the fastest counts; default 1")
    parser.add_argument("--warm-mb", type=int, default=-1,
                        help="memory to touch before each run (see warm()); default about the largest variant's "
                             "peak; 0 = off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where the input is cached; default a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the generated Parquet (reused by the next run)")
    parser.add_argument("--_child", nargs=2, metavar=("VARIANT", "OPTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._child:
        print(json.dumps(run_child(args._child[0], json.loads(args._child[1]))), flush=True)
        return 0

    chosen = {v.strip() for v in args.variants.split(",") if v.strip()}
    if chosen - set(VARIANTS) or args.symbols < 1 or args.days <= args.lag + args.horizon + 1:
        parser.error(f"--variants from {', '.join(VARIANTS)}; --days must exceed lag + horizon + 1")
    variants = [v for v in VARIANTS if v in chosen | {"loop", "dask"}]
    windows_gb = args.symbols * args.days * args.lag * 16 / 2**30  # all windows materialised in float64
    if args.warm_mb < 0:
        import psutil

        args.warm_mb = int(min(2.6 * windows_gb * 1024 + 512, psutil.virtual_memory().available / 2**20 / 2))
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tessera-bench-market-", dir="/tmp")).resolve()
    data = workdir / f"prices-{args.symbols}x{args.days}-seed{args.seed}.parquet"
    results = workdir / "results"
    try:
        gen = generate(data, args.symbols, args.days, args.seed)
        results.mkdir(parents=True, exist_ok=True)
        limit = min(args.loop_symbols or args.symbols, args.symbols)
        width = len(str(args.symbols - 1))
        picks = np.unique(np.linspace(0, limit - 1, min(args.sample, limit)).round().astype(int))
        opts = {"input": str(data), "split": args.split, "lag": args.lag, "horizon": args.horizon,
                "loop_symbols": args.loop_symbols, "iloc_symbols": args.iloc_symbols,
                "sample": [f"S{i:0{width}d}" for i in picks]}
        print(f"input={data} generated={gen['generated']} generate_seconds={gen['seconds']:.1f} "
              f"disk_mb={mib(data.stat().st_size):.0f} symbols={args.symbols} days={args.days} lag={args.lag} "
              f"horizon={args.horizon} split={args.split} cpus={os.cpu_count()} warm_mb={args.warm_mb} "
              f"load_1m={os.getloadavg()[0]:.2f}", flush=True)
        load = run_variant("load", {**opts, "out": ""})
        print(f"load: input_frame_mb={load['input_frame_mb']:.0f} rows={load['rows']} train_before={load['start']} "
              f"test_until={load['stop']} rss_imports_mb={load['rss_imports_mb']:.0f} "
              f"read_parquet_peak_rss_mb={load['load_peak_mb']:.0f} rss_after_read_mb={load['rss_loaded_mb']:.0f} "
              f"rss_after_arrow_release_unused_mb={load['rss_released_mb']:.0f} arrow_pool={load['arrow_pool']}",
              flush=True)
        runs: dict[str, dict] = {}
        for variant in variants:
            best, peak = None, 0.0
            for r in range(args.repeat):  # the fastest run counts, with the highest peak of all runs
                warm_s = warm(args.warm_mb) if args.warm_mb else 0.0
                run = run_variant(variant, {**opts, "out": str(results / f"{variant}-{r}.npz")})
                run["warm_s_per_gib"] = warm_s
                peak = max(peak, run["peak_rss_mb"])
                if best is None or run["windows_s"] < best["windows_s"]:
                    best = {**run, "npz": results / f"{variant}-{r}.npz"}
            best["peak_rss_mb"] = peak
            runs[variant] = best
            extra = ""
            if "cluster_s" in best:
                extra += (f" cluster_start_seconds={best['cluster_s']:.2f} "
                          f"graph_sent_to_scheduler_mib={best['graph_mib']:.0f}")
            if "stack_s" in best:
                extra += f" stack_seconds={best['stack_s']:.2f} stacked_mb={best['stacked_mb']:.0f}"
            if "epoch_s" in best:
                extra += (f" epoch_of_{BATCH}_window_float32_batches_seconds={best['epoch_s']:.2f} "
                          f"batches={best['batches']} (train windows only)")
            if "iloc_s" in best:
                extra += (f" iloc_loop_windows_s={best['iloc_windows'] / best['iloc_s']:.0f} "
                          f"(first {args.iloc_symbols} symbols, information only) iloc_equal={best['iloc_equal']}")
            if variant == "loop" and best["symbols_done"] < args.symbols:
                extra += f" (first {best['symbols_done']} symbols)"
            print(f"variant={variant} windows={best['windows']} train={best['train_windows']} "
                  f"test={best['test_windows']} seconds={best['windows_s']:.3f} "
                  f"cpu_seconds={best['windows_cpu_s']:.3f} windows_s={best['windows'] / best['windows_s']:.0f} "
                  f"windows_per_cpu_s={best['windows'] / max(best['windows_cpu_s'], 1e-9):.0f} "
                  f"peak_rss_mb={best['peak_rss_mb']:.0f} "
                  f"rss_after_windows_mb={best.get('rss_after_windows_mb', float('nan')):.0f} "
                  f"wall_seconds={best['wall_s']:.1f} warm_s_per_gib={best['warm_s_per_gib']:.2f} "
                  f"load_1m_before={best['load_before']:.2f}{extra}", flush=True)

        checks = {"loop": compare(runs["dask"]["npz"], runs["loop"]["npz"], KEYS)}
        for variant in ("numpy", "slices", "vectorised", "vectorised-stack"):
            if variant in runs:
                checks[variant] = compare(runs["dask"]["npz"], runs[variant]["npz"], ALL_KEYS)
        for name, c in checks.items():
            print(f"check={name}_vs_dask equal={c['equal']} symbols_compared={c['symbols_compared']} "
                  f"counts_equal={c['counts_equal']} sums_close={c['sums_close']} "
                  f"sample_arrays_compared={c['arrays_compared']} max_abs_diff={c['max_abs_diff']:.3g} "
                  f"x_y_bit_identical={c['windows_bit_identical']}"
                  + (f" differing={','.join(c['bad'])}" if c["bad"] else ""))

        dask_run, loop_run = runs["dask"], runs["loop"]
        input_mb = dask_run["input_frame_mb"]

        def rate(r: dict, cpu: bool = False) -> float:
            return r["windows"] / max(r["windows_cpu_s"] if cpu else r["windows_s"], 1e-9)

        ratio, share = rate(dask_run) / rate(loop_run), dask_run["peak_rss_mb"] / input_mb
        lines = {"tessera_windows_s": f"{rate(dask_run):.0f}", "loop_windows_s": f"{rate(loop_run):.0f}",
                 "ratio": f"{ratio:.2f}", "ratio_cpu": f"{rate(dask_run, True) / rate(loop_run, True):.2f}",
                 "tessera_peak_rss_mb": f"{dask_run['peak_rss_mb']:.0f}", "input_frame_mb": f"{input_mb:.0f}",
                 "peak_over_input": f"{share:.2f}",
                 "peak_over_input_above_imports":
                     f"{(dask_run['peak_rss_mb'] - dask_run['rss_imports_mb']) / input_mb:.2f}",
                 "equal": str(checks["loop"]["equal"])}
        if "dask-stack" in runs:
            lines["tessera_stacked_peak_rss_mb"] = f"{runs['dask-stack']['peak_rss_mb']:.0f}"
            lines["tessera_stacked_peak_over_input"] = f"{runs['dask-stack']['peak_rss_mb'] / input_mb:.2f}"
        lines["read_only_peak_over_input"] = f"{load['load_peak_mb'] / input_mb:.2f}"
        for name in ("numpy", "slices", "vectorised", "vectorised-stack", "vectorised-batches"):
            if name in runs:
                r = runs[name]
                if name != "vectorised-batches":  # its windows are the training windows only
                    lines[f"{name}_ratio"] = f"{rate(r) / rate(loop_run):.2f}"
                    lines[f"{name}_ratio_cpu"] = f"{rate(r, True) / rate(loop_run, True):.2f}"
                lines[f"{name}_peak_over_input"] = f"{r['peak_rss_mb'] / input_mb:.2f}"
        lines["targets"] = (f"ratio>=50:{'met' if ratio >= 50 else 'MISSED'},"
                            f"peak_over_input<=2:{'met' if share <= 2 else 'MISSED'}")
        print("\n".join(f"{k}={v}" for k, v in lines.items()))
        busy = max(r["load_before"] for r in runs.values())
        if busy > 0.5 * (os.cpu_count() or 1):
            print(f"note: 1-minute load average up to {busy:.2f} on {os.cpu_count()} cores before a run: the machine "
                  f"was shared, so wall-clock rates are low and noisy; the *_cpu ratios are less disturbed")
        if not all(c["equal"] for c in checks.values()):
            print("MISMATCH: an output differs from tessera's (see check= lines)", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(results, ignore_errors=True)
        if not args.keep:
            if own_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                data.unlink(missing_ok=True)
                data.with_suffix(".json").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
