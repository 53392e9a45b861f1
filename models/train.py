"""One training loop for every domain: seeded, CPU or CUDA, Adam, LR schedule, early stopping."""

from __future__ import annotations

import copy
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, TensorDataset


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5
    min_steps: int = 0
    seed: int = 0
    device: str | None = None
    progress: bool | None = None


class CNNPart(nn.Module):
    """A hybrid model (a linear part beside a CNN) seen through its ``cnn_logits`` alone, to train that part."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.cnn_logits(x)


def logistic_weights(fitted, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_classes, features) weights and (n_classes,) biases whose softmax is a fitted scikit-learn logistic
    regression's ``predict_proba`` (a binary one's first class gets logit 0); classes it never saw get 0."""
    coef, intercept = np.zeros((n_classes, fitted.coef_.shape[1])), np.zeros(n_classes)
    if n_classes == 2 and len(fitted.classes_) == 2:
        coef[1], intercept[1] = fitted.coef_[0], fitted.intercept_[0]
    else:
        coef[fitted.classes_], intercept[fitted.classes_] = fitted.coef_, fitted.intercept_
    return coef, intercept


def pick_device(device: str | None = None) -> torch.device:
    """CUDA when present, else the CPU; everything must pass on the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _as_dataset(data: Dataset | tuple) -> Dataset:
    return data if isinstance(data, Dataset) else TensorDataset(*(torch.as_tensor(a) for a in data))


def batches(data: Dataset | tuple, batch_size: int, *, shuffle: bool = False,
            generator: torch.Generator | None = None) -> DataLoader:
    """Batches of ``data`` in the order DataLoader would draw them. Arrays, and a dataset with ``batched = True``
    (its ``__getitem__`` takes a list of indices and returns the batch), are indexed once per batch; any other
    dataset item by item and collated, as DataLoader does. Per-item fetching and collation cost up to ~10% of
    an epoch of the small models here (benchmarks/training_speed.py)."""
    dataset = _as_dataset(data)
    if not (isinstance(dataset, TensorDataset) or getattr(dataset, "batched", False)):
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    return DataLoader(dataset, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False),
                      generator=generator)  # each epoch draws its base seed from it, as with shuffle=True


def _mean_loss(model: nn.Module, loader: DataLoader, loss_fn: Callable, device: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            total += float(loss_fn(model(x), y)) * len(x)
            count += len(x)
    return total / max(count, 1)


def train_model(model: nn.Module, train: Dataset | tuple, val: Dataset | tuple, *,
                loss_fn: Callable | None = None, config: TrainConfig | None = None) -> dict:
    """Fit ``model`` in place and restore the weights of the epoch with the lowest validation loss. A small set
    gets more epochs than ``config.epochs`` when that many would take fewer than ``config.min_steps`` batches.

    Returns the history: ``train_loss``, ``val_loss`` and ``epoch_seconds`` per epoch, ``best_epoch``, ``seconds``,
    ``device``.
    """
    config = config or TrainConfig()
    seed_everything(config.seed)
    device = pick_device(config.device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = batches(train, config.batch_size, shuffle=True, generator=generator)
    val_loader = batches(val, config.batch_size * 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=max(1, config.patience // 2))
    show = sys.stderr.isatty() if config.progress is None else config.progress
    history: dict = {"train_loss": [], "val_loss": [], "epoch_seconds": [], "best_epoch": 0, "device": str(device)}
    best_loss, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
    started = time.perf_counter()
    epochs = range(1, max(config.epochs, -(-config.min_steps // max(len(train_loader), 1))) + 1)
    if show:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, desc="train", unit="epoch")
    for epoch in epochs:
        epoch_started = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
            count += len(x)
        val_loss = _mean_loss(model, val_loader, loss_fn, device)
        history["train_loss"].append(total / max(count, 1))
        history["val_loss"].append(val_loss)
        scheduler.step(val_loss)
        if show:
            epochs.set_postfix(train=f"{history['train_loss'][-1]:.4f}", val=f"{val_loss:.4f}")
        if val_loss < best_loss - 1e-6:
            best_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
            history["best_epoch"] = epoch
        else:
            stale += 1
        history["epoch_seconds"].append(round(time.perf_counter() - epoch_started, 4))
        if stale >= config.patience:
            break
    model.load_state_dict(best_state)
    history["seconds"] = round(time.perf_counter() - started, 3)
    history["best_val_loss"] = best_loss
    return history


def predict_proba(model: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 256,
                  device: str | None = None) -> np.ndarray:
    """Softmax outputs of a classifier over the class axis (axis 1), in batches."""
    dev = pick_device(device)
    model.to(dev).eval()
    x = torch.as_tensor(x)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            outputs.append(torch.softmax(model(x[start:start + batch_size].to(dev)), dim=1).cpu().numpy())
    return np.concatenate(outputs) if outputs else np.empty((0,))


def predict(model: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 1024,
            device: str | None = None) -> np.ndarray:
    """Raw outputs of a regressor, in batches."""
    dev = pick_device(device)
    model.to(dev).eval()
    x = torch.as_tensor(x)
    with torch.no_grad():
        outputs = [model(x[s:s + batch_size].to(dev)).cpu().numpy() for s in range(0, len(x), batch_size)]
    return np.concatenate(outputs) if outputs else np.empty((0,))


def enable_dropout(model: nn.Module) -> None:
    """Eval mode everywhere (batch norm uses its running statistics) except dropout, for Monte Carlo dropout."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.Dropout | nn.Dropout1d | nn.Dropout2d | nn.Dropout3d):
            module.train()


def predict_proba_mc(model: nn.Module, x: np.ndarray | torch.Tensor, *, samples: int, batch_size: int = 256,
                     device: str | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo dropout: the mean softmax over ``samples`` stochastic passes and its predictive entropy
    (per prediction; class axis 1)."""
    dev = pick_device(device)
    model.to(dev)
    enable_dropout(model)
    torch.manual_seed(seed)
    x = torch.as_tensor(x)
    means = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = x[start:start + batch_size].to(dev)
                total = sum(torch.softmax(model(batch), dim=1) for _ in range(samples))
                means.append((total / samples).cpu().numpy())
    finally:
        model.eval()
    mean = np.concatenate(means) if means else np.empty((0,))
    entropy = -(np.clip(mean, 1e-12, 1) * np.log(np.clip(mean, 1e-12, 1))).sum(axis=1) if len(mean) else mean
    return mean, entropy


def predict_mc(model: nn.Module, x: np.ndarray | torch.Tensor, *, samples: int, batch_size: int = 1024,
               device: str | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo dropout for a regressor: the mean and standard deviation of ``samples`` stochastic passes."""
    dev = pick_device(device)
    model.to(dev)
    enable_dropout(model)
    torch.manual_seed(seed)
    x = torch.as_tensor(x)
    means, stds = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = x[start:start + batch_size].to(dev)
                draws = torch.stack([model(batch) for _ in range(samples)])
                means.append(draws.mean(0).cpu().numpy())
                stds.append(draws.std(0).cpu().numpy())
    finally:
        model.eval()
    if not means:
        return np.empty((0,)), np.empty((0,))
    return np.concatenate(means), np.concatenate(stds)
