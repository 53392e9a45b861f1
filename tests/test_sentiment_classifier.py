"""The sentiment lifecycle's spec and helpers on a few hundred tiny posts: a vocabulary from the training posts
only, champions it may reuse, and the model and its TF-IDF baseline measured on the same test posts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.card import Architecture, ModelCard
from models.lifecycle import run_lifecycle, unit_keys
from models.registry import ModelRegistry
from tasks import splits
from tasks.sentiment import classifier, clean
from tasks.sentiment.files import SentimentFiles
from tasks.sentiment.synthetic import synthetic_posts


@pytest.fixture(scope="module")
def posts() -> pd.DataFrame:
    table = synthetic_posts(300, seed=1, faults=False).drop_duplicates("text", ignore_index=True)
    return table.join(clean.clean_posts(table["text"]))


def spec_for(table: pd.DataFrame, registry: ModelRegistry, *, labelled: bool = True, epochs: int = 3):
    class_names = sorted(table["label"].unique()) if labelled else None
    y = np.searchsorted(sorted(table["label"].unique()), table["label"]).astype(np.int64)
    split = splits.stratified_split(y, seed=0)
    idx = {name: np.flatnonzero(split == i) for name, i in splits.SPLITS.items()}
    spec = classifier.SentimentSpec(table["tokens"].map(list).tolist(), y, idx, class_names, registry,
                                    max_tokens=None, epochs=epochs, calibrate=None, mc_samples=0, seed=0,
                                    fingerprint=classifier.fingerprint(table))
    return spec, split, idx


class TestSentimentSpec:
    def test_a_champion_scores_only_the_same_labels_and_cleaning(self, posts, tmp_path: Path) -> None:
        on = clean.CleanOptions().as_dict()
        card = ModelCard(architecture=Architecture(name="HybridTextCNN", kwargs={}),
                         class_names=["negative", "neutral", "positive"], parameters={"clean": on})
        spec, _, _ = spec_for(posts, ModelRegistry(tmp_path))
        spec.clean = on
        assert spec.mismatch(card) is None
        other = card.model_copy(update={"class_names": ["neg", "pos"]})
        assert spec.mismatch(other).startswith("it predicts ['neg', 'pos'], these posts are labelled")
        assert spec_for(posts, ModelRegistry(tmp_path), labelled=False)[0].mismatch(other) is None
        unlemmatized = card.model_copy(update={"parameters": {"clean": on | {"lemmatize": False}}})
        assert spec.mismatch(unlemmatized).endswith("run with --no lemmatize")

    def test_the_vocabulary_comes_from_the_training_posts_only(self, posts, tmp_path: Path) -> None:
        spec, _, idx = spec_for(posts, ModelRegistry(tmp_path), epochs=1)
        fitted = spec.fit()
        vocabulary = json.loads(fitted.extra_files["vocabulary.json"])
        seen = {token for i in idx["train"] for token in spec.tokens[i]}
        assert set(vocabulary) == seen
        assert fitted.card.data == {"posts": len(posts), "fingerprint": classifier.fingerprint(posts)}
        assert fitted.card.architecture.kwargs["vocab_size"] == len(vocabulary) + 2

    def test_a_champion_scores_with_the_vocabulary_kept_beside_its_weights(self, posts, tmp_path: Path) -> None:
        registry = ModelRegistry(tmp_path)
        spec, split, idx = spec_for(posts, registry)
        keys = unit_keys(posts["text"])
        first = run_lifecycle(spec, registry, "sentiment", mode="always", keys=keys, split=split, no_champion="-")
        reused = run_lifecycle(spec, registry, "sentiment", mode="never", keys=keys, split=split, no_champion="-")
        assert reused.trained is None and reused.scoring.version == first.trained.version
        ids, trained_ids = spec.ids(reused.scoring, idx["test"]), first.fitted.outputs["x_test"]
        assert [row[row > 0].tolist() for row in ids] == [row[row > 0].tolist() for row in trained_ids]
        assert spec.score(reused.model, reused.scoring, idx["test"]) > 0.6


def test_the_fingerprint_follows_the_cleaned_text_and_the_labels(posts) -> None:
    relabelled = posts.assign(label=posts["label"].where(posts.index != 0, "other"))
    assert classifier.fingerprint(posts) == classifier.fingerprint(posts.copy())
    assert classifier.fingerprint(relabelled) != classifier.fingerprint(posts)


def test_evaluate_measures_the_model_and_the_baseline_on_the_same_posts(posts, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    spec, split, idx = spec_for(posts, registry)
    keys = unit_keys(posts["text"])
    decision = run_lifecycle(spec, registry, "sentiment", mode="auto", keys=keys, split=split, no_champion="-")
    metrics, baselines = classifier.evaluate(decision, spec, registry, keys, posts, idx, str(tmp_path), seed=0)
    assert metrics["test_records"] == len(idx["test"]) and list(baselines) == ["tfidf_logreg"]
    support = {name: c["support"] for name, c in metrics["per_class"].items()}
    assert {name: c["support"] for name, c in baselines["tfidf_logreg"]["per_class"].items()} == support
    evaluation = pd.read_parquet(SentimentFiles(str(tmp_path)).evaluation)
    assert evaluation["id"].tolist() == posts["id"].iloc[idx["test"]].tolist()


def test_cross_validation_fits_a_vocabulary_and_a_model_per_fold(posts) -> None:
    spec, _, idx = spec_for(posts, None)
    cv = classifier.cross_validate(spec.tokens, spec.y, idx, 3, spec.class_names, max_tokens=None, epochs=1, seed=0)
    assert len(cv["macro_f1"]["folds"]) == 3 and 0 <= cv["macro_f1"]["mean"] <= 1
