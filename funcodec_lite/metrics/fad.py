"""Fréchet Audio Distance: Gaussian statistics of embeddings, the Fréchet distance, per-class FAD tables.

The embeddings come from any model; `funcodec_lite.metrics.vggish` gives the DCASE 2023 Task 7
evaluator's VGGish embeddings, and the distance below is computed as that evaluator computes it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg


# ------------------------------------------------------------------------------------ Fréchet distance
def gaussian_stats(embeddings: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (N - 1) covariance of a set of embeddings, in float64.

    Args:
        embeddings: array of shape [N, D] with N >= 2.

    Returns:
        (mu, sigma): arrays of shape [D] and [D, D].
    """
    x = embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
    x = x.astype(np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need embeddings of shape [N >= 2, D], got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or Inf")
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-7
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), as the DCASE evaluator computes it.

    d = |mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr(sqrtm(sigma1 sigma2)). When scipy's sqrtm of the
    product is not finite (a numerically singular product), it is retried with `eps` added to the
    diagonal of both covariances, and a RuntimeWarning says so. A small imaginary part of the square
    root is discarded. The result is not clipped at 0 (identical inputs may give about -1e-12).

    Args:
        mu1, mu2: means of shape [D].
        sigma1, sigma2: covariances of shape [D, D].
        eps: diagonal offset of the retry.

    Raises:
        ValueError: mismatched shapes, or an imaginary diagonal above 1e-3 in the square root.
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    dim = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"need mu [D] and sigma [D, D] for both Gaussians, got {mu1.shape}, "
                         f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # a singular product is handled below
        root = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(root).all():
            warnings.warn(f"sqrtm(sigma1 @ sigma2) is not finite; retrying with {eps:g} added to the "
                          "covariance diagonals", RuntimeWarning, stacklevel=2)
            offset = eps * np.eye(dim)
            root = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0.0, atol=1e-3):
            raise ValueError(f"sqrtm(sigma1 @ sigma2) has a large imaginary part "
                             f"(max |imag| on the diagonal {np.abs(np.diagonal(root).imag).max():.3g})")
        root = root.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(root))


def fad_per_class(
    real_embeddings: Mapping[str, np.ndarray | torch.Tensor],
    generated_embeddings: Mapping[str, np.ndarray | torch.Tensor],
) -> dict[str, float]:
    """FAD of each generated class against the real embeddings of the same class.

    Args:
        real_embeddings: class -> real embeddings of shape [N, D].
        generated_embeddings: class -> generated embeddings of shape [M, D]; every class must be in
            `real_embeddings`.

    Returns:
        class -> FAD, in the order of `generated_embeddings`.
    """
    missing = [c for c in generated_embeddings if c not in real_embeddings]
    if missing:
        raise ValueError(f"no real embeddings for generated classes {missing}")
    return {c: frechet_distance(*gaussian_stats(real_embeddings[c]), *gaussian_stats(gen))
            for c, gen in generated_embeddings.items()}


@dataclass
class FADMatrix:
    """FAD of every generated class against every real class.

    Args:
        generated_classes: row labels.
        real_classes: column labels.
        values: FAD(generated row, real column), array of shape [G, R].
    """

    generated_classes: list[str]
    real_classes: list[str]
    values: np.ndarray

    def get(self, generated: str, real: str) -> float:
        """FAD of generated class `generated` against real class `real`."""
        return float(self.values[self.generated_classes.index(generated), self.real_classes.index(real)])

    def nearest_real(self) -> dict[str, str]:
        """Generated class -> the real class it is closest to (smallest FAD)."""
        rows = zip(self.generated_classes, self.values)
        return {g: self.real_classes[int(np.argmin(row))] for g, row in rows}

    def matched_is_nearest(self) -> dict[str, bool]:
        """For each class on both axes: FAD(gen c, real c) < FAD(gen c, real c') for every other c'."""
        result = {}
        for i, g in enumerate(self.generated_classes):
            if g in self.real_classes:
                j = self.real_classes.index(g)
                others = np.delete(self.values[i], j)
                result[g] = bool(others.size == 0 or self.values[i, j] < others.min())
        return result


def fad_matrix(
    real_embeddings: Mapping[str, np.ndarray | torch.Tensor],
    generated_embeddings: Mapping[str, np.ndarray | torch.Tensor],
) -> FADMatrix:
    """FAD of every generated class (rows) against every real class (columns); statistics computed once."""
    real = {c: gaussian_stats(e) for c, e in real_embeddings.items()}
    gen = {c: gaussian_stats(e) for c, e in generated_embeddings.items()}
    values = np.array([[frechet_distance(*real[r], *gen[g]) for r in real] for g in gen], dtype=np.float64)
    return FADMatrix(list(gen), list(real), values.reshape(len(gen), len(real)))
