"""Readers at the edge: posts from CSV, JSONL or Parquet (gzip, bzip2 or xz too), with encodings as found.

Bytes that do not decode are replaced and counted; ftfy repairs the text: mojibake (UTF-8 read as Latin-1), which
is counted, and HTML entities and curly quotes, which are not. Columns are matched without case; the message for
a missing column lists the columns found.
"""

from __future__ import annotations

import io
from pathlib import Path

import ftfy
import pandas as pd

from tasks.errors import BadInputError

TEXT_COLUMNS = ("text", "content", "post", "tweet", "review", "body", "message")
LABEL_COLUMNS = ("label", "sentiment", "category", "class", "score", "polarity")


def _pick(columns: list[str], wanted: str | None, defaults: tuple[str, ...], what: str, path: Path,
          required: bool) -> str | None:
    lower = {c.lower().strip(): c for c in columns}
    if wanted:
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise BadInputError(f"{path}: {what} column {wanted!r} not found; columns are: {', '.join(columns)}")
    for name in defaults:
        if name in lower:
            return lower[name]
    if required:
        raise BadInputError(f"{path}: no {what} column ({' or '.join(defaults[:3])}); columns are: "
                            f"{', '.join(columns)}; pass --{what}-column")
    return None


def _decode(raw: bytes, encoding: str) -> tuple[str, int]:
    text = raw.decode(encoding, errors="replace")
    return text, text.count("\ufffd") - raw.decode(encoding, errors="ignore").count("\ufffd")


def _decompressed(raw: bytes, path: str) -> bytes:
    """The bytes of a gzip, bzip2 or xz file, recognised by their magic number; other bytes as they are."""
    import bz2
    import gzip
    import lzma

    openers = {b"\x1f\x8b": gzip.decompress, b"BZh": bz2.decompress, b"\xfd7zXZ": lzma.decompress}
    for magic, decompress in openers.items():
        if raw.startswith(magic):
            try:
                return decompress(raw)
            except (OSError, EOFError, ValueError, lzma.LZMAError) as exc:
                raise BadInputError(f"{path}: compressed data is truncated or corrupt ({exc}); re-download it") from exc
    return raw


def read_posts(path: str, *, text_column: str | None = None, label_column: str | None = None,
               encoding: str = "utf-8") -> tuple[pd.DataFrame, dict]:
    """Posts as a table ``id, text, label`` and what was repaired (undecodable bytes, mojibake) and read (the
    columns used and found)."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{path}: no such file; pass --input a CSV, JSONL or Parquet file of posts")
    raw = _decompressed(p.read_bytes(), path)
    if not raw.strip():
        raise BadInputError(f"{path}: empty file; pass a CSV, JSONL or Parquet file with posts")
    suffix = "".join(p.suffixes).lower()
    try:
        if raw[:4] == b"PAR1" or suffix.endswith(".parquet"):
            frame, replaced = pd.read_parquet(io.BytesIO(raw)), 0
        else:
            if b"\x00" in raw[:4096]:
                raise BadInputError(f"{path}: binary data, not CSV/JSONL text; pass a text file of posts")
            text, replaced = _decode(raw, encoding)
            if suffix.endswith((".jsonl", ".ndjson", ".json")) or text.lstrip().startswith("{"):
                frame = pd.read_json(io.StringIO(text), lines=True)
            else:
                frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except BadInputError:
        raise
    except (ValueError, pd.errors.ParserError) as exc:
        raise BadInputError(f"{path}: cannot be parsed as CSV/JSONL/Parquet ({str(exc).splitlines()[0]})") from exc
    except LookupError as exc:
        raise BadInputError(f"--encoding {encoding!r} is not a known text encoding") from exc
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    text_col = _pick(columns, text_column, TEXT_COLUMNS, "text", p, required=True)
    label_col = _pick(columns, label_column, LABEL_COLUMNS, "label", p, required=False)
    texts = frame[text_col].astype("string")
    fixed = texts.map(lambda t: ftfy.fix_text(t) if isinstance(t, str) else t, na_action="ignore")
    mojibake = int(texts.map(lambda t: ftfy.fix_encoding(t) != t if isinstance(t, str) else False).sum())
    id_col = next((c for c in columns if c.lower() == "id"), None)
    posts = pd.DataFrame({
        "id": frame[id_col].astype(str) if id_col else pd.Series(range(1, len(frame) + 1)).astype(str),
        "text": fixed.astype(object),
        "label": frame[label_col].astype("string").astype(object) if label_col else None,
    })
    posts["label"] = posts["label"].where(posts["label"].notna(), None)
    return posts, {"undecodable_replaced": int(replaced), "mojibake_repaired": mojibake,
                   "read": {"text_column": text_col, "label_column": label_col, "columns": ", ".join(columns),
                            "encoding": encoding}}
