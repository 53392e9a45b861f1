"""The hybrid text model on tiny posts built in the test: its TF-IDF is sklearn's, and it round-trips by its card."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from models.architectures import build
from models.card import Architecture, ModelCard
from models.sentiment import HybridTextCNN
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
    model, history = training.fit_hybrid(ids, LABELS, train, val, vocabulary, 2, cnn_tokens=3, epochs=2, seed=0)
    return model, history, vocabulary, ids


def test_the_linear_part_reads_the_same_tfidf_as_sklearn() -> None:
    vocabulary = features.build_vocabulary(POSTS, min_count=1)
    ids = features.token_ids(POSTS, vocabulary, 8)
    model = HybridTextCNN(len(vocabulary) + 2, 2, 0)
    training.fit_linear_part(model, ids[:12], LABELS[:12], vocabulary, subwords=True, seed=0)
    ours = training.tfidf_design(model, ids[:12]).toarray() * np.sqrt(2)  # two blocks, each of norm 1/sqrt(2)
    names = {v: k for k, v in vocabulary.items()}
    n_words = model.vocab_size + model.bigrams.numel()
    label = [names.get(i, "") for i in range(model.vocab_size)] + [
        f"{names[k // model.vocab_size]}_{names[k % model.vocab_size]}" for k in model.bigrams.numpy()]
    words = TfidfVectorizer(analyzer=grams, sublinear_tf=True).fit(POSTS[:12])
    kept = [i for i, name in enumerate(label) if name in words.vocabulary_]
    assert len(kept) == len(words.vocabulary_) and not np.delete(ours[:, :n_words], kept, axis=1).any()
    np.testing.assert_allclose(ours[:, kept], words.transform(POSTS[:12]).toarray()[
        :, [words.vocabulary_[label[i]] for i in kept]], rtol=1e-5, atol=1e-6)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
    theirs = chars.fit_transform([" ".join(post) for post in POSTS[:12]]).toarray()
    np.testing.assert_allclose(ours[:, n_words:], theirs, rtol=1e-5, atol=1e-6)


def test_beta_is_chosen_on_validation_and_the_model_rebuilds_from_its_card() -> None:
    model, history, vocabulary, ids = fitted()
    assert history["subwords"] in (True, False) and set(history["linear_val_macro_f1"]) == {
        "words", "words and characters"}
    assert history["beta"] in training.BETAS and set(history["beta_val"]) == {str(b) for b in training.BETAS}
    card = ModelCard(architecture=Architecture(name="HybridTextCNN", kwargs={
        "vocab_size": len(vocabulary) + 2, "n_classes": 2, "n_bigrams": model.bigrams.numel(),
        "n_subwords": len(model.idf) - model.vocab_size - model.bigrams.numel(),
        "subword_slots": model.subwords.shape[1], "cnn_tokens": 3}))
    again = build(card)
    again.load_state_dict(model.state_dict())
    again.eval()
    x = torch.as_tensor(ids)
    torch.testing.assert_close(again(x), model(x))
    assert float(again.beta) == history["beta"]


def test_token_shares_of_the_linear_part_add_up_to_its_logit() -> None:
    model, _, _, ids = fitted()
    x, target = torch.as_tensor(ids[:6]), torch.tensor([0, 1, 0, 1, 0, 1])
    shares = model.linear_attributions(x, target).sum(dim=1)
    logits = model.linear_logits(x) - model.bias
    torch.testing.assert_close(shares, logits.gather(1, target[:, None]).squeeze(1), rtol=1e-4, atol=1e-5)


def test_the_cnn_part_reads_its_first_tokens_and_the_linear_part_the_whole_post() -> None:
    model, _, vocabulary, _ = fitted()
    post = ["good", "plot", "bad", "acting"]
    ids = torch.as_tensor(features.token_ids([post, post[:3] + ["dull"]], vocabulary, 4))
    with torch.no_grad():
        torch.testing.assert_close(model.cnn_logits(ids)[0], model.cnn_logits(ids)[1])
        assert not torch.allclose(model.linear_logits(ids)[0], model.linear_logits(ids)[1])
    card = ModelCard(architecture=Architecture(name="HybridTextCNN", kwargs={"cnn_tokens": 3}),
                     parameters={"max_tokens": 3})
    assert training.model_ids(POSTS + [post * 5], vocabulary, card).shape == (len(POSTS) + 1, 20)
    before = ModelCard(architecture=Architecture(name="HybridTextCNN", kwargs={}), parameters={"max_tokens": 3})
    assert training.model_ids(POSTS, vocabulary, before).shape == (len(POSTS), 3)
