"""The genome networks on tiny sequences built in the test: the default CNN learns where a motif sits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.genome import PosCNN1D, SeqCNN1D
from models.train import TrainConfig, predict_proba, train_model
from tasks.genome import encode, training


def motif_at(n: int, position: int, seed: int, length: int = 120) -> np.ndarray:
    """Random sequences holding TATAAT at ``position``, as base codes."""
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]
    seqs = [s[:position] + "TATAAT" + s[position + 6:] for s in seqs]
    return encode.base_codes(seqs, length, padding="right")


def positional_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 has the motif before the middle, class 1 after it, both far from the ends (so the zero padding of
    the convolutions does not give the place away) and both at even places (so the pooling phase does not
    either): the same k-mers in other places."""
    codes = np.concatenate([motif_at(n, 36, seed), motif_at(n, 80, seed + 1)])
    return training.model_input(codes, encoding="onehot", k=4), np.repeat([0, 1], n)


def accuracy(model: torch.nn.Module) -> float:
    x, y = positional_task(100, seed=10)
    train_model(model, positional_task(200, seed=0), positional_task(50, seed=5),
                config=TrainConfig(epochs=15, batch_size=32, lr=3e-3, seed=0, progress=False))
    return float((predict_proba(model, x).argmax(1) == y).mean())


def test_the_position_aware_cnn_tells_where_a_motif_sits() -> None:
    torch.manual_seed(0)
    assert accuracy(PosCNN1D(2, length=120)) > 0.95


def test_global_pooling_alone_cannot_tell_where_a_motif_sits() -> None:
    torch.manual_seed(0)
    assert accuracy(SeqCNN1D(2, encoding="onehot")) < 0.8


@pytest.mark.parametrize("encoding, length", [("onehot", 120), ("kmer", 117)])
def test_one_output_per_record_for_either_encoding(encoding: str, length: int) -> None:
    codes = motif_at(3, 8, seed=0)
    x = torch.as_tensor(training.model_input(codes, encoding=encoding, k=4))
    model = PosCNN1D(3, length=length, encoding=encoding, vocab_size=encode.vocabulary_size(4)).eval()
    assert model(x).shape == (3, 3)


def test_the_wide_part_alone_is_the_positional_one_hot_baseline() -> None:
    codes = np.concatenate([motif_at(40, 10, seed=0), motif_at(40, 60, seed=1)])
    y = np.repeat([0, 1], 40)
    model = PosCNN1D(2, length=120, wide=True).eval()
    training.fit_wide_part(model, codes, y, seed=0)
    model.mix.fill_(0.0)
    baseline = training.fit_logreg(training.onehot_features(codes), y, seed=0)
    np.testing.assert_allclose(predict_proba(model, training.model_input(codes, encoding="onehot", k=4)),
                               baseline.predict_proba(training.onehot_features(codes)), atol=1e-5)


def test_a_wide_part_needs_one_hot_input() -> None:
    with pytest.raises(ValueError, match="one-hot"):
        PosCNN1D(2, length=117, encoding="kmer", wide=True)
