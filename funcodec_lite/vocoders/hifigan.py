"""HiFi-GAN generator (Kong et al., 2020): V1/V2/V3 and a CPU-sized config; official-checkpoint loading."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrizations, parametrize

from funcodec_lite.modules.conv import apply_norm, fold_weight_norm
from funcodec_lite.utils.torch_files import read_torch_file

LRELU_SLOPE = 0.1
# The official generator's last LeakyReLU (before conv_post) is called without a slope: PyTorch's 0.01.
FINAL_LRELU_SLOPE = 0.01


@dataclass
class HiFiGANConfig:
    """Generator settings, named as in the public ``config_v*.json`` files.

    Args:
        num_mels: input mel bands.
        upsample_rates: upsampling factor of each stage (their product is the hop, 256).
        upsample_kernel_sizes: transposed-conv kernel of each stage.
        upsample_initial_channel: channels after the input conv; halved at every stage.
        resblock: "1" (pairs of dilated + plain convs) or "2" (dilated convs only).
        resblock_kernel_sizes: kernel of each residual block of the multi-receptive-field fusion.
        resblock_dilation_sizes: dilations of each of those blocks (3 per block for "1").
    """

    num_mels: int = 80
    upsample_rates: list[int] = field(default_factory=lambda: [8, 8, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 4, 4])
    upsample_initial_channel: int = 512
    resblock: str = "1"
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5] for _ in range(3)])

    def __post_init__(self) -> None:
        if self.resblock not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("need one kernel size per upsampling rate")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("need one dilation list per residual block kernel size")
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes):
            if (kernel - rate) % 2:
                raise ValueError(f"kernel {kernel} - rate {rate} must be even for an exact x{rate} "
                                 "upsampling")
        if self.resblock == "1" and any(len(d) != 3 for d in self.resblock_dilation_sizes):
            raise ValueError("resblock '1' takes three dilations per block")
        if self.upsample_initial_channel % 2 ** len(self.upsample_rates):
            raise ValueError("upsample_initial_channel must stay whole when halved at every stage")

    @property
    def hop_length(self) -> int:
        """Samples per mel frame: the product of the upsampling rates."""
        return math.prod(self.upsample_rates)

    @classmethod
    def from_official(cls, data: dict) -> HiFiGANConfig:
        """The generator settings of an official ``config.json`` (its training keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def hifigan_v1() -> HiFiGANConfig:
    """V1: the baseline's vocoder (13.9 M parameters)."""
    return HiFiGANConfig()


def hifigan_v2() -> HiFiGANConfig:
    """V2: V1's layout with 128 initial channels (0.93 M parameters)."""
    return HiFiGANConfig(upsample_initial_channel=128)


def hifigan_v3() -> HiFiGANConfig:
    """V3: three stages (8, 8, 4), residual block "2" (1.46 M parameters)."""
    return HiFiGANConfig(
        upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8], upsample_initial_channel=256,
        resblock="2", resblock_kernel_sizes=[3, 5, 7], resblock_dilation_sizes=[[1, 2], [2, 6], [3, 12]],
    )


def hifigan_tiny() -> HiFiGANConfig:
    """A 31 k-parameter V3-like generator (hop 256) for CPU tests and smoke runs."""
    return HiFiGANConfig(
        upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8], upsample_initial_channel=32,
        resblock="2", resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
    )


PRESETS = {"v1": hifigan_v1, "v2": hifigan_v2, "v3": hifigan_v3, "tiny": hifigan_tiny}


def _conv(channels: int, kernel: int, dilation: int) -> nn.Module:
    padding = (kernel * dilation - dilation) // 2
    conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=padding)
    return apply_norm(conv, "weight_norm")


class ResBlock1(nn.Module):
    """Per dilation d: ``x += conv_1(lrelu(conv_d(lrelu(x))))`` (official names ``convs1``/``convs2``).

    Args:
        channels: C.
        kernel_size: kernel of every conv.
        dilations: one dilation per (dilated conv, plain conv) pair.
    """

    def __init__(self, channels: int, kernel_size: int, dilations: list[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(_conv(channels, kernel_size, d) for d in dilations)
        self.convs2 = nn.ModuleList(_conv(channels, kernel_size, 1) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T] -> [B, C, T]."""
        for dilated, plain in zip(self.convs1, self.convs2):
            x = x + plain(F.leaky_relu(dilated(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """Per dilation d: ``x += conv_d(lrelu(x))`` (official name ``convs``).

    Args:
        channels: C.
        kernel_size: kernel of every conv.
        dilations: one dilation per conv.
    """

    def __init__(self, channels: int, kernel_size: int, dilations: list[int]):
        super().__init__()
        self.convs = nn.ModuleList(_conv(channels, kernel_size, d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T] -> [B, C, T]."""
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


class UpsampleStage(nn.Module):
    """LeakyReLU, transposed conv (x rate, channels halved), then the mean of the residual blocks (MRF).

    Args:
        in_channels: C (the output has C / 2).
        rate, kernel: upsampling factor and transposed-conv kernel.
        config: generator settings (residual block kind, kernels and dilations).
    """

    def __init__(self, in_channels: int, rate: int, kernel: int, config: HiFiGANConfig):
        super().__init__()
        out = in_channels // 2
        upsample = nn.ConvTranspose1d(in_channels, out, kernel, rate, padding=(kernel - rate) // 2)
        self.upsample = apply_norm(upsample, "weight_norm")
        block = ResBlock1 if config.resblock == "1" else ResBlock2
        pairs = zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        self.resblocks = nn.ModuleList(block(out, k, list(d)) for k, d in pairs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T] -> [B, C / 2, T · rate]."""
        x = self.upsample(F.leaky_relu(x, LRELU_SLOPE))
        total = self.resblocks[0](x)
        for block in self.resblocks[1:]:
            total = total + block(x)
        return total / len(self.resblocks)


class HiFiGANGenerator(nn.Module):
    """Mel -> waveform: conv_in (k 7), upsampling stages, LeakyReLU(0.01), conv_out (k 7), tanh.

    Every conv is weight-normalised (``parametrizations.weight_norm``); `remove_weight_norm` folds
    them for inference. Initial weights are PyTorch's defaults: the official ``init_weights``
    (N(0, 0.01)) writes into the tensor that the old ``weight_norm`` recomputes before every forward,
    so it never takes effect there either.

    Args:
        config: settings; None means V1.
    """

    model_kind = "hifigan"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = HiFiGANConfig

    def __init__(self, config: HiFiGANConfig | None = None):
        super().__init__()
        self.config = cfg = config or hifigan_v1()
        ch = cfg.upsample_initial_channel
        self.conv_in = apply_norm(nn.Conv1d(cfg.num_mels, ch, 7, padding=3), "weight_norm")
        self.stages = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            self.stages.append(UpsampleStage(ch // 2**i, rate, kernel, cfg))
        self.conv_out = apply_norm(nn.Conv1d(ch // 2 ** len(self.stages), 1, 7, padding=3), "weight_norm")

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Args:
            mel (torch.Tensor): log-mel of shape [B, num_mels, F] (or [B, 1, num_mels, F]).

        Returns:
            torch.Tensor: waveform in [-1, 1] of shape [B, 1, F · hop_length].
        """
        if mel.dim() == 4 and mel.shape[1] == 1:
            mel = mel[:, 0]
        if mel.dim() != 3 or mel.shape[1] != self.config.num_mels:
            raise ValueError(f"expected mel [B, {self.config.num_mels}, F], got {tuple(mel.shape)}")
        x = self.conv_in(mel)
        for stage in self.stages:
            x = stage(x)
        return torch.tanh(self.conv_out(F.leaky_relu(x, FINAL_LRELU_SLOPE)))

    def synthesize(self, mel: torch.Tensor, temperature: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """The vocoders' common entry point: [B, num_mels, F] -> [B, 1, F · hop_length]; HiFi-GAN draws
        nothing, so ``temperature`` and ``generator`` are unused."""
        return self(mel)

    def remove_weight_norm(self) -> int:
        """Folds every weight norm into a plain weight (for inference); returns how many were folded.

        Safe inside ``torch.no_grad()``: the folded weights stay ``nn.Parameter``s (removing a
        parametrisation without autograd would otherwise leave plain tensors).
        """
        with torch.enable_grad():
            return fold_weight_norm(self)

    def restore_weight_norm(self) -> int:
        """Re-parametrises every folded conv weight w as weight norm with g = ||w||, v = w; returns how many.

        The inverse of `remove_weight_norm`: the function is unchanged (up to float rounding), and the
        state dict gets the weight-normed layout that a freshly built generator (training,
        ``load_vocoder``) expects. Convs that still have weight norm are left alone.
        """
        restored = 0
        with torch.enable_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)) and not parametrize.is_parametrized(
                    module, "weight"
                ):
                    parametrizations.weight_norm(module)  # dim 0, as `apply_norm` and the official code
                    restored += 1
        return restored


# --------------------------------------------------------------------------------------------------
# Official checkpoints (jik876/hifi-gan ``g_XXXXXXXX``: {"generator": state_dict, ...})

def official_key_map(config: HiFiGANConfig) -> dict[str, str]:
    """Official generator module names -> ours, one entry per conv (append ``.weight``/``.bias`` etc.).

    The official Generator keeps ``conv_pre``, ``ups.{i}``, ``resblocks.{i * n_kernels + j}`` (with
    ``convs1.{m}``/``convs2.{m}`` or ``convs.{m}``) and ``conv_post``.
    """
    names = {"conv_pre": "conv_in", "conv_post": "conv_out"}
    n_kernels = len(config.resblock_kernel_sizes)
    for i in range(len(config.upsample_rates)):
        names[f"ups.{i}"] = f"stages.{i}.upsample"
        for j, dilations in enumerate(config.resblock_dilation_sizes):
            official, ours = f"resblocks.{i * n_kernels + j}", f"stages.{i}.resblocks.{j}"
            lists = ("convs1", "convs2") if config.resblock == "1" else ("convs",)
            for conv_list in lists:
                for m in range(len(dilations)):
                    names[f"{official}.{conv_list}.{m}"] = f"{ours}.{conv_list}.{m}"
    return names


# weight-norm tensors: old ``torch.nn.utils.weight_norm`` names -> parametrization names
_WEIGHT_NORM_SUFFIXES = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
    "bias": "bias",
}
_PLAIN_SUFFIXES = {"weight": "weight", "bias": "bias"}


def convert_official_state_dict(state: dict[str, torch.Tensor],
                                config: HiFiGANConfig) -> dict[str, torch.Tensor]:
    """Renames an official generator state dict to our module's keys (every key must be mapped).

    Works for weight-normalised checkpoints (``weight_g``/``weight_v``, as trained) and for ones saved
    after ``remove_weight_norm`` (plain ``weight``); the second kind loads into a folded generator.
    """
    folded = not any(key.endswith(".weight_g") for key in state)
    suffixes = _PLAIN_SUFFIXES if folded else _WEIGHT_NORM_SUFFIXES
    converted = {}
    for module, ours in official_key_map(config).items():
        for suffix, our_suffix in suffixes.items():
            key = f"{module}.{suffix}"
            if key not in state:
                raise KeyError(f"official checkpoint lacks {key!r}: does the config match it?")
            converted[f"{ours}.{our_suffix}"] = state[key]
    unknown = sorted(set(state) - {f"{m}.{s}" for m in official_key_map(config) for s in suffixes})
    if unknown:
        raise KeyError(f"official checkpoint has keys this config does not expect: {unknown[:5]}")
    return converted


def load_official_generator(path: str | os.PathLike, config: HiFiGANConfig | None = None,
                            map_location: str | torch.device = "cpu") -> HiFiGANGenerator:
    """Loads an official HiFi-GAN generator checkpoint (``g_XXXXXXXX``) into a `HiFiGANGenerator`.

    The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only, no
    arbitrary unpickling. It may hold ``{"generator": state_dict}`` (as train.py saves it) or the
    state dict itself.

    Args:
        path: checkpoint file.
        config: the generator's settings (its ``config.json``); None means V1 (the DCASE baseline's).
        map_location: device to load onto.

    Returns:
        HiFiGANGenerator: in eval mode; weight norm kept if the checkpoint has it, folded otherwise
        (call `HiFiGANGenerator.restore_weight_norm` before saving it as a model directory).
    """
    config = config or hifigan_v1()
    checkpoint = read_torch_file(path)  # weights_only; moved to map_location with the model
    state = checkpoint.get("generator", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a dict holding the generator's state dict")
    converted = convert_official_state_dict(state, config)
    model = HiFiGANGenerator(config)
    if not any(".parametrizations." in key for key in converted):
        model.remove_weight_norm()
    model.load_state_dict(converted, strict=True)
    return model.to(map_location).eval()
