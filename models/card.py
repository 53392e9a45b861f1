"""The model card: one typed record of what a registered model is, what it was trained on, and how to use it.

A domain fills the fields it needs (``bands`` and ``normalization`` for satellite, ``scalers`` for market); the
registry fills the identity fields (``name``, ``version``, ``created``, ``uri``, ``weights_sha256``, ``tessera``)
when it stores the weights. Cards are JSON on disk (``card.json``) and are validated when read.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def tessera_version() -> str:
    try:
        return version("tessera")
    except PackageNotFoundError:
        return "unknown"


class Architecture(BaseModel):
    """The class of a model (a name in ``models.architectures.ARCHITECTURES``) and its constructor arguments."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    name: str = Field(alias="class")
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ModelCard(BaseModel):
    """What a model is, how it scored, what it was trained on, and what scoring new data with it needs."""

    model_config = ConfigDict(extra="ignore")

    architecture: Architecture
    parameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    history: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict, description="what it was trained on: counts, fingerprint")
    class_names: list[str] | None = None
    calibration: dict[str, Any] | None = None
    bands: list[str] | None = Field(default=None, description="satellite: the band order the model reads")
    normalization: dict[str, list[float]] | None = Field(
        default=None, description="satellite: per-band mean, std, low and high of the training area")
    scalers: dict[str, tuple[list[float], list[float]]] | None = Field(
        default=None, description="market: per-symbol feature mean and std")
    tuning: dict[str, Any] | None = Field(
        default=None, description="--tune: the search space, every trial's validation score, the chosen values")
    tessera: str = Field("unknown", description="the tessera version that registered it")
    name: str = ""
    version: str = ""
    created: str = ""
    uri: str = ""
    weights_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The card as written to ``card.json``."""
        return self.model_dump(by_alias=True)
