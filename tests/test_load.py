"""Load: 20 runs triggered at once through the served deployments all complete, never more than the serve
limit at a time (each run is its own process, so the limit is what keeps memory bounded)."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUNS = 20
TINY_MARKET = {"epochs": 1, "folds": 1, "lag": 5, "hidden": 4}


def peak_concurrency(intervals: list[tuple]) -> int:
    """The most intervals (start, end) open at one instant; an end and a start at the same instant don't overlap."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))
    peak = running = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_peak_concurrency_counts_overlaps() -> None:
    assert peak_concurrency([(0, 2), (1, 3), (2, 4), (5, 6)]) == 2
    assert peak_concurrency([(0, 10), (1, 2), (3, 4), (5, 9), (6, 7)]) == 3


def test_twenty_runs_at_once_all_complete_within_the_limit(served, served_deployments) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deployment = served_deployments["market"]

    async def load() -> list:
        async with get_client() as client:
            # one call after another (all 20 within a few seconds): 20 concurrent writes to the server's SQLite
            # on a loaded machine kept answering 503 "database is locked" past the client's five retries
            created = [await client.create_flow_run_from_deployment(deployment.id, parameters={"params": TINY_MARKET})
                       for _ in range(RUNS)]
            flt = FlowRunFilter(id=FlowRunFilterId(any_=[r.id for r in created]))
            deadline = time.monotonic() + 420
            while True:
                runs = await client.read_flow_runs(flow_run_filter=flt)
                if all(r.state and r.state.is_final() for r in runs) or time.monotonic() > deadline:
                    return runs
                await asyncio.sleep(0.5)

    started = time.monotonic()
    with temporary_settings(updates={PREFECT_API_URL: served["url"]}):
        runs = asyncio.run(load())
    elapsed = time.monotonic() - started
    states = [r.state_name for r in runs]
    assert len(runs) == RUNS and states == ["Completed"] * RUNS, (states, served["log"].read_text()[-3000:])
    peak = peak_concurrency([(r.start_time, r.end_time) for r in runs])
    print(f"{RUNS} runs in {elapsed:.0f} s, at most {peak} at once (limit {served['limit']})")
    assert peak == served["limit"]
