"""Versioned models with a card, and the record of which version is the champion.

``<data root>/models/<name>/v<N>/{weights.pt,card.json}``; the champion is the latest record in
``<name>/promotions/`` (``000001.json``, ``000002.json`` ...), each created only if it did not exist yet, so two
runs promoting at once cannot both win (a registry written before promotions existed keeps ``champion.json``).
The data root may be a folder or an fsspec URL.
"""

from __future__ import annotations

import hashlib
import io
import json
import os

import torch
from pydantic import ValidationError
from torch import nn

from models.card import ModelCard, tessera_version
from tasks.errors import BadInputError
from tasks.store import (
    check_name,
    create_exclusive,
    data_root,
    exists,
    glob,
    join,
    now_iso,
    read_bytes,
    read_json,
    write_bytes,
    write_json,
)

_ANY = object()


class RegistryError(BadInputError):
    """A model file that is missing, truncated or does not match its card: exit code 2, with how to recover."""


def _recover(name: str) -> str:
    return (f"promote an earlier version with `tessera models promote {name} VERSION` (see `tessera models list`), "
            "or retrain with --train always")


class ModelRegistry:
    """Register versions, read cards, load weights (checked against the card's checksum), promote champions."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = join(data_root(root), "models")

    def _dir(self, name: str, *parts: str) -> str:
        return join(self.root, check_name(name, "model name", "--model-name"), *parts)

    def _version_dir(self, name: str, version: str, *parts: str) -> str:
        return self._dir(name, check_name(version, "model version", "VERSION"), *parts)

    def names(self) -> list[str]:
        """Every model name with at least one registered version."""
        cards = glob(join(self.root, "*", "v*", "card.json"))
        return sorted({uri.replace(os.sep, "/").split("/")[-3] for uri in cards})

    def versions(self, name: str) -> list[str]:
        """The registered versions of ``name``, oldest first."""
        found = [uri.replace(os.sep, "/").split("/")[-2] for uri in glob(self._dir(name, "v*", "card.json"))]
        return sorted((v for v in found if v[1:].isdigit()), key=lambda v: int(v[1:]))

    def register(self, name: str, model: nn.Module, card: ModelCard, *,
                 extra_files: dict[str, bytes] | None = None) -> ModelCard:
        """Store the weights (their SHA-256 in the card), card and any extra files (a drift reference) as the next
        version; return the card as registered."""
        taken = [uri.replace(os.sep, "/").split("/")[-2]
                 for marker in (".claimed", "card.json") for uri in glob(self._dir(name, "v*", marker))]
        n = 1 + max((int(v[1:]) for v in taken if v[1:].isdigit()), default=0)
        while not create_exclusive(self._dir(name, f"v{n}", ".claimed")):  # another run took this number
            n += 1
        version_dir = self._dir(name, f"v{n}")
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        weights = buf.getvalue()
        write_bytes(weights, join(version_dir, "weights.pt"))
        for file_name, data in (extra_files or {}).items():
            write_bytes(data, join(version_dir, file_name))
        card = card.model_copy(update={"name": name, "version": f"v{n}", "created": now_iso(), "uri": version_dir,
                                       "weights_sha256": hashlib.sha256(weights).hexdigest(),
                                       "tessera": tessera_version()})
        write_json(card.to_json(), join(version_dir, "card.json"))
        return card

    def card(self, name: str, version: str) -> ModelCard:
        uri = self._version_dir(name, version, "card.json")
        try:
            return ModelCard.model_validate_json(read_bytes(uri))
        except FileNotFoundError as exc:
            raise RegistryError(f"{uri}: model card not found; {_recover(name)}") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            problem = (f"is not valid JSON ({first['msg']})" if first["type"] == "json_invalid" else
                       f"is not a valid card ({'.'.join(map(str, first['loc'])) or 'card'}: {first['msg']})")
            raise RegistryError(f"{uri}: model card {problem}; {_recover(name)}") from exc

    def file(self, name: str, version: str, file_name: str) -> bytes | None:
        """A file kept beside a version's weights (a drift reference, a vocabulary), or None if there is none."""
        uri = self._version_dir(name, version, file_name)
        return read_bytes(uri) if exists(uri) else None

    def _last_promotion(self, name: str) -> int:
        records = [os.path.basename(uri)[:-5] for uri in glob(self._dir(name, "promotions", "*.json"))]
        return max((int(r) for r in records if r.isdigit()), default=0)

    def _champion_at(self, name: str, record: int) -> str | None:
        pointer = self._dir(name, "promotions", f"{record:06d}.json") if record else self._dir(name, "champion.json")
        if not exists(pointer):
            return None
        try:
            return str(read_json(pointer)["version"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise RegistryError(f"{pointer}: champion record is broken ({exc}); {_recover(name)}") from exc

    def champion_version(self, name: str) -> str | None:
        """The version promoted last, or None before any promotion."""
        return self._champion_at(name, self._last_promotion(name))

    def champion(self, name: str) -> ModelCard | None:
        """The champion's card, or None before any model was promoted."""
        version = self.champion_version(name)
        return None if version is None else self.card(name, version)

    def promote(self, name: str, version: str, *, expected: str | None | object = _ANY) -> bool:
        """Make ``version`` the champion. With ``expected`` (the champion the caller compared against, None for
        none) only if it still is: False when another run promoted in between. Each promotion is a new record
        created only if no other run created it first, so concurrent promotions never overwrite each other."""
        self.card(name, version)
        last = self._last_promotion(name)
        current = self._champion_at(name, last)
        if expected is not _ANY and current != expected:
            return False
        record = json.dumps({"version": version, "promoted": now_iso(), "previous": current})
        return create_exclusive(self._dir(name, "promotions", f"{last + 1:06d}.json"), record.encode())

    def load(self, name: str, version: str, model: nn.Module) -> nn.Module:
        """Load stored weights into a freshly built ``model`` (weights only: no pickled code runs), after checking
        them against the card's checksum."""
        uri = self._version_dir(name, version, "weights.pt")
        try:
            data = read_bytes(uri)
        except FileNotFoundError as exc:
            raise RegistryError(f"{uri}: model weights not found; {_recover(name)}") from exc
        expected = self.card(name, version).weights_sha256
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise RegistryError(f"{uri}: model weights do not match their card's checksum (truncated or replaced); "
                                f"{_recover(name)}")
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except (RuntimeError, EOFError, ValueError, KeyError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise RegistryError(f"{uri}: model weights cannot be loaded ({detail}); {_recover(name)}") from exc
        return model.eval()
