"""Readers at the edge: FASTA, FASTQ (plain or gzipped) and CSV to one table of records with labels.

Formats are recognised from the content, not the name: gzip magic, then '>' for FASTA, '@' for FASTQ,
otherwise a CSV with ``id,label,sequence`` (or ``sequence`` alone).
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from Bio.SeqIO.FastaIO import SimpleFastaParser
from Bio.SeqIO.QualityIO import FastqGeneralIterator

from tasks.errors import BadInputError

_HEADER_LABEL = re.compile(r"(?:^|\s|\|)label=([^\s|;]+)")
_SUFFIXES = (".gz", ".fasta", ".fa", ".fna", ".fastq", ".fq", ".csv", ".txt")
COLUMNS = ["id", "label", "sequence", "source"]


def expand_inputs(inputs: str | list[str]) -> list[Path]:
    """Files named by paths, folders or globs."""
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    paths: list[Path] = []
    for item in items:
        for part in str(item).split(","):
            p = Path(part).expanduser()
            if p.is_dir():
                paths.extend(sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")))
            elif any(ch in part for ch in "*?["):
                paths.extend(sorted(Path(m) for m in glob.glob(part, recursive=True) if Path(m).is_file()))
            elif p.exists():
                paths.append(p)
            else:
                raise BadInputError(f"{part}: no such file or folder; pass --input FASTA/FASTQ/CSV files, a folder "
                                    "or a glob")
    if not paths:
        raise BadInputError(f"{inputs}: no input files found")
    return paths


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="ascii", errors="replace", newline=None)
    return open(path, encoding="ascii", errors="replace", newline=None)


def sniff_format(path: Path) -> str:
    """'fasta', 'fastq' or 'csv' from the first bytes; BadInputError for empty or binary files."""
    try:
        with _open_text(path) as fh:
            head = fh.read(4096)
    except (OSError, EOFError, zlib.error) as exc:
        raise BadInputError(f"{path}: cannot be read ({exc}); is the gzip file truncated? re-download it") from exc
    if not head.strip():
        raise BadInputError(f"{path}: empty file; remove it or pass a FASTA/FASTQ/CSV file with records")
    if "\x00" in head or sum(ch == "\ufffd" for ch in head) > len(head) // 20:
        raise BadInputError(f"{path}: binary data, not FASTA/FASTQ/CSV text; pass sequence files")
    first = head.lstrip()[0]
    if first == ">":
        return "fasta"
    if first == "@":
        return "fastq"
    if "sequence" in head.splitlines()[0].lower():
        return "csv"
    raise BadInputError(f"{path}: not FASTA ('>'), FASTQ ('@') or a CSV with a 'sequence' column; "
                        f"it starts with {head.lstrip()[:20]!r}")


def _label_of(description: str) -> str | None:
    match = _HEADER_LABEL.search(description)
    return match.group(1) if match else None


def iter_records(path: Path) -> Iterator[tuple[str, str | None, str]]:
    """(id, label from the header or None, sequence) for every record of one file."""
    fmt = sniff_format(path)
    try:
        with _open_text(path) as fh:
            if fmt == "fasta":
                for title, seq in SimpleFastaParser(fh):
                    yield title.split(None, 1)[0] if title.strip() else "", _label_of(title), seq
            elif fmt == "fastq":
                for title, seq, _quality in FastqGeneralIterator(fh):
                    yield title.split(None, 1)[0], _label_of(title), seq
            else:
                reader = csv.DictReader(fh)
                fields = {name.lower().strip(): name for name in reader.fieldnames or []}
                for i, row in enumerate(reader):
                    seq = row.get(fields["sequence"]) or ""
                    ident = row.get(fields["id"]) if "id" in fields else f"{path.stem}_{i + 1}"
                    label = row.get(fields["label"]) if "label" in fields else None
                    yield ident or f"{path.stem}_{i + 1}", label or None, seq.strip()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BadInputError(f"{path}: the gzip stream is truncated or corrupt ({exc}); re-download the file") from exc
    except ValueError as exc:
        raise BadInputError(f"{path}: malformed {fmt.upper()} ({exc}); fix or remove the broken record") from exc


def read_records(inputs: str | list[str], *, labels: str | None = None,
                 label_from_filename: bool = False) -> pd.DataFrame:
    """All records as a table ``id, label, sequence, source``.

    Labels come from the CSV's label column or a ``label=`` in the FASTA header, from ``labels`` (a CSV
    mapping id to label, which overrides them), or from the file name (one file per class).
    """
    frames = []
    for path in expand_inputs(inputs):
        rows = list(iter_records(path))
        frame = pd.DataFrame(rows, columns=["id", "label", "sequence"])
        frame["source"] = str(path)
        if label_from_filename:
            name = path.name
            for suffix in _SUFFIXES:
                name = name.removesuffix(suffix)
            frame["label"] = name
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    table["label"] = table["label"].astype(object)
    if labels:
        mapping = read_label_map(labels)
        unknown = sorted(set(mapping) - set(table["id"]))
        if unknown:
            raise BadInputError(f"{labels}: names {len(unknown)} id(s) not in the sequences, e.g. {unknown[:3]}; "
                                "fix the ids or pass the matching sequence files")
        table["label"] = table["id"].map(mapping).astype(object)
    return table[COLUMNS]


def read_label_map(path: str) -> dict[str, str]:
    """A CSV with columns id and label."""
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"{path}: labels file not found; pass --labels a CSV with columns id,label")
    frame = pd.read_csv(p, dtype=str)
    columns = {c.lower().strip(): c for c in frame.columns}
    if "id" not in columns or "label" not in columns:
        raise BadInputError(f"{path}: needs columns id and label; found {', '.join(frame.columns)}")
    return dict(zip(frame[columns["id"]], frame[columns["label"]], strict=True))


def iter_fasta_chunks(path: str | Path, *, chunk_bases: int = 8_000_000, overlap: int = 0) -> Iterator[list[str]]:
    """Sequences of a FASTA file in lists of about ``chunk_bases`` bases, so memory stays flat for any
    file size; a long record is cut into pieces that overlap by ``overlap`` bases (k - 1 to count k-mers)."""
    batch: list[str] = []
    size = 0
    step = max(1, chunk_bases - overlap)
    with _open_text(Path(path)) as fh:
        for _title, seq in SimpleFastaParser(fh):
            for start in range(0, max(len(seq) - overlap, 1), step):
                piece = seq[start:start + chunk_bases]
                batch.append(piece)
                size += len(piece)
                if size >= chunk_bases:
                    yield batch
                    batch, size = [], 0
    if batch:
        yield batch
