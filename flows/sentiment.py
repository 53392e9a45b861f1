"""Sentiment: posts in, cleaned and gated, a hybrid TF-IDF + text CNN against TF-IDF + logistic regression."""

from __future__ import annotations

from prefect import flow

from flows.common import gate, pipeline_run
from tasks.sentiment.report import publish_report
from tasks.sentiment.tasks import check_posts, clean_posts, ingest_posts, score_posts, train_text_classifier
from tasks.store import data_root


@flow(name="sentiment")
def sentiment(input: str | None = None, text_column: str | None = None, label_column: str | None = None,
              encoding: str = "utf-8", max_chars: int = 5000, clean_options: dict | None = None,
              train: str = "auto", model_name: str = "sentiment", max_tokens: int | None = None, epochs: int = 15,
              synthetic_n: int = 3000, seed: int = 0, calibrate: str | None = None, mc_samples: int = 0,
              folds: int = 0, tune: int = 0, out: str | None = None, dask_address: str | None = None,
              run_id: str | None = None) -> dict:
    """Ingest, check and gate, clean in Dask and gate, train or load the champion, score, publish."""
    with pipeline_run("sentiment", dict(locals()), publish=publish_report, out=out, run_id=run_id,
                      dask_address=dask_address) as run:
        run_dir, root = str(run.dir), str(data_root(out))
        posts = run.stage("ingest", ingest_posts, run_dir, input=input, text_column=text_column,
                          label_column=label_column, encoding=encoding, synthetic_n=synthetic_n, seed=seed)
        checked = run.stage("check", check_posts, posts["output"], run_dir, max_chars=max_chars)
        run.add_counts(checked["records_in"], checked["records_valid"], checked["records_quarantined"],
                       duplicates_dropped=checked["duplicates"],
                       undecodable_bytes_replaced=posts["undecodable_replaced"],
                       mojibake_repaired=posts["mojibake_repaired"])
        run.inputs.update(posts["read"])
        gate(run, checked["profile"], "sentiment_posts", "posts", max_chars=max_chars)
        cleaned = run.stage("clean", clean_posts, checked["output"], run_dir, options=clean_options)
        gate(run, cleaned["profile"], "sentiment_clean", "clean")
        trained = run.stage("train", train_text_classifier, cleaned["output"], run_dir, root, mode=train,
                            model_name=model_name, max_tokens=max_tokens, epochs=epochs, seed=seed,
                            calibrate=calibrate, mc_samples=mc_samples, folds=folds, tune=tune)
        run.model, run.metrics, run.baselines = trained["model"], trained["metrics"], trained["baselines"]
        if trained.get("rare_classes"):
            run.inputs["rare_classes"] = trained["rare_classes"]
        run.stage("score", score_posts, cleaned["output"], trained["output"], run_dir, root, mc_samples=mc_samples)
    return run.to_dict()
