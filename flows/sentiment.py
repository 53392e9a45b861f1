"""Sentiment: posts in, cleaned and gated, a hybrid TF-IDF + text CNN against TF-IDF + logistic regression."""

from __future__ import annotations

from prefect import flow

from flows.common import gate, models_for, pipeline_run
from flows.params import SentimentParams
from tasks.sentiment.report import publish_report
from tasks.sentiment.tasks import check_posts, clean_posts, ingest_posts, score_posts, train_text_classifier


@flow(name="sentiment")
def sentiment(params: SentimentParams = SentimentParams()) -> dict:
    """Ingest, check and gate, clean in Dask and gate, train or load the champion, score, publish."""
    with pipeline_run("sentiment", params, publish=publish_report) as run:
        run_dir, models = str(run.dir), models_for(params, run)
        posts = ingest_posts(run_dir, input=params.input, text_column=params.text_column,
                             label_column=params.label_column, encoding=params.encoding, synthetic_n=params.synthetic_n,
                             seed=params.seed)
        checked = check_posts(posts.output, run_dir, max_chars=params.max_chars)
        run.add_counts(checked.records_in, checked.records_valid, checked.records_quarantined,
                       duplicates_dropped=checked.duplicates,
                       undecodable_bytes_replaced=posts.undecodable_replaced,
                       mojibake_repaired=posts.mojibake_repaired)
        run.inputs.update(posts.read)
        gate(run, checked.profile, "sentiment_posts", "posts", max_chars=params.max_chars)
        cleaned = clean_posts(checked.output, run_dir, options=params.clean_options)
        gate(run, cleaned.profile, "sentiment_clean", "clean")
        trained = train_text_classifier(cleaned.output, run_dir, models.root, mode=models.mode,
                                        model_name=models.name, max_tokens=params.max_tokens,
                                        epochs=params.epochs,
                                        seed=params.seed, calibrate=params.calibrate, mc_samples=params.mc_samples,
                                        folds=params.folds, tune=params.tune, clean_options=params.clean_options)
        run.record_training(trained)
        score_posts(cleaned.output, trained.output, run_dir, models.root,
                    mc_samples=params.mc_samples)
    return run.to_dict()
