"""Genome: FASTA/FASTQ in, gated k-mer encodings, a sequence CNN against logistic-regression baselines."""

from __future__ import annotations

from prefect import flow

from flows.common import gate, pipeline_run
from tasks.genome.report import publish_report
from tasks.genome.tasks import (
    check_sequences,
    encode_sequences,
    ingest_sequences,
    profile_encodings,
    score_sequences,
    train_sequence_classifier,
)
from tasks.store import data_root


@flow(name="genome")
def genome(input: str | list[str] | None = None, labels: str | None = None, label_from_filename: bool = False,
           length: int = 200, k: int = 4, padding: str = "centre", model: str = "poscnn", encoding: str = "onehot",
           train: str = "auto", model_name: str = "genome", epochs: int = 20, folds: int = 0,
           augment_rc: bool = False, min_length: int = 20, stride: int | None = None, synthetic_n: int = 2000,
           seed: int = 0, calibrate: str | None = None, mc_samples: int = 0, tune: int = 0, out: str | None = None,
           dask_address: str | None = None, run_id: str | None = None) -> dict:
    """Ingest, check and gate, encode in Dask and gate, train or load the champion, score, publish."""
    with pipeline_run("genome", dict(locals()), publish=publish_report, out=out, run_id=run_id,
                      dask_address=dask_address) as run:
        run_dir, root = str(run.dir), str(data_root(out))
        records = run.stage("ingest", ingest_sequences, run_dir, input=input, labels=labels,
                            label_from_filename=label_from_filename, synthetic_n=synthetic_n, seed=seed)
        checked = run.stage("check", check_sequences, records["output"], run_dir, min_length=min_length)
        run.add_counts(checked["records_in"], checked["records_valid"], checked["records_quarantined"])
        run.inputs.update(records["read"], sequence_length=checked["lengths"], encoded_length=length)
        gate(run, checked["profile"], "genome_sequences", "sequences", min_length=min_length)
        encoded = run.stage("encode", encode_sequences, checked["output"], run_dir, length=length, k=k,
                            padding=padding)
        profile = run.stage("profile_encoded", profile_encodings, encoded["output"], run_dir)
        gate(run, profile["output"], "genome_encoded", "encoded")
        trained = run.stage("train", train_sequence_classifier, encoded["output"], run_dir, root, mode=train,
                            model_name=model_name, architecture=model, encoding=encoding, epochs=epochs,
                            folds=folds, augment_rc=augment_rc, seed=seed, calibrate=calibrate,
                            mc_samples=mc_samples, tune=tune)
        run.model, run.metrics, run.baselines = trained["model"], trained["metrics"], trained["baselines"]
        if trained.get("rare_classes"):
            run.inputs["rare_classes"] = trained["rare_classes"]
        run.stage("score", score_sequences, checked["output"], trained["output"], run_dir, root, stride=stride,
                  mc_samples=mc_samples)
    return run.to_dict()
