"""Readers at the edge: FASTA, FASTQ (plain or gzipped) and CSV to one table of records with labels, and the
k-mer counts of a whole FASTA file, streamed and counted in parallel byte ranges.

Formats are recognised from the content, not the name: gzip magic, then '>' for FASTA, '@' for FASTQ,
otherwise a CSV with ``id,label,sequence`` (or ``sequence`` alone; other common names such as ``name``, ``class``
and ``seq`` are recognised). pandas and Biopython are imported where they are used, so the processes that count
byte ranges start with numpy alone.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import multiprocessing
import os
import re
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from tasks.errors import BadInputError
from tasks.genome.encode import LOOKUP, count_kmers_in

if TYPE_CHECKING:
    import pandas as pd

_HEADER_LABEL = re.compile(r"(?:^|\s|\|)label=([^\s|;]+)")
CSV_ALIASES = {
    "sequence": ("sequence", "seq", "sequences", "dna", "nucleotides"),
    "id": ("id", "name", "seq_id", "sequence_id", "identifier", "accession"),
    "label": ("label", "class", "category", "target", "type", "y"),
}
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
    if _csv_column(head.splitlines()[0].split(","), "sequence"):
        return "csv"
    raise BadInputError(f"{path}: not FASTA ('>'), FASTQ ('@') or a CSV with a sequence column "
                        f"({', '.join(CSV_ALIASES['sequence'])}); it starts with {head.lstrip()[:20]!r}")


def _csv_column(names: list[str], role: str) -> str | None:
    """The column of a CSV header that plays ``role`` (id, label, sequence), by its common names."""
    lower = {name.lower().strip().strip('"'): name for name in names}
    return next((lower[alias] for alias in CSV_ALIASES[role] if alias in lower), None)


def _label_of(description: str) -> str | None:
    match = _HEADER_LABEL.search(description)
    return match.group(1) if match else None


def iter_records(path: Path) -> Iterator[tuple[str, str | None, str]]:
    """(id, label from the header or None, sequence) for every record of one file."""
    from Bio.SeqIO.FastaIO import SimpleFastaParser
    from Bio.SeqIO.QualityIO import FastqGeneralIterator

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
                names = list(reader.fieldnames or [])
                seq_col, id_col, label_col = (_csv_column(names, role) for role in ("sequence", "id", "label"))
                for i, row in enumerate(reader):
                    seq = row.get(seq_col) or ""
                    ident = row.get(id_col) if id_col else f"{path.stem}_{i + 1}"
                    label = row.get(label_col) if label_col else None
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
    import pandas as pd

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
    import pandas as pd

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
    from Bio.SeqIO.FastaIO import SimpleFastaParser

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


_TABLE = bytes(LOOKUP)
_WHITESPACE = b" \t\r\n\v\f"
_LOOKBACK = 1 << 20
_PARALLEL_MIN_RANGES = 16


def _open_binary(path: Path) -> BinaryIO:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _line_end(block: bytes, pos: int) -> int:
    """Index of the first line break (LF or a CR) at or after ``pos``, -1 if none."""
    nl = block.find(b"\n", pos)
    cr = block.find(b"\r", pos, nl if nl >= 0 else len(block))
    return cr if cr >= 0 else nl


class _FastaScan:
    """Where a FASTA byte stream is between blocks: a header seen yet, inside a header line, at a line start."""

    __slots__ = ("seen_header", "in_header", "line_start")

    def __init__(self, *, seen_header: bool = False, in_header: bool = False, line_start: bool = True) -> None:
        self.seen_header, self.in_header, self.line_start = seen_header, in_header, line_start

    def sequence(self, block: bytes) -> bytes:
        """The sequence bytes of the next ``block`` (whitespace kept) with each header line replaced by one b">",
        which maps to code 4 and so separates records. Text before the first header is skipped."""
        parts: list[bytes] = []
        pos = 0
        if self.in_header:
            end = _line_end(block, 0)
            pos, self.in_header = (len(block), True) if end < 0 else (end + 1, False)
        while pos < len(block):
            head = block.find(b">", pos)
            while head >= 0 and not (self.line_start if head == 0 else block[head - 1] in b"\r\n"):
                head = block.find(b">", head + 1)
            if head < 0:
                if self.seen_header:
                    parts.append(block[pos:])
                break
            if self.seen_header:
                parts.append(block[pos:head])
            parts.append(b">")
            self.seen_header = True
            end = _line_end(block, head + 1)
            if end < 0:
                self.in_header = True
                break
            pos = end + 1
        if block:
            self.line_start = block[-1] in b"\r\n"
        return b"".join(parts)


def iter_fasta_codes(path: str | Path, *, chunk_bytes: int = 1 << 18, overlap: int = 0) -> Iterator[np.ndarray]:
    """Base codes (uint8, ``encode.LOOKUP``) of all records of a FASTA file, plain or gzipped, in chunks of about
    ``chunk_bytes`` of file, so memory stays flat for any file size.

    Records are separated by one code 4 (an N), so no k-mer spans two; each chunk starts with the last ``overlap``
    codes of the one before (k - 1 to count k-mers). Whitespace anywhere in a sequence line is dropped; lines may
    end in LF, CRLF or CR and have any length.
    """
    scan, carry = _FastaScan(), b""
    try:
        with _open_binary(Path(path)) as fh:
            while block := fh.read(chunk_bytes):
                codes = scan.sequence(block).translate(_TABLE, _WHITESPACE)
                if codes:
                    buffer = carry + codes
                    carry = buffer[-overlap:] if overlap else b""
                    yield np.frombuffer(buffer, dtype=np.uint8)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BadInputError(f"{path}: the gzip stream is truncated or corrupt ({exc}); re-download the file") from exc


def _first_header(fh: BinaryIO) -> int:
    """Offset of the first '>' at a line start, -1 if there is none."""
    fh.seek(0)
    offset, line_start = 0, True
    while block := fh.read(1 << 16):
        head = block.find(b">")
        while head >= 0 and not (line_start if head == 0 else block[head - 1] in b"\r\n"):
            head = block.find(b">", head + 1)
        if head >= 0:
            return offset + head
        offset, line_start = offset + len(block), block[-1] in b"\r\n"
    return -1


def _scan_at(fh: BinaryIO, start: int) -> _FastaScan:
    """The scan state at byte ``start`` of an uncompressed FASTA, from the line it is in.

    The line start is looked for at most 1 MiB back: a longer line is taken for a sequence line (header lines
    are assumed shorter than that), so long unwrapped sequences split into ranges cheaply.
    """
    if start == 0:
        return _FastaScan()
    first = _first_header(fh)
    line, p, low = -1, start, max(0, start - _LOOKBACK)
    while p > low:
        q = max(low, p - (1 << 16))
        fh.seek(q)
        window = fh.read(p - q)
        brk = max(window.rfind(b"\n"), window.rfind(b"\r"))
        if brk >= 0:
            line = q + brk + 1
            break
        p = q
    else:
        line = 0 if low == 0 else -1
    in_header = False
    if 0 <= line < start:
        fh.seek(line)
        in_header = fh.read(1) == b">"
    return _FastaScan(seen_header=0 <= first < start, in_header=in_header, line_start=line == start)


def iter_range_codes(path: str | Path, start: int, stop: int, *, chunk_bytes: int = 1 << 18,
                     overlap: int = 0) -> Iterator[np.ndarray]:
    """Like ``iter_fasta_codes`` for bytes [start, stop) of an uncompressed FASTA, plus the ``overlap`` codes that
    follow ``stop`` in the same record: ranges that tile a file count every k-mer once (a k-mer belongs to the
    range its first base is in), so they can be counted in separate processes."""
    carry = b""
    with open(path, "rb") as fh:
        scan = _scan_at(fh, start)
        fh.seek(start)
        pos = start
        while pos < stop and (block := fh.read(min(chunk_bytes, stop - pos))):
            pos += len(block)
            codes = scan.sequence(block).translate(_TABLE, _WHITESPACE)
            if codes:
                buffer = carry + codes
                carry = buffer[-overlap:] if overlap else b""
                yield np.frombuffer(buffer, dtype=np.uint8)
        extra = b""
        while carry and scan.seen_header and not scan.in_header and len(extra) < overlap:
            block = fh.read(4096)
            if not block:
                break
            text = scan.sequence(block)
            cut = text.find(b">")
            extra += (text if cut < 0 else text[:cut]).translate(_TABLE, _WHITESPACE)
            if cut >= 0:
                break
        if extra:
            yield np.frombuffer(carry + extra[:overlap], dtype=np.uint8)


def _count_range(path: str, start: int, stop: int, k: int, chunk_bytes: int) -> np.ndarray:
    counts = np.zeros(4**k, dtype=np.int64)
    for codes in iter_range_codes(path, start, stop, chunk_bytes=chunk_bytes, overlap=k - 1):
        count_kmers_in(codes, k, counts)
    return counts


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def count_kmers_file(path: str | Path, k: int, *, workers: int | None = None, chunk_bytes: int = 1 << 18,
                     range_bytes: int = 4 << 20) -> np.ndarray:
    """Counts (4^k int64, in ``encode.kmer_strings`` order) of the forward k-mers of all records of a FASTA file.

    Equal to ``encode.count_kmers_in`` over each record's codes and to ``jellyfish count`` without ``-C``:
    lowercase counts as uppercase, a k-mer with an N or another code is skipped. The file is read in blocks of
    ``chunk_bytes``, so memory stays flat for any size. An uncompressed file of 16 or more ranges of
    ``range_bytes`` is counted by ``workers`` processes at once (default: the usable CPUs, this one included; the
    others start with 'forkserver', safe in a process with threads, so a script calling this needs the
    ``if __name__ == "__main__":`` guard). Gzip is streamed in this process, as is any file inside a daemonic
    process (a Dask worker), which may not start children.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such file; pass a FASTA file (plain or gzipped)")
    fmt = sniff_format(path)
    if fmt != "fasta":
        raise BadInputError(f"{path}: is {fmt.upper()}, not FASTA; k-mers of whole files are counted from FASTA")
    if k < 1:
        raise ValueError(f"k must be 1 or more, got {k}")
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    if gzipped:
        counts = np.zeros(4**k, dtype=np.int64)
        for codes in iter_fasta_codes(path, chunk_bytes=chunk_bytes, overlap=k - 1):
            count_kmers_in(codes, k, counts)
        return counts
    size = path.stat().st_size
    ranges = [(start, min(start + range_bytes, size)) for start in range(0, size, range_bytes)]
    helpers = min((workers or _usable_cpus()) - 1, len(ranges) - 1)
    if len(ranges) < _PARALLEL_MIN_RANGES or multiprocessing.current_process().daemon:
        helpers = 0
    return _count_ranges(str(path), ranges, k, chunk_bytes, helpers)


def _count_ranges(path: str, ranges: list[tuple[int, int]], k: int, chunk_bytes: int, helpers: int) -> np.ndarray:
    """Sum of the counts of ``ranges``: this process counts one range at a time while ``helpers`` processes count
    the others, each fed at most two ranges ahead, so the work balances whatever each process's speed."""
    counts = np.zeros(4**k, dtype=np.int64)
    if helpers < 1:
        for start, stop in ranges:
            counts += _count_range(path, start, stop, k, chunk_bytes)
        return counts
    todo = deque(ranges)
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(helpers, mp_context=multiprocessing.get_context(method)) as pool:
        pending: set = set()
        while todo or pending:
            while todo and len(pending) < 2 * helpers:
                pending.add(pool.submit(_count_range, path, *todo.popleft(), k, chunk_bytes))
            if todo:
                counts += _count_range(path, *todo.popleft(), k, chunk_bytes)
                done = {future for future in pending if future.done()}
            else:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                counts += future.result()
            pending -= done
    return counts
