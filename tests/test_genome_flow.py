"""The genome flow end to end under a Prefect test server, scoring long unlabelled sequences, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.cli import main
from flows.genome import genome
from flows.params import GenomeParams
from tasks.genome.synthetic import CLASSES, write_synthetic_fasta

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]
FAST = {"epochs": 3, "synthetic_n": 400}


def test_synthetic_run_trains_gates_and_reports(data_root: Path) -> None:
    result = genome(GenomeParams(folds=2, **FAST))
    record = json.loads((Path(result["dir"]) / "run.json").read_text())
    assert record["status"] == "completed"
    counts = record["counts"]
    assert counts == {"records_in": 404, "records_valid": 400, "records_quarantined": 4}
    assert [q["suite"] for q in record["quality"]] == ["genome_sequences", "genome_encoded"]
    assert set(record["baselines"]) == {"onehot_logreg", "kmer_counts_logreg"}
    assert set(record["metrics"]["per_class"]) == set(CLASSES)
    assert len(record["metrics"]["cv"]["macro_f1"]["folds"]) == 2
    run_dir = Path(result["dir"])
    quarantine = pd.read_parquet(run_dir / "quarantine.parquet")
    assert sorted(quarantine["record"]) == ["bad_chars", "empty1", "seq0", "short1"]
    import xarray as xr

    encoded = xr.open_zarr(run_dir / "encoded.zarr")
    assert encoded["codes"].shape == (400, 200) and encoded["counts"].shape == (400, 256)
    assert (run_dir / "regions.bed").exists() and (run_dir / "figures" / "confusion_matrix.png").exists()


def test_unlabelled_long_sequences_are_scored_window_by_window(tmp_path: Path, data_root: Path) -> None:
    genome(GenomeParams(**FAST))
    chromosome = tmp_path / "chr.fa"
    chromosome.write_text(">chrT\n" + "ACGTTGCA" * 130 + "\n>short\n" + "ACGT" * 30 + "\n")
    result = genome(GenomeParams(input=str(chromosome), stride=100, **FAST))
    assert result["status"] == "completed" and result["model"]["trained"] is False
    regions = pd.read_csv(Path(result["dir"]) / "regions.bed", sep="\t", header=None)
    chrom = regions[regions[0] == "chrT"]
    assert chrom[1].tolist() == list(range(0, 841, 100)) + [840]
    assert (chrom[2] - chrom[1] == 200).all()
    assert regions[regions[0] == "short"][[1, 2]].values.tolist() == [[0, 120]]


def test_the_2d_kmer_cnn_option(data_root: Path) -> None:
    result = genome(GenomeParams(model="kmer2d", train="always", **FAST))
    assert result["status"] == "completed"
    card = json.loads((Path(result["model"]["uri"]) / "card.json").read_text())
    assert card["architecture"]["class"] == "KmerCNN2D"


def test_tune_trains_with_the_best_trial_and_records_every_trial(data_root: Path) -> None:
    result = genome(GenomeParams(tune=2, train="always", **FAST))
    run_dir = Path(result["dir"])
    tuning = json.loads((run_dir / "training.json").read_text())["tuning"]
    assert len(tuning["trials"]) == 2 and tuning["metric"] == "validation macro F1"
    card = json.loads((Path(result["model"]["uri"]) / "card.json").read_text())
    assert card["tuning"]["chosen"] == tuning["chosen"]
    assert card["architecture"]["kwargs"]["channels"] == tuning["chosen"]["channels"]
    assert "Tuning (--tune)" in (run_dir / "report.html").read_text()


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (bytes(range(256)) * 8, "binary data"),
    (b"just some text\n", "not FASTA"),
])
def test_bad_files_exit_2(content: bytes, message: str, tmp_path: Path, data_root: Path, capsys) -> None:
    path = tmp_path / "in.fa"
    path.write_bytes(content)
    assert main(["run", "genome", "--input", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in.fa" in err[0] and message in err[0]


def test_unknown_ids_in_the_label_file_exit_2(tmp_path: Path, data_root: Path, capsys) -> None:
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=40, faults=False)["path"]
    (tmp_path / "labels.csv").write_text("id,label\nseq1,a\nnot_there,b\n")
    assert main(["run", "genome", "--input", fasta, "--labels", str(tmp_path / "labels.csv")]) == 2
    assert "not_there" in capsys.readouterr().err


def test_mostly_faulty_records_fail_the_gate_with_exit_3(tmp_path: Path, data_root: Path, capsys) -> None:
    lines = [f">ok{i} label={'ab'[i % 2]}\n{'ACGTTGCAAC' * 5}" for i in range(30)]
    lines += [f">bad{i} label=a\nACGTXXXX{'A' * 30}" for i in range(45)]
    (tmp_path / "s.fa").write_text("\n".join(lines) + "\n")
    assert main(["run", "genome", "--input", str(tmp_path / "s.fa"), "--epochs", "1"]) == 3
    err = capsys.readouterr().err
    assert "genome_sequences" in err and "quarantined_share" in err


def test_ambiguity_codes_instead_of_bases_fail_the_gate_with_exit_3(tmp_path: Path, data_root: Path,
                                                                     capsys) -> None:
    lines = [f">p{i} label={'ab'[i % 2]}\n{'MKVHDRSWMKVHDRSWBDHV' * 3}" for i in range(40)]
    (tmp_path / "s.fa").write_text("\n".join(lines) + "\n")
    assert main(["run", "genome", "--input", str(tmp_path / "s.fa"), "--epochs", "1"]) == 3
    assert "expect_column_values_to_be_between(ambiguous_fraction)" in capsys.readouterr().err


def test_the_gate_checks_the_runs_own_min_length(tmp_path: Path, data_root: Path) -> None:
    lines = [f">s{i} label={'ab'[i % 2]}\n{'ACGTTGCAACGGTACA'}" for i in range(40)]  # 16 nt
    (tmp_path / "s.fa").write_text("\n".join(lines) + "\n")
    record = genome(GenomeParams(input=str(tmp_path / "s.fa"), min_length=10, length=16, epochs=1))
    assert record["status"] == "completed" and record["counts"]["records_quarantined"] == 0
    assert record["quality"][0]["success"] and record["quality"][0]["parameters"] == {"min_length": 10}


def test_a_truncated_champion_stops_the_next_run_naming_the_file(data_root: Path) -> None:
    from models.registry import RegistryError

    first = genome(GenomeParams(**FAST))
    weights = Path(first["model"]["uri"]) / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(RegistryError, match=r"weights\.pt: model weights do not match .*tessera models promote"):
        genome(GenomeParams(train="never", **FAST))


def test_a_reused_champion_is_measured_only_on_records_it_never_trained_on(tmp_path: Path, data_root: Path) -> None:
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=300, faults=False)["path"]
    first = genome(GenomeParams(input=fasta, epochs=2))
    first_test = set(pd.read_parquet(Path(first["dir"]) / "evaluation.parquet")["id"])
    # another split of the same records: most of its test set was the champion's training data
    again = genome(GenomeParams(input=fasta, epochs=2, seed=1))
    assert again["model"]["trained"] is False
    measured = set(pd.read_parquet(Path(again["dir"]) / "evaluation.parquet")["id"])
    assert measured and measured <= first_test and again["metrics"]["test_records"] == len(measured)


def test_a_challenger_that_cannot_be_compared_honestly_is_kept_out_and_the_champion_scores(tmp_path: Path,
                                                                                          data_root: Path) -> None:
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=300, faults=False)["path"]
    genome(GenomeParams(input=fasta, epochs=2))
    challenger = genome(GenomeParams(input=fasta, epochs=1, train="always"))
    model = challenger["model"]
    assert (model["version"], model["promoted"], model["scored_with"]) == ("v2", False, "v1")
    assert model["comparison"]["units"] == 0 and "cannot be compared honestly" in model["comparison"]["decision"]
    champion = genome(GenomeParams(input=fasta, train="never"))
    ours, theirs = (pd.read_parquet(Path(r["dir"]) / "predictions.parquet") for r in (challenger, champion))
    pd.testing.assert_frame_equal(ours, theirs)  # the outputs come from v1, not from the run's own model
