"""A small CNN sound-class classifier over log-mel spectrograms; its penultimate layer is a FAD embedding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from funcodec_lite.train.engine import Engine, LoopConfig, TrainTask
from funcodec_lite.utils.weights import save_model_dir


@dataclass
class ClassifierConfig:
    """Model and training settings.

    Args:
        n_mels: mel bands of the input features.
        num_classes: output classes (7 for DCASE 2023 Task 7).
        channels: output channels of the conv blocks; each block halves time and frequency.
        embed_dim: size of the penultimate layer (the embedding).
        dropout: dropout before the output layer.
        epochs: passes over the training set.
        batch_size: examples per step.
        lr: Adam learning rate.
        weight_decay: Adam L2 weight decay.
        freq_mask: widest SpecAugment frequency mask in bands (0: none), one per example and step.
        time_mask: widest SpecAugment time mask in frames (0: none), one per example and step.
    """

    n_mels: int = 80
    num_classes: int = 7
    channels: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    freq_mask: int = 8
    time_mask: int = 24

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive ints, got {self.channels}")
        if self.n_mels < 1 or self.num_classes < 2 or self.embed_dim < 1:
            raise ValueError("need n_mels >= 1, num_classes >= 2 and embed_dim >= 1")
        if self.epochs < 0 or self.batch_size < 1 or self.freq_mask < 0 or self.time_mask < 0:
            raise ValueError("need epochs >= 0, batch_size >= 1 and non-negative mask widths")


class FoleyClassifier(nn.Module):
    """Conv blocks (3x3 conv with stride 2, batch norm, ReLU), mean + max pooling, embedding, logits.

    Inputs are normalised per mel band with the `feature_mean` / `feature_std` buffers, which
    `train_classifier` sets from the training features (they are saved in the state dict).
    """

    model_kind = "foley_classifier"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = config = config or ClassifierConfig()
        self.register_buffer("feature_mean", torch.zeros(config.n_mels))
        self.register_buffer("feature_std", torch.ones(config.n_mels))
        blocks: list[nn.Module] = []
        c_in = 1
        for c_out in config.channels:
            blocks += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.embedding = nn.Linear(2 * c_in, config.embed_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.embed_dim, config.num_classes)

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Per-band standardisation of log-mel features of shape [B, n_mels, frames]."""
        if features.dim() != 3 or features.shape[1] != self.config.n_mels:
            raise ValueError(f"expected features [B, {self.config.n_mels}, frames], "
                             f"got {tuple(features.shape)}")
        return (features - self.feature_mean[:, None]) / self.feature_std[:, None]

    def _embed_normalized(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x.unsqueeze(1))  # [B, C, F', T']
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.embedding(pooled)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer embedding (before its ReLU).

        Args:
            features (torch.Tensor): log-mel features of shape [B, n_mels, frames] (any frames >= 1).

        Returns:
            torch.Tensor: embeddings of shape [B, embed_dim].
        """
        return self._embed_normalized(self.normalize(features))

    def forward(self, features: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """Args:
            features (torch.Tensor): log-mel features of shape [B, n_mels, frames].
            normalized: the features are already standardised (`normalize`), as in training.

        Returns:
            torch.Tensor: class logits of shape [B, num_classes].
        """
        x = features if normalized else self.normalize(features)
        return self.output(self.dropout(F.relu(self._embed_normalized(x))))


def _spec_augment(x: torch.Tensor, freq_mask: int, time_mask: int, gen: torch.Generator) -> torch.Tensor:
    """Zeroes one random band range and one random frame range per example of x [B, F, T] (normalised)."""
    b, n_freq, n_time = x.shape
    keep = torch.ones_like(x, dtype=torch.bool)
    for width_max, size, dim in ((freq_mask, n_freq, 1), (time_mask, n_time, 2)):
        if width_max == 0:
            continue
        width = torch.randint(0, min(width_max, size) + 1, (b,), generator=gen)
        start = (torch.rand(b, generator=gen) * (size - width + 1)).long()
        pos = torch.arange(size)
        inside = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # [B, size]
        keep &= ~(inside[:, :, None] if dim == 1 else inside[:, None, :]).to(x.device)
    return x * keep


class ClassifierTask(TrainTask):
    """The classifier's part of training: Adam and cross-entropy on standardised, SpecAugment-ed log-mels.

    The masks of step s are drawn from a generator seeded by (seed, s), so a resumed run masks as the
    uninterrupted run does.
    """

    name = "classifier"

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, config: ClassifierConfig, seed: int,
                 provenance: dict | None = None) -> None:
        self.features, self.labels = features.float().cpu(), labels.long().cpu()
        self.config, self.seed, self.provenance = config, seed, provenance or {}

    def build(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        model = FoleyClassifier(self.config)
        model.feature_mean.copy_(self.features.mean(dim=(0, 2)))
        model.feature_std.copy_(self.features.std(dim=(0, 2)).clamp_min(1e-5))
        optimizer = torch.optim.Adam(model.parameters(), lr=self.config.lr,
                                     weight_decay=self.config.weight_decay)
        with torch.no_grad():
            self.normalized = model.normalize(self.features)
        return {"model": model}, {"model": optimizer}

    def dataset(self) -> TensorDataset:
        return TensorDataset(self.normalized, self.labels)

    def step(self, batch: list[torch.Tensor], engine: Engine) -> dict[str, torch.Tensor]:
        x, y = batch
        masks = torch.Generator().manual_seed(self.seed * 1_000_003 + engine.step)
        x = _spec_augment(x, self.config.freq_mask, self.config.time_mask, masks)
        with engine.autocast():
            loss = F.cross_entropy(engine.modules["model"](x, normalized=True), y)
        engine.update("model", loss)
        return {"loss": loss.detach()}

    def export(self, engine: Engine, directory: Path) -> None:
        save_model_dir(directory, engine.unwrap("model"), {**self.provenance, "steps": engine.step})


def train_classifier(
    features: torch.Tensor, labels: torch.Tensor, config: ClassifierConfig | None = None, seed: int = 0,
    exp_dir: str | Path | None = None, provenance: dict | None = None,
) -> FoleyClassifier:
    """Trains a classifier on the engine for ``config.epochs`` epochs; deterministic for a seed.

    The global torch RNG is left as it was (the engine's seeding runs in a forked RNG).

    Args:
        features (torch.Tensor): log-mel features of shape [N, n_mels, frames], N >= 2.
        labels (torch.Tensor): class ids of shape [N] in [0, num_classes).
        config: model and training settings.
        seed: seeds initialisation, data order, masks and dropout.
        exp_dir: checkpoints, logs and the model directory (``exp_dir/model``); None: in memory only.
        provenance: recorded in the model directory (what data it was trained on).

    Returns:
        FoleyClassifier: the trained model in eval mode, on the device of `features`.
    """
    config = config or ClassifierConfig()
    if features.dim() != 3 or features.shape[1] != config.n_mels:
        raise ValueError(f"expected features [N, {config.n_mels}, frames], got {tuple(features.shape)}")
    labels = labels.to(torch.long)
    if labels.shape != (features.shape[0],):
        raise ValueError(f"expected labels [{features.shape[0]}], got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= config.num_classes):
        raise ValueError(f"labels must lie in [0, {config.num_classes})")
    if features.shape[0] < 2:
        raise ValueError("need at least 2 training examples (batch norm)")
    batch_size = min(config.batch_size, features.shape[0])
    steps_per_epoch = features.shape[0] // batch_size
    loop = LoopConfig(steps=config.epochs * steps_per_epoch, batch_size=batch_size, seed=seed,
                      log_every=max(1, steps_per_epoch), checkpoint_every=0)
    devices = [features.device] if features.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        engine = Engine(ClassifierTask(features, labels, config, seed, provenance), loop, exp_dir)
        engine.fit()
    return engine.unwrap("model").to(features.device).eval()


@torch.no_grad()
def embed_features(model: FoleyClassifier, features: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Embeddings of shape [N, embed_dim] for features of shape [N, n_mels, frames], computed in batches."""
    chunks = [model.embed(features[i:i + batch_size]) for i in range(0, features.shape[0], batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros(0, model.config.embed_dim, device=features.device)


@torch.no_grad()
def accuracy(
    model: FoleyClassifier, features: torch.Tensor, labels: torch.Tensor, batch_size: int = 64
) -> float:
    """Fraction of examples whose arg-max class equals the label (the model is put in eval mode).

    Args:
        features (torch.Tensor): log-mel features of shape [N, n_mels, frames], N >= 1.
        labels (torch.Tensor): class ids of shape [N].
    """
    if features.shape[0] == 0 or labels.shape != (features.shape[0],):
        raise ValueError(f"need N >= 1 features and labels [N], got features {tuple(features.shape)} "
                         f"and labels {tuple(labels.shape)}")
    model.eval()
    predictions = torch.cat([model(features[i:i + batch_size]).argmax(dim=1)
                             for i in range(0, features.shape[0], batch_size)])
    return float((predictions.cpu() == labels.cpu()).float().mean())
