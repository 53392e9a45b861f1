"""Vocabulary, token ids and TF-IDF built from training tokens only."""

from __future__ import annotations

from tasks.sentiment import features


class TestFeatures:
    def test_vocabulary_from_training_tokens_only(self) -> None:
        vocab = features.build_vocabulary([["good", "good", "film"], ["good", "plot"]], min_count=2)
        assert vocab == {"good": 2}
        ids = features.token_ids([["good", "film", "good"], []], vocab, 4)
        assert ids.tolist() == [[2, features.UNKNOWN, 2, 0], [0, 0, 0, 0]]

    def test_tfidf_ignores_tokens_unseen_in_training(self) -> None:
        vectorizer = features.fit_tfidf([["good", "film"], ["bad", "film"]])
        matrix = features.tfidf_matrix(vectorizer, [["unseen", "words"]])
        assert matrix.nnz == 0
