"""The hybrid text model on tiny posts built in the test: its TF-IDF is sklearn's, and it round-trips by its card."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from models.architectures import build
from models.card import Architecture, ModelCard
from tasks.sentiment import features, training

POSTS = [["good", "good", "good", "film"], ["bad", "film", "bad"], ["good", "plot", "bad", "acting"],
         ["dull", "plot"], ["great", "acting", "good", "film"], ["bad", "bad", "dull"]] * 4
LABELS = np.array([1, 0, 1, 0, 1, 0] * 4)


def grams(tokens: list[str]) -> list[str]:
    return tokens + [f"{a}_{b}" for a, b in zip(tokens, tokens[1:], strict=False)]


def fitted() -> tuple:
    vocabulary = features.build_vocabulary(POSTS, min_count=1)
    ids = features.token_ids(POSTS, vocabulary, 8)
    train, val = np.arange(12), np.arange(12, 24)
    model, history = training.fit_hybrid(ids, LABELS, train, val, len(vocabulary) + 2, 2, epochs=2, seed=0)
    return model, history, vocabulary, ids


def test_the_linear_part_reads_the_same_tfidf_as_sklearn() -> None:
    model, _, vocabulary, ids = fitted()
    ours = training.tfidf_design(model, ids[:12]).toarray()
    sk = TfidfVectorizer(analyzer=grams, sublinear_tf=True).fit(POSTS[:12])
    theirs = sk.transform(POSTS[:12]).toarray()
    names = {v: k for k, v in vocabulary.items()}
    bigrams = model.bigrams.numpy()
    label = [names.get(i, "") for i in range(model.vocab_size)] + [
        f"{names[k // model.vocab_size]}_{names[k % model.vocab_size]}" for k in bigrams]
    columns = [sk.vocabulary_[name] for name in label if name in sk.vocabulary_]
    kept = [i for i, name in enumerate(label) if name in sk.vocabulary_]
    np.testing.assert_allclose(ours[:, kept], theirs[:, columns], rtol=1e-5, atol=1e-6)
    assert len(kept) == theirs.shape[1] and not ours[:, [i for i in range(len(label)) if i not in kept]].any()


def test_beta_is_chosen_on_validation_and_the_model_rebuilds_from_its_card() -> None:
    model, history, vocabulary, ids = fitted()
    assert history["beta"] in training.BETAS and set(history["beta_val_macro_f1"]) == {str(b) for b in training.BETAS}
    card = ModelCard(architecture=Architecture(name="HybridTextCNN", kwargs={
        "vocab_size": len(vocabulary) + 2, "n_classes": 2, "n_bigrams": model.bigrams.numel()}))
    again = build(card)
    again.load_state_dict(model.state_dict())
    again.eval()
    x = torch.as_tensor(ids)
    torch.testing.assert_close(again(x), model(x))
    assert float(again.beta) == history["beta"]
