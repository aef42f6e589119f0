"""Model size and compute: parameter counts, matmul/conv FLOPs per second of audio, markdown tables."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (buffers such as EMA codebooks are not parameters).

    Args:
        module: any ``nn.Module``; a weight-normalised conv counts its ``g`` and ``v`` tensors.
        trainable_only: count only parameters with ``requires_grad``.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_flops(fn: Callable[..., Any], example_input: Any) -> int:
    """FLOPs of one call ``fn(example_input)`` (a tuple is unpacked into positional arguments).

    Counts what ``torch.utils.flop_counter.FlopCounterMode`` counts: matrix products and convolutions
    (transposed too), 2 FLOPs per multiply-accumulate, i.e. 2·C_in·C_out·K·T_out / groups for a Conv1d.
    Elementwise work (activations, normalisation, weight norm, additions, padding) is not counted. The
    oneDNN/cuDNN fused LSTM kernels are switched off while counting, so LSTMs run as (counted) matmuls.
    Runs under ``torch.no_grad()``.
    """
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(torch.backends.mkldnn.flags(enabled=False))
        stack.enter_context(torch.backends.cudnn.flags(enabled=False))
        stack.enter_context(torch.no_grad())
        counter = stack.enter_context(FlopCounterMode(display=False))
        fn(*args)
    return int(counter.get_total_flops())


def flops_per_second(fn: Callable[..., Any], example_input: Any, seconds_of_audio: float) -> float:
    """FLOPs per second of audio: ``count_flops(fn, example_input) / seconds_of_audio``.

    Args:
        fn: the computation to measure, e.g. ``lambda x: decoder(encoder(x), n)`` or a module.
        example_input: its input (a tuple is unpacked), holding ``seconds_of_audio`` of audio.
        seconds_of_audio: duration the input represents (> 0).
    """
    if seconds_of_audio <= 0:
        raise ValueError(f"seconds_of_audio must be > 0, got {seconds_of_audio}")
    return count_flops(fn, example_input) / seconds_of_audio


@dataclass
class ModelProfile:
    """Size of one model: parameters and GFLOPs per second of audio (matmul/conv only)."""

    params: int
    flops_per_second: float

    def as_row(self) -> dict[str, str]:
        """Formatted columns for ``profile_table``."""
        return {
            "params": f"{self.params:,}",
            "params (M)": f"{self.params / 1e6:.2f}",
            "GFLOPs / s audio": f"{self.flops_per_second / 1e9:.2f}",
        }


def profile_model(
    module: nn.Module, example_input: Any, seconds_of_audio: float, fn: Callable[..., Any] | None = None
) -> ModelProfile:
    """Parameters of ``module`` and FLOPs/s of ``fn`` (default: ``module`` itself) on ``example_input``."""
    return ModelProfile(
        count_parameters(module), flops_per_second(fn or module, example_input, seconds_of_audio)
    )


def profile_table(models: Mapping[str, ModelProfile | Mapping[str, Any]]) -> str:
    """Markdown table with one row per model.

    Args:
        models: name -> ``ModelProfile`` or a mapping column -> value (extra columns such as a paper's
            figures). Columns appear in first-seen order; a missing value is left blank.
    """
    rows = {name: (m.as_row() if isinstance(m, ModelProfile) else dict(m)) for name, m in models.items()}
    columns: list[str] = []
    for row in rows.values():
        columns += [c for c in row if c not in columns]
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


class STFTCallCounter:
    """Counts ``torch.stft`` calls per (signal, resolution) while active (a profiling aid).

    A signal is identified by its storage address and shape, a resolution by n_fft, hop, window
    length and centring, so ``max_repeats == 1`` means no STFT was taken twice for the same signal and
    resolution. Use as a context manager; it patches ``torch.stft`` and restores it on exit.
    """

    def __init__(self) -> None:
        self.calls: dict[tuple, int] = {}
        self._original: Callable[..., Any] | None = None

    def __enter__(self) -> STFTCallCounter:
        self._original = original = torch.stft

        def counted(input: torch.Tensor, n_fft: int, hop_length: int | None = None,
                    win_length: int | None = None, *args: Any, **kwargs: Any) -> torch.Tensor:
            center = kwargs.get("center", args[1] if len(args) > 1 else True)
            key = (input.data_ptr(), tuple(input.shape), n_fft, hop_length, win_length, center)
            self.calls[key] = self.calls.get(key, 0) + 1
            return original(input, n_fft, hop_length, win_length, *args, **kwargs)

        torch.stft = counted
        return self

    def __exit__(self, *exc: object) -> None:
        torch.stft = self._original

    @property
    def total(self) -> int:
        """All STFT calls seen."""
        return sum(self.calls.values())

    @property
    def max_repeats(self) -> int:
        """The most times one (signal, resolution) pair was transformed (0 if none was)."""
        return max(self.calls.values(), default=0)


class PhaseTimer:
    """Wall-clock seconds per named phase, summed over calls (``with timer("losses"): ...``).

    On CUDA the device is synchronised at both ends of a phase so that asynchronous kernels are
    charged to the phase that launched them.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str) -> _Phase:
        return _Phase(self, name)


class _Phase:
    def __init__(self, timer: PhaseTimer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - self.start
        self.timer.seconds[self.name] = self.timer.seconds.get(self.name, 0.0) + elapsed
