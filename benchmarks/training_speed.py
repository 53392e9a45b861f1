"""Benchmark: each domain's training loop against a plain PyTorch loop over the same tensors.

Not a test. For each domain it builds data shaped like the real sets (the flows' defaults for everything else),
calls the domain's own fit function as its train stage does, under ``compute.dask_client()`` as a flow runs it,
and records what that function hands to ``models.train.train_model``: the network as initialised, the training
and validation datasets (the domain's own Dataset classes: tensors, ``FlippedPatches``, ``WindowDataset``), the
loss and the ``TrainConfig``. Then the floor: the same network from the same initial weights, the same batch
size, Adam with the same learning rate and weight decay, the same loss, trained for the same number of epochs by
a bare loop over the whole set materialised once as tensors (one ``randperm`` per epoch, a slice per batch),
with the same validation pass after each epoch (early stopping needs it).

- genome: 3,000 sequences of 60 nt, 3 classes (a motif whose position gives the class), default ``poscnn`` on
  one-hot bases, ``tasks.genome.classifier._fit``;
- sentiment: 40,000 posts of up to 40 tokens from a 20,000-word Zipf vocabulary, 3 classes, the hybrid model
  (``tasks.sentiment.training.fit_hybrid``; its two logistic regressions run before the loop and are reported as
  ``setup_s``, not timed per epoch);
- satellite: a 2000 x 2000 px, 6-band scene from the synthetic land cover with 600 labelled discs, the flow's
  block split and patch windows, default U-Net (``tasks.satellite.classifier.fit_segmenter``);
- market: 5 symbols x 3,000 days of synthetic OHLCV through the ingest and check stages, the last walk-forward
  fold's LSTM (``tasks.market.forecaster.fit_fold``).

Per domain it prints the median seconds per epoch of both loops (the first epoch excluded when there are
three or more), training samples per second, and the torch threads inside the domain's call against the
cores; ``ratio=`` is the worst project / plain over the domains (target <= 1.2).

    .venv/bin/python benchmarks/training_speed.py                     # every domain, 3 epochs each
    .venv/bin/python benchmarks/training_speed.py --domain genome --epochs 5
"""

from __future__ import annotations

import argparse
import copy
import inspect
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import Dataset, TensorDataset, default_collate  # noqa: E402

import models.train  # noqa: E402
from flows import params  # noqa: E402


@dataclass
class Call:
    """What a domain handed to ``train_model``, and what came back."""

    model: nn.Module
    initial: dict
    train: object
    val: object
    loss_fn: object
    config: models.train.TrainConfig
    history: dict = field(default_factory=dict)
    torch_threads: int = 0


def capture(module, calls: list[Call]) -> None:
    """Wrap ``module.train_model`` so the domain trains as usual and its call is recorded."""
    real = models.train.train_model

    def recorded(model, train, val, *, loss_fn=None, config=None):
        call = Call(model, copy.deepcopy(model.state_dict()), train, val, loss_fn or nn.CrossEntropyLoss(),
                    config or models.train.TrainConfig(), torch_threads=torch.get_num_threads())
        call.history = real(model, train, val, loss_fn=loss_fn, config=config)
        calls.append(call)
        return call.history

    module.train_model = recorded


def tensors(data: Dataset | tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset as two tensors, gathered once."""
    if isinstance(data, tuple):
        return tuple(torch.as_tensor(a) for a in data)
    if isinstance(data, TensorDataset):
        return data.tensors
    everything = list(range(len(data)))
    return data[everything] if getattr(data, "batched", False) else default_collate([data[i] for i in everything])


def plain_loop(call: Call, epochs: int) -> list[float]:
    """Seconds per epoch of the floor: bare batches over in-memory tensors, Adam, a validation pass."""
    model = call.model
    model.load_state_dict(call.initial)
    device = models.train.pick_device(call.config.device)
    model.to(device)
    (x, y), (xv, yv) = tensors(call.train), tensors(call.val)
    x, y, xv, yv = (t.to(device) for t in (x, y, xv, yv))
    optimizer = torch.optim.Adam(model.parameters(), lr=call.config.lr, weight_decay=call.config.weight_decay)
    generator, batch, seconds = torch.Generator().manual_seed(0), call.config.batch_size, []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for index in torch.randperm(len(x), generator=generator).split(batch):
            optimizer.zero_grad()
            loss = call.loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for i in range(0, len(xv), batch * 4):
                float(call.loss_fn(model(xv[i:i + batch * 4]), yv[i:i + batch * 4]))
        seconds.append(time.perf_counter() - started)
    return seconds


def typical(seconds: list[float]) -> float:
    return statistics.median(seconds[1:] if len(seconds) >= 3 else seconds)


def defaults(function, *names: str) -> dict:
    """Keyword defaults of a product function, so the benchmark follows the product's own."""
    found = inspect.signature(function).parameters
    return {name: found[name].default for name in names}


def genome(epochs: int, work: Path) -> None:
    from tasks.genome import classifier, encode

    p = params.GenomeParams()
    rng = np.random.default_rng(0)
    n, length, classes = 3000, 60, 3
    codes = rng.integers(0, 4, (n, length)).astype(np.uint8)
    y = rng.integers(0, classes, n)
    motif = encode.codes_of("TATAAT")
    for c in range(classes):
        codes[y == c, 8 + 16 * c: 8 + 16 * c + len(motif)] = motif
    counts = encode.kmer_counts(encode.kmer_tokens(codes, p.k), p.k)
    order = rng.permutation(n)
    train, val = order[: int(0.7 * n)], order[int(0.7 * n): int(0.85 * n)]
    classifier._fit(p.model, ["a", "b", "c"], codes, counts, y, train, val, encoding=p.encoding, k=p.k,
                    epochs=epochs, seed=p.seed, augment_rc=p.augment_rc)


def sentiment(epochs: int, work: Path) -> None:
    from tasks.sentiment.training import fit_hybrid

    rng = np.random.default_rng(0)
    n, length, words, classes = 40_000, 40, 20_000, 3
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = {}
    while len(vocabulary) < words:
        vocabulary.setdefault("".join(rng.choice(letters, rng.integers(2, 10))), len(vocabulary) + 2)
    ids = np.minimum(rng.zipf(1.3, (n, length)), words - 1).astype(np.int64) + 1
    ids[np.arange(length)[None, :] >= rng.integers(4, length + 1, n)[:, None]] = 0
    y = rng.integers(0, classes, n)
    ids[:, 0] = 2 + y  # a word that tells the class, so the loss moves as on real posts
    order = rng.permutation(n)
    train, val = order[: int(0.7 * n)], order[int(0.7 * n): int(0.85 * n)]
    fit_hybrid(ids, y, train, val, vocabulary, classes, cnn_tokens=length, epochs=epochs,
               seed=params.SentimentParams().seed)


def satellite(epochs: int, work: Path) -> None:
    from datetime import date

    from tasks.satellite import classifier as satellite_classifier
    from tasks.satellite import grid, synthetic, training
    from tasks.satellite import tasks as satellite_tasks
    from tasks.satellite.labels import UNLABELLED

    p = params.SatelliteParams()
    d = defaults(satellite_tasks.train_classifier, "patch", "width", "batch_size")
    size, bands, discs = 2000, 6, 600
    rng = np.random.default_rng(0)
    cover = synthetic.land_cover(size, seed=7)
    image = synthetic.reflectance(cover, when=date(2024, 6, 1), seed=0)[:bands].astype("float32")
    image = (image - image.mean(axis=(1, 2), keepdims=True)) / image.std(axis=(1, 2), keepdims=True)
    labels = np.full((size, size), UNLABELLED, dtype=np.int16)
    yy, xx = np.ogrid[:size, :size]
    for r, c, radius in zip(rng.integers(0, size, discs), rng.integers(0, size, discs), rng.integers(6, 20, discs),
                            strict=True):
        inside = (yy - r) ** 2 + (xx - c) ** 2 <= radius**2
        labels[inside] = cover[inside]
    split = np.asarray(grid.block_split((size, size), block=p.block, labelled=labels != UNLABELLED))
    data = {}
    for name, random_per_block in (("train", 8), ("val", 0)):
        windows = training.patch_windows(split, labels, grid.SPLITS[name], patch=d["patch"], block=p.block,
                                         random_per_block=random_per_block, seed=p.seed)
        patches = training.take_patches(image, windows, patch=d["patch"])
        data[name] = training.extract_patches(patches, labels, split, grid.SPLITS[name], windows, patch=d["patch"],
                                              once=name != "train")
    arch = satellite_classifier.architecture(p.model, bands, int(cover.max()) + 1, d["width"])
    satellite_classifier.fit_segmenter(arch, data["train"], data["val"], epochs=epochs, batch_size=d["batch_size"],
                                   seed=p.seed)


def market(epochs: int, work: Path) -> None:
    from tasks.market import forecaster, sources
    from tasks.market import tasks as market_tasks
    from tasks.market.synthetic import write_synthetic_prices

    p = params.MarketParams()
    path = write_synthetic_prices(work / "prices.csv", symbols=5, days=3000)
    ingested = market_tasks.ingest_prices.fn(str(work), input=path)
    checked = market_tasks.check_prices.fn(ingested.output, str(work))
    settings = forecaster.MarketSettings(lag=p.lag, horizon=p.horizon, folds=p.folds, epochs=epochs, hidden=p.hidden,
                                         cost=p.cost, seed=p.seed, mc_samples=p.mc_samples)
    spec = forecaster.MarketSpec(sources.read_checked_prices(checked.output), settings)
    forecaster.fit_fold(spec.last, p.folds - 1, settings, spec.dates)


DOMAINS = {"genome": ("tasks.genome.classifier", genome), "sentiment": ("tasks.sentiment.training", sentiment),
           "satellite": ("tasks.satellite.classifier", satellite), "market": ("tasks.market.forecaster", market)}


def measure(name: str, epochs: int, work: Path) -> dict:
    import importlib

    from tasks.compute import dask_client

    module_name, build = DOMAINS[name]
    calls: list[Call] = []
    capture(importlib.import_module(module_name), calls)
    started = time.perf_counter()
    with dask_client():
        build(epochs, work)
    call = calls[-1]
    total = time.perf_counter() - started
    ran = call.history["epoch_seconds"]
    plain = plain_loop(call, len(ran))
    samples = len(call.train) if not isinstance(call.train, tuple) else len(call.train[0])
    project_s, plain_s = typical(ran), typical(plain)
    return {"domain": name, "samples": samples, "batch": call.config.batch_size, "epochs": len(ran),
            "project_s": project_s, "plain_s": plain_s, "ratio": project_s / plain_s,
            "project_sps": samples / project_s, "plain_sps": samples / plain_s,
            "setup_s": total - call.history["seconds"], "torch_threads": call.torch_threads}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", choices=sorted(DOMAINS), action="append", help="only this domain (repeatable)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs asked of each domain's fit; default 3")
    args = parser.parse_args(argv)
    rows = []
    print(f"cpus={os.cpu_count()} torch={torch.__version__} torch_threads={torch.get_num_threads()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tessera-training-") as work:
        for name in args.domain or list(DOMAINS):
            row = measure(name, args.epochs, Path(work))
            rows.append(row)
            print(f"domain={name} samples={row['samples']} batch={row['batch']} epochs={row['epochs']} "
                  f"project_s_per_epoch={row['project_s']:.2f} plain_s_per_epoch={row['plain_s']:.2f} "
                  f"project_samples_s={row['project_sps']:.0f} plain_samples_s={row['plain_sps']:.0f} "
                  f"setup_s={row['setup_s']:.1f} torch_threads={row['torch_threads']} ratio={row['ratio']:.3f}",
                  flush=True)
    print(f"ratio={max(row['ratio'] for row in rows):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
