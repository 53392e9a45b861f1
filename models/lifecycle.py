"""One model lifecycle for every domain: train a challenger or reuse the champion, compare the two on data
neither trained on, promote, and choose the model that scores the run's outputs.

A domain supplies a :class:`ModelSpec` (fit on its train split with early stopping on validation, score a model
on some units, say why a champion cannot score its data; every model is rebuilt from its card by
``models.architectures.build``) and keys for its
units (records, windows, blocks: see :func:`unit_keys`). Every challenger's card names the keys it was trained
and validated on (``trained_on.npy`` beside its weights), so a later run can tell which of its own units a
champion has never seen.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from torch import nn

from models.architectures import build
from models.card import ModelCard
from models.registry import ModelRegistry
from tasks.errors import BadInputError
from tasks.results import Trained
from tasks.store import write_json

TRAINED_ON = "trained_on.npy"
TRAIN, VAL, TEST = 0, 1, 2


def unit_keys(values: Iterable[str | bytes]) -> np.ndarray:
    """A 64-bit key per unit from what identifies it (a record's content, a symbol and date, a block)."""
    return np.array([int.from_bytes(hashlib.blake2b(v if isinstance(v, bytes) else v.encode(), digest_size=8)
                                    .digest(), "little") for v in values], dtype=np.uint64)


@dataclass
class Fitted:
    """A challenger: the model, its card (before registration), files to keep beside its weights, and whatever
    else the domain computed while fitting for its report (``outputs``, not kept)."""

    model: nn.Module
    card: ModelCard
    extra_files: dict[str, bytes] = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)


class ModelSpec(Protocol):
    """What a domain supplies to the lifecycle."""

    def mismatch(self, card: ModelCard) -> str | None:
        """Why a model with this card cannot score this run's data (other classes, bands, k, lag ...), as the
        rest of a sentence naming the option to change; None when it can."""

    def fit(self) -> Fitted:
        """A challenger fitted on the train units with early stopping on the validation units."""

    def score(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> float:
        """The comparison metric (higher is better) of ``model`` on the units at ``units`` (indices)."""


@dataclass
class Decision:
    """What the lifecycle decided, and the model whose outputs the run publishes."""

    scoring: ModelCard
    model: nn.Module
    trained: ModelCard | None
    fitted: Fitted | None
    champion_before: str | None
    promoted: bool
    comparison: dict

    def summary(self) -> dict:
        """The ``model`` entry of run.json."""
        card = self.trained or self.scoring
        return {"name": card.name, "version": card.version, "uri": card.uri,
                "trained": self.trained is not None, "promoted": self.promoted, "champion": self.champion_before,
                "scored_with": self.scoring.version, "comparison": self.comparison}


def trained_on(registry: ModelRegistry, card: ModelCard) -> np.ndarray | None:
    """The unit keys a model was trained and validated on; None for a model registered before they were kept."""
    data = registry.file(card.name, card.version, TRAINED_ON)
    return None if data is None else np.load(io.BytesIO(data))


def unseen_by(registry: ModelRegistry, card: ModelCard, keys: np.ndarray) -> np.ndarray:
    """True for each key the model with ``card`` never trained or validated on (all True if its card predates
    these records)."""
    seen = trained_on(registry, card)
    return np.ones(len(keys), dtype=bool) if seen is None else ~np.isin(keys, seen)


def honest_test(decision: Decision, registry: ModelRegistry, keys: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The test units (indices) on which the model that scores can be measured honestly: every test unit for a
    challenger trained this run (it never saw them), else those the champion never trained or validated on."""
    if decision.fitted is not None:
        return test
    return test[unseen_by(registry, decision.scoring, keys[test])]


NO_HONEST_TEST = ("every test unit was in the champion's training or validation data: no honest test metric; "
                  "train with --train always on new data")


def write_result(decision: Decision, uri: str | os.PathLike, *, metrics: dict, baselines: dict,
                 **extra: object) -> Trained:
    """Write a run's training.json (the decision as run.json's ``model``, the metrics and baselines, the history
    and classes of the model trained or reused, and ``extra``) and return what the flow records."""
    card = decision.trained or decision.scoring
    result = {"model": decision.summary(), "metrics": metrics, "baselines": baselines,
              "history": card.history, "class_names": card.class_names, **extra}
    if card.tuning:
        result["tuning"] = card.tuning
    return Trained(output=write_json(result, uri), model=result["model"], metrics=metrics, baselines=baselines)


def _keys_file(keys: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.unique(keys))
    return buf.getvalue()


def run_lifecycle(spec: ModelSpec, registry: ModelRegistry, name: str, *, mode: str, keys: np.ndarray,
                  split: np.ndarray, no_champion: str) -> Decision:
    """``--train auto|always|never`` for any domain.

    ``never``, or ``auto`` with a compatible champion: no training; the champion scores. Otherwise a challenger
    is fitted and registered (with the keys of its train and validation units), then compared with a compatible
    champion on the validation units the champion never trained or validated on; it is promoted only if it
    scores higher there and the champion is still the one compared with. With no such unit the champion stays:
    no promotion on a metric that cannot be measured honestly. The run's outputs come from the champion after
    the decision. ``no_champion``: the message when a champion is needed and there is none.
    """
    if mode not in ("auto", "always", "never"):
        raise BadInputError(f"unknown --train {mode!r}; choose auto, always or never")
    champion = registry.champion(name)
    mismatch = spec.mismatch(champion) if champion is not None else None
    usable = champion if champion is not None and mismatch is None else None
    if mode == "never" or (mode == "auto" and usable is not None):
        if mismatch is not None:
            raise BadInputError(f"model {name} {champion.version} cannot score this run: {mismatch}")
        if usable is None:
            raise BadInputError(no_champion)
        model = registry.load(name, usable.version, build(usable))
        return Decision(scoring=usable, model=model, trained=None, fitted=None,
                        champion_before=usable.version, promoted=False,
                        comparison={"decision": f"no training (--train {mode}): the champion scores"})
    fitted = spec.fit()
    seen = np.asarray(keys)[np.isin(split, (TRAIN, VAL))]
    card = registry.register(name, fitted.model, fitted.card,
                             extra_files={**fitted.extra_files, TRAINED_ON: _keys_file(seen)})
    comparison = _compare(spec, registry, usable, fitted.model, card, keys, split)
    before = champion.version if champion else None
    promoted = comparison["challenger_wins"] and registry.promote(name, card.version, expected=before)
    if comparison["challenger_wins"] and not promoted:
        comparison["decision"] = "another run promoted a model meanwhile: it stays champion"
    if promoted or usable is None:
        scoring, model = card, fitted.model
    else:
        scoring = registry.champion(name)
        model = registry.load(name, scoring.version, build(scoring))
    return Decision(scoring=scoring, model=model, trained=card, fitted=fitted, champion_before=before,
                    promoted=promoted, comparison=comparison)


def _compare(spec: ModelSpec, registry: ModelRegistry, champion: ModelCard | None, model: nn.Module, card: ModelCard,
             keys: np.ndarray, split: np.ndarray) -> dict:
    if champion is None:
        return {"challenger_wins": True, "decision": "no compatible champion: the challenger is promoted"}
    never_seen = unseen_by(registry, champion, keys)
    units = np.flatnonzero((split == VAL) & never_seen)
    on = "validation units the champion never trained or validated on"
    if trained_on(registry, champion) is None:
        on = "this run's validation units (the champion's card does not say what it trained on)"
    if len(units) == 0:
        return {"challenger_wins": False, "on": on, "units": 0,
                "decision": "the champion trained or validated on every validation unit of this run, so the two "
                            "cannot be compared honestly: the champion stays"}
    champion_model = registry.load(champion.name, champion.version, build(champion))
    ours, theirs = spec.score(model, card, units), spec.score(champion_model, champion, units)
    wins = bool(ours > theirs)
    return {"challenger_wins": wins, "on": on, "units": int(len(units)), "challenger": ours, "champion": theirs,
            "decision": f"challenger {ours:.4f} vs champion {theirs:.4f}: "
                        + ("the challenger is promoted" if wins else "the champion stays")}
