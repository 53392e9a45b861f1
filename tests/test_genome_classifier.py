"""The genome lifecycle's spec and helpers on a few dozen tiny records: a motif the CNN must find, champions it
may reuse, and the evaluation and baselines measured on the same test records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from models.card import Architecture, ModelCard
from models.lifecycle import run_lifecycle, unit_keys
from models.registry import ModelRegistry
from tasks import splits
from tasks.genome import classifier, encode
from tasks.genome.files import GenomeFiles

K, LENGTH = 3, 40
PARAMS = {"k": K, "length": LENGTH, "padding": "right", "encoding": "onehot", "epochs": 2, "augment_rc": False,
          "tune": 0}


def records(n: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random bases, class 1 with TATAAT planted at a random place: codes, k-mer counts and labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    sequences = []
    for label in y:
        bases = list(rng.choice(list("ACGT"), LENGTH))
        if label:
            at = rng.integers(0, LENGTH - 6)
            bases[at:at + 6] = "TATAAT"
        sequences.append("".join(bases))
    codes = encode.base_codes(sequences, LENGTH)
    return codes, encode.kmer_counts(encode.kmer_tokens(codes, K), K), y.astype(np.int64)


def spec_for(codes, counts, y, *, class_names=("background", "promoter"), architecture="poscnn", **params):
    split = splits.stratified_split(y, seed=0)
    idx = {name: np.flatnonzero(split == i) for name, i in splits.SPLITS.items()}
    spec = classifier.GenomeSpec(codes, counts, y, idx, list(class_names) if class_names else None,
                                 params=PARAMS | params, architecture=architecture, calibrate=None, mc_samples=0,
                                 seed=0)
    return spec, split, idx


class TestModelInputs:
    def test_counts_for_the_kmer_cnn_and_one_hot_for_the_positional_one(self) -> None:
        codes, counts, _ = records(4)
        as_counts = classifier.model_inputs(codes, counts, Architecture(name="KmerCNN2D", kwargs={}), K)
        assert as_counts.dtype == np.float32 and np.array_equal(as_counts, counts)
        onehot = classifier.model_inputs(codes, counts, Architecture(name="PosCNN1D", kwargs={"encoding": "onehot"}), K)
        assert onehot.shape[:2] == (4, LENGTH) and np.allclose(onehot.sum(axis=-1), 1)


class TestGenomeSpec:
    def card(self, **parameters) -> ModelCard:
        return ModelCard(architecture=Architecture(name="PosCNN1D", kwargs={}), class_names=["background", "promoter"],
                         parameters={"k": K, "length": LENGTH} | parameters)

    def test_a_champion_scores_only_the_same_classes_k_and_length(self) -> None:
        spec, _, _ = spec_for(*records(8))
        assert spec.mismatch(self.card()) is None
        assert spec.mismatch(self.card(k=4)) == ("it reads sequences encoded with --k 4 --length 40 (this run: --k 3 "
                                                 "--length 40); run with --k 4 --length 40")
        assert spec.mismatch(self.card(length=60)).endswith("run with --k 3 --length 60")
        assert spec.mismatch(self.card().model_copy(update={"class_names": ["a", "b"]})) == (
            "it predicts ['a', 'b'], these records are labelled ['background', 'promoter']")

    def test_any_champion_scores_unlabelled_records(self) -> None:
        spec, _, _ = spec_for(*records(8), class_names=None)
        assert spec.mismatch(self.card(k=5)) is None

    def test_fit_finds_a_motif_anywhere_and_describes_itself_in_its_card(self) -> None:
        codes, counts, y = records(240)
        spec, _, idx = spec_for(codes, counts, y, epochs=10, architecture="cnn1d")
        fitted = spec.fit()
        card = fitted.card
        assert card.architecture.name == "SeqCNN1D" and card.parameters["encoding"] == "onehot"
        assert card.data == {"records": len(y), "fingerprint": classifier._fingerprint(codes, y)}
        assert len(fitted.outputs["evaluation"]) == len(idx["test"])
        assert spec.score(fitted.model, card, idx["test"]) > 0.8

    def test_the_fingerprint_changes_with_a_label(self) -> None:
        codes, _, y = records(8)
        flipped = y.copy()
        flipped[0] = 1 - flipped[0]
        assert classifier._fingerprint(codes, y) != classifier._fingerprint(codes, flipped)


class TestEvaluate:
    def test_the_model_and_both_baselines_on_the_same_test_records(self, tmp_path: Path) -> None:
        codes, counts, y = records()
        spec, split, idx = spec_for(codes, counts, y, epochs=4)
        registry, keys = ModelRegistry(tmp_path / "models"), unit_keys(row.tobytes() for row in codes)
        decision = run_lifecycle(spec, registry, "genome", mode="auto", keys=keys, split=split, no_champion="none")
        ds = xr.Dataset({"id": ("record", [f"r{i}" for i in range(len(y))]), "length": ("record", [LENGTH] * len(y))})
        metrics, baselines = classifier.evaluate(decision, spec, registry, keys, codes, counts, y, idx, ds,
                                                 str(tmp_path), seed=0)
        assert metrics["test_records"] == len(idx["test"])
        assert set(baselines) == {"onehot_logreg", "kmer_counts_logreg"}
        support = {name: c["support"] for name, c in metrics["per_class"].items()}
        assert all({name: c["support"] for name, c in b["per_class"].items()} == support for b in baselines.values())
        evaluation = pd.read_parquet(GenomeFiles(str(tmp_path)).evaluation)
        assert evaluation["id"].tolist() == [f"r{i}" for i in idx["test"]]
        assert Path(GenomeFiles(str(tmp_path)).embeddings).exists()


def test_cross_validation_fits_one_model_per_fold() -> None:
    codes, counts, y = records()
    _, _, idx = spec_for(codes, counts, y)
    cv = classifier.cross_validate("poscnn", ["background", "promoter"], codes, counts, y, idx, 3,
                                   encoding="onehot", k=K, epochs=1, seed=0)
    assert len(cv["macro_f1"]["folds"]) == 3 and 0 <= cv["macro_f1"]["mean"] <= 1
