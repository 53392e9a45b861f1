"""The files of a genome run folder."""

from __future__ import annotations

from tasks.runs import RunFiles, run_file


class GenomeFiles(RunFiles):
    records = run_file("records.parquet", "the sequences as read, with their labels")
    sequences = run_file("sequences.parquet", "the checked sequences the run uses")
    sequence_profile = run_file("sequence_profile.parquet", "one row per sequence, for the gate")
    encoded = run_file("encoded.zarr", "the one-hot and k-mer encodings")
    encoded_profile = run_file("encoded_profile.parquet", "a summary of the encodings, for the gate")
