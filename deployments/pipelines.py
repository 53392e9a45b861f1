"""The flows the deployments run: one per pipeline, taking its parameters as one Pydantic model.

The model (flows/params.py) gives the UI a form with descriptions, choices and bounds. Each flow runs the
library flow's body in its own run (``.fn``, not a subflow), so every task run and artifact belongs to the
run the user started. A pipeline is imported when its flow runs: each run is a fresh process, and a market
run need not import the satellite stack.
"""

from __future__ import annotations

from prefect import flow

from flows.params import GenomeParams, MarketParams, SatelliteParams, SentimentParams


@flow(name="satellite")
def satellite(params: SatelliteParams = SatelliteParams()) -> dict:
    """Satellite monitoring: ingest, gate, mosaic, gate, train or load the champion, score, monitor, publish."""
    from flows.satellite import satellite as pipeline

    return pipeline.fn(**params.model_dump())


@flow(name="genome")
def genome(params: GenomeParams = GenomeParams()) -> dict:
    """Genome: ingest, check and gate, encode and gate, train or load the champion, score, publish."""
    from flows.genome import genome as pipeline

    return pipeline.fn(**params.model_dump())


@flow(name="sentiment")
def sentiment(params: SentimentParams = SentimentParams()) -> dict:
    """Sentiment: ingest, check and gate, clean and gate, train or load the champion, score, publish."""
    from flows.sentiment import sentiment as pipeline

    return pipeline.fn(**params.model_dump())


@flow(name="market")
def market(params: MarketParams = MarketParams()) -> dict:
    """Market: ingest, check and gate, walk forward against baselines, forecast, publish."""
    from flows.market import market as pipeline

    return pipeline.fn(**params.model_dump())


PIPELINES = {"satellite": satellite, "genome": genome, "sentiment": sentiment, "market": market}
