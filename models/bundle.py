"""Portable models: one zip with everything scoring needs, to score with on another machine.

``tessera models export NAME --to model.zip`` packs a registered version's folder (``weights.pt``; ``card.json``
with the architecture, class names, calibration, band order and normalization, k and length, scalers, cleaning
options; the vocabulary and whatever else the domain keeps beside them) with a manifest of SHA-256 checksums.
``tessera run <domain> --bundle model.zip`` unpacks it into a registry of its own in the run folder, where it is the
champion, so the run scores with it through the same lifecycle and compatibility checks as a registry's champion,
and never touches the data root's registry.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from pydantic import ValidationError

from models.architectures import ARCHITECTURES
from models.card import ModelCard, tessera_version
from models.registry import ModelRegistry
from tasks.errors import BadInputError
from tasks.store import check_name, fetch, glob, join, now_iso, read_bytes, write_bytes, write_json

MANIFEST = "tessera-model.json"
FORMAT = 1


def export_bundle(registry: ModelRegistry, name: str, target: str | Path, *, version: str | None = None) -> dict:
    """Write version ``version`` of model ``name`` (default: the champion) to the zip ``target``; its manifest."""
    version = version or registry.champion_version(name)
    if version is None:
        raise BadInputError(f"model {name!r} has no champion; name a version with --version (tessera models list)")
    card = registry.card(name, version)
    files = {}
    for uri in sorted(glob(join(registry.root, name, version, "*"))):
        file_name = uri.replace("\\", "/").rsplit("/", 1)[-1]
        if not file_name.startswith("."):
            files[file_name] = read_bytes(uri)
    manifest = {"format": FORMAT, "name": name, "version": version, "tessera": card.tessera,
                "exported_by": tessera_version(), "exported": now_iso(), "architecture": card.architecture.name,
                "class_names": card.class_names,
                "files": {file_name: hashlib.sha256(data).hexdigest() for file_name, data in files.items()}}
    target = Path(target)
    if target.suffix.lower() != ".zip":
        raise BadInputError(f"--to {target}: a bundle is a .zip file; name it e.g. {target.with_suffix('.zip').name}")
    tmp = target.with_name(f".{target.name}.tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(MANIFEST, json.dumps(manifest, indent=2))
        for file_name, data in files.items():
            bundle.writestr(file_name, data)
    tmp.replace(target)
    return manifest


def read_bundle(uri: str) -> tuple[dict, dict[str, bytes]]:
    """The manifest and files of the bundle at ``uri`` (a path or an fsspec URL), each checked against its
    checksum."""
    path = fetch(uri)
    fix = "export it again with `tessera models export NAME --to model.zip`"
    if not Path(path).is_file():
        raise BadInputError(f"--bundle {uri}: file not found; {fix}")
    try:
        with zipfile.ZipFile(path) as bundle:
            manifest = json.loads(bundle.read(MANIFEST))
            files = {name: bundle.read(name) for name in manifest["files"]}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise BadInputError(f"--bundle {uri}: not a tessera model bundle ({exc}); {fix}") from exc
    if manifest.get("format") != FORMAT:
        raise BadInputError(f"--bundle {uri}: bundle format {manifest.get('format')} is not {FORMAT}, the one this "
                            f"tessera ({tessera_version()}) reads; export it with this version")
    for value, what in [(manifest["name"], "model name"), (manifest["version"], "model version"),
                        *((name, "file name") for name in files)]:
        check_name(value, f"--bundle {uri}: its {what}", "bundle (export it again)")
    for name, digest in manifest["files"].items():
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise BadInputError(f"--bundle {uri}: {name} does not match its checksum (damaged in transfer); {fix}")
    if "card.json" not in files or "weights.pt" not in files:
        raise BadInputError(f"--bundle {uri}: card.json or weights.pt is missing; {fix}")
    return manifest, files


def install_bundle(uri: str, root: str | Path) -> str:
    """Unpack the bundle at ``uri`` as the champion of a registry under ``root``; the model's name there."""
    manifest, files = read_bundle(uri)
    name, version = manifest["name"], manifest["version"]
    try:
        card = ModelCard.model_validate_json(files["card.json"])
    except ValidationError as exc:
        raise BadInputError(f"--bundle {uri}: its card.json is not a model card ({exc.errors()[0]['msg']}); export "
                            "it again with `tessera models export NAME --to model.zip`") from exc
    if card.architecture.name not in ARCHITECTURES:
        raise BadInputError(f"--bundle {uri}: its model class {card.architecture.name} is not one this tessera "
                            f"({tessera_version()}) knows; it was made by tessera {card.tessera}: upgrade")
    registry = ModelRegistry(root)
    version_dir = join(registry.root, name, version)
    for file_name, data in files.items():
        if file_name != "card.json":
            write_bytes(data, join(version_dir, file_name))
    write_json(card.model_copy(update={"uri": version_dir}).to_json(), join(version_dir, "card.json"))
    registry.promote(name, version)
    return name
