"""Versioned models with a card; champion/challenger promotion on the same validation data."""

from __future__ import annotations

import io
import os

import torch
from torch import nn

from tasks.store import (
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


class ModelRegistry:
    """``<data root>/models/<name>/v<N>/{weights.pt,card.json}`` and ``champion.json`` per name; the data root
    may be a folder or an fsspec URL."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = join(data_root(root), "models")

    def _dir(self, name: str, *parts: str) -> str:
        return join(self.root, name, *parts)

    def register(self, name: str, model: nn.Module, card: dict, *, extra_files: dict[str, bytes] | None = None) -> dict:
        """Store the weights, card and any extra files (a drift reference) as the next version;
        return ``{"name", "version", "uri"}``."""
        taken = [uri.replace(os.sep, "/").split("/")[-2]
                 for marker in (".claimed", "card.json") for uri in glob(self._dir(name, "v*", marker))]
        n = 1 + max((int(v[1:]) for v in taken if v[1:].isdigit()), default=0)
        while not create_exclusive(self._dir(name, f"v{n}", ".claimed")):  # another run took this number
            n += 1
        version_dir = self._dir(name, f"v{n}")
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        write_bytes(buf.getvalue(), join(version_dir, "weights.pt"))
        for file_name, data in (extra_files or {}).items():
            write_bytes(data, join(version_dir, file_name))
        card = {**card, "name": name, "version": f"v{n}", "created": now_iso(), "uri": version_dir}
        write_json(card, join(version_dir, "card.json"))
        return {"name": name, "version": f"v{n}", "uri": version_dir}

    def card(self, name: str, version: str) -> dict:
        return read_json(self._dir(name, version, "card.json"))

    def champion(self, name: str) -> dict | None:
        """The champion's card, or None before any model was promoted."""
        pointer = self._dir(name, "champion.json")
        if not exists(pointer):
            return None
        return self.card(name, read_json(pointer)["version"])

    def promote(self, name: str, version: str) -> None:
        write_json({"version": version, "promoted": now_iso()}, self._dir(name, "champion.json"))

    def load(self, name: str, version: str, model: nn.Module) -> nn.Module:
        """Load stored weights into a freshly built ``model`` (weights only: no pickled code runs)."""
        data = io.BytesIO(read_bytes(self._dir(name, version, "weights.pt")))
        state = torch.load(data, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model.eval()


def challenger_wins(challenger: float, champion: float | None, *, min_gain: float = 0.0) -> bool:
    """Promote only if the challenger beats the champion on the same validation data."""
    return champion is None or challenger > champion + min_gain
