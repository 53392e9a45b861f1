"""The domains tessera runs, each declared once: the CLI, ``tessera demo``, the deployments, the pytest plugin and
the tests loop over :func:`domains` and list no domain of their own.

A package adds a domain by declaring a :class:`Domain` and naming it in the ``tessera.domains`` entry-point group:

    [project.entry-points."tessera.domains"]
    weather = "my_package.weather:DOMAIN"

Nothing of a domain is imported until it runs: its flow and parameter model are named by import path
(``"module:attribute"``); the parameter model, a light Pydantic class, also gives the CLI its options
(flows/options.py).
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

GROUP = "tessera.domains"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def load(path: str) -> Any:
    """The object at ``"module:attribute"``."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Domain:
    """One pipeline: what the CLI, the demo, the deployments and the tests need to know about it."""

    name: str
    summary: str  # one line: the CLI's help and the deployment's description
    flow: str  # "module:attribute" of its Prefect flow, taking an instance of the parameter model as its one argument
    params: str  # "module:attribute" of its Pydantic parameter model: the UI's form and the CLI's options
    deployment: str = ""  # the served deployment's name (default: the domain's)
    schedule: str | None = None  # cron of the served deployment (None: runs on demand)
    tags: tuple[str, ...] = ()
    fast: dict = field(default_factory=dict)  # parameters that make a run take seconds, for tests
    demo: tuple[dict, ...] = ({},)  # the runs ``tessera demo`` makes, one parameter set each
    example: str = ""  # "module:function(folder)": writes a tiny input in the real formats, returns its parameters

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"domain name {self.name!r}: use lowercase letters, digits and _ (a Python name)")

    def load_flow(self) -> Any:
        return load(self.flow)

    def load_params(self) -> type:
        return load(self.params)

    def write_example(self, folder: Path) -> dict:
        """Write the domain's tiny example input into ``folder``; the parameters that run on it ({}: none)."""
        if not self.example:
            return {}
        folder.mkdir(parents=True, exist_ok=True)
        return load(self.example)(folder)

    def run(self, **values: Any) -> dict:
        """Run the flow with ``values`` as its parameters (the rest at their defaults); its run record."""
        return self.load_flow()(self.load_params()(**values))

    @property
    def deployment_name(self) -> str:
        return self.deployment or self.name


BUILT_IN = (
    Domain("satellite", "satellite monitoring: mosaic, CNN class map, change and drift",
           flow="flows.satellite:satellite", params="flows.params:SatelliteParams", deployment="satellite-monitoring",
           schedule=os.environ.get("TESSERA_SATELLITE_CRON", "0 6 * * *"), tags=("satellite", "monitoring"),
           fast={"epochs": 3},
           demo=({"source": "synthetic", "date": "2024-05-01"}, {"source": "synthetic", "date": "2024-07-01"}),
           example="tasks.satellite.synthetic:example"),
    Domain("genome", "sequences to k-mer encodings to a regulatory-region classifier",
           flow="flows.genome:genome", params="flows.params:GenomeParams",
           tags=("genome",), fast={"epochs": 2, "synthetic_n": 300}, example="tasks.genome.synthetic:example"),
    Domain("sentiment", "social-media posts to a hybrid TF-IDF + text CNN classifier",
           flow="flows.sentiment:sentiment", params="flows.params:SentimentParams",
           tags=("sentiment",), fast={"epochs": 2, "synthetic_n": 400},
           example="tasks.sentiment.synthetic:example"),
    Domain("market", "prices to leakage-free windows to an LSTM forecaster",
           flow="flows.market:market", params="flows.params:MarketParams",
           tags=("market",), fast={"epochs": 2, "folds": 2, "lag": 10}, example="tasks.market.synthetic:example"),
)


@cache
def domains() -> dict[str, Domain]:
    """Every domain by name: the four built in, then those of the ``tessera.domains`` entry points."""
    found = {d.name: d for d in BUILT_IN}
    for point in entry_points(group=GROUP):
        domain = point.load()
        if not isinstance(domain, Domain):
            raise TypeError(f"entry point {point.name} = {point.value!r} in {GROUP}: expected a "
                            f"flows.domains.Domain, got {type(domain).__name__}")
        if domain.name in found:
            raise ValueError(f"entry point {point.name} = {point.value!r} in {GROUP}: a domain named "
                             f"{domain.name!r} exists already")
        found[domain.name] = domain
    return found
