"""Genome: FASTA/FASTQ in, gated k-mer encodings, a sequence CNN against logistic-regression baselines."""

from __future__ import annotations

from prefect import flow

from flows.common import gate, models_for, pipeline_run
from flows.params import GenomeParams
from tasks.genome.report import publish_report
from tasks.genome.tasks import (
    check_sequences,
    encode_sequences,
    ingest_sequences,
    profile_encodings,
    score_sequences,
    train_sequence_classifier,
)


@flow(name="genome")
def genome(params: GenomeParams = GenomeParams()) -> dict:
    """Ingest, check and gate, encode in Dask and gate, train or load the champion, score, publish."""
    with pipeline_run("genome", params, publish=publish_report) as run:
        run_dir, models = str(run.dir), models_for(params, run)
        records = ingest_sequences(run_dir, input=params.input, labels=params.labels,
                                   label_from_filename=params.label_from_filename, synthetic_n=params.synthetic_n,
                                   seed=params.seed)
        checked = check_sequences(records.output, run_dir, min_length=params.min_length)
        run.add_counts(checked.records_in, checked.records_valid, checked.records_quarantined)
        run.inputs.update(records.read, sequence_length=checked.lengths, encoded_length=params.length)
        gate(run, checked.profile, "genome_sequences", "sequences", min_length=params.min_length)
        encoded = encode_sequences(checked.output, run_dir, length=params.length, k=params.k,
                                   padding=params.padding)
        profile = profile_encodings(encoded.output, run_dir)
        gate(run, profile.output, "genome_encoded", "encoded")
        trained = train_sequence_classifier(encoded.output, run_dir, models.root, mode=models.mode,
                                            model_name=models.name, architecture=params.model,
                                            encoding=params.encoding,
                                            epochs=params.epochs, folds=params.folds, augment_rc=params.augment_rc,
                                            seed=params.seed, calibrate=params.calibrate, mc_samples=params.mc_samples,
                                            tune=params.tune)
        run.record_training(trained)
        score_sequences(checked.output, trained.output, run_dir, models.root, stride=params.stride,
                        mc_samples=params.mc_samples)
    return run.to_dict()
