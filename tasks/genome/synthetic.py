"""Synthetic labelled regulatory regions: background DNA with class-specific motifs planted in it.

``promoter`` carries the -35 (TTGACA) and -10 (TATAAT) boxes, ``enhancer`` copies of an NF-kB site,
``splice_site`` a donor consensus exactly at the centre (a class defined by position), ``background`` none.
Lengths vary, some records hold N runs or lowercase soft-masked stretches, and a handful of faulty records
(empty, non-IUPAC characters, too short, a duplicate id) exercise the quarantine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ["background", "promoter", "enhancer", "splice_site"]
MOTIFS = {"promoter": ("TTGACA", "TATAAT"), "enhancer": ("GGGACTTTCC",), "splice_site": ("CAGGTAAGT",)}


def _mutate(motif: str, rng: np.random.Generator, rate: float = 0.08) -> str:
    return "".join(rng.choice(list("ACGT")) if rng.random() < rate else base for base in motif)


def synthetic_sequence(label: str, rng: np.random.Generator, *, min_length: int = 150, max_length: int = 250) -> str:
    length = int(rng.integers(min_length, max_length + 1))
    seq = list(rng.choice(list("ACGT"), size=length, p=[0.29, 0.21, 0.21, 0.29]))

    def plant(motif: str, at: int) -> None:
        seq[at:at + len(motif)] = list(_mutate(motif, rng))

    if label == "promoter":
        tss = int(rng.integers(60, length - 20))
        plant(MOTIFS["promoter"][0], tss - 35)
        plant(MOTIFS["promoter"][1], tss - 12)
    elif label == "enhancer":
        for _ in range(int(rng.integers(2, 4))):
            plant(MOTIFS["enhancer"][0], int(rng.integers(0, length - 10)))
    elif label == "splice_site":
        plant(MOTIFS["splice_site"][0], length // 2 - 3)
    if rng.random() < 0.05:
        start = int(rng.integers(0, length - 8))
        seq[start:start + 6] = list("NNNNNN")
    text = "".join(seq)
    if rng.random() < 0.3:
        start = int(rng.integers(0, length - 40))
        text = text[:start] + text[start:start + 30].lower() + text[start + 30:]
    return text


def write_synthetic_fasta(path: str | Path, *, n: int = 2000, seed: int = 0, faults: bool = True) -> dict:
    """Write ``n`` labelled records (``>seq<i> label=<class>``) to a FASTA file."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        lines.append(f">seq{i} label={label}\n{synthetic_sequence(label, rng)}")
    if faults:
        lines += [">empty1 label=background\n", ">bad_chars label=promoter\nACGTXXACGT*ACGT12ACGTACGTACGT",
                  ">short1 label=enhancer\nACGTAC", f">seq0 label=background\n{synthetic_sequence('background', rng)}"]
    path.write_text("\n".join(lines) + "\n")
    return {"path": str(path), "classes": CLASSES, "records": n + (4 if faults else 0)}


def example(folder: Path) -> dict:
    """A FASTA of 300 labelled regulatory regions (``label=`` in the headers) with a few faulty records; the
    parameters that run on it."""
    return {"input": write_synthetic_fasta(Path(folder) / "sequences.fasta", n=300)["path"]}
