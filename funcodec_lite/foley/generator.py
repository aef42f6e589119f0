"""A trained Foley run as one model: class label in, clips in the challenge's format out.

`FoleyGenerator` holds the parts of a run and is saved as one model directory (kind ``foley_generator``),
so ``codec generate --model DIR --class DogBark -n 10 out/`` needs nothing else. Two paths:

- ``mel``: ``prior`` (PixelSNAIL over code maps) -> ``autoencoder`` (mel VQ-VAE decoder) -> ``vocoder``
  (any vocoder kind of `funcodec_lite.vocoders`);
- ``codec``: ``prior`` (a class-conditional token model) -> ``codec`` (its decoder; no vocoder).

Every clip ends with a DC-blocking high-pass: small vocoders trained for minutes learn an arbitrary DC
offset (the mel loss cannot see 0 Hz: the lowest Slaney filter has zero weight there), which was the
"noise bed" under every generated clip (|x| ~0.013 in silences where the real clips have 1e-4).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from funcodec_lite.audio.filters import highpass_biquad
from funcodec_lite.audio.io import save_audio
from funcodec_lite.audio.mel_frontend import fit_length
from funcodec_lite.foley.data import output_folder
from funcodec_lite.lm.pixelsnail_sampling import sample_incremental
from funcodec_lite.lm.token_sampling import sample_class_tokens
from funcodec_lite.utils.weights import config_from_dict, config_to_dict, model_class

PATHS = {"mel": ("prior", "autoencoder", "vocoder"), "codec": ("prior", "codec")}
DC_CUTOFF_HZ = 20.0


@dataclass
class FoleyGeneratorConfig:
    """Args:
        class_names: the prior's classes, in label order.
        path: "mel" or "codec" (which parts, see the module docstring).
        parts: part name -> ``{"kind": model kind, **its config}``.
        sample_rate: Hz of the clips.
        num_samples: clip length (88,200: 4 s at 22,050 Hz, the challenge's).
        sampling: the prior's sampling settings (``temperature``, ``guidance``; the codec path's ``steps``
            etc.).
    """

    class_names: list[str] = field(default_factory=list)
    path: str = "mel"
    parts: dict = field(default_factory=dict)
    sample_rate: int = 22050
    num_samples: int = 88200
    sampling: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"path must be one of {sorted(PATHS)}, got {self.path!r}")
        missing = sorted(set(PATHS[self.path]) - set(self.parts))
        if missing:
            raise ValueError(f"the {self.path} path needs parts {missing}")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread inside the block: a sampler's step (one position, or one MaskGIT step of a few
    tokens) is too little work to split, and extra threads only add synchronisation (3-10x slower sampling
    measured on 2 busy cores); the decoders and vocoders around it keep every thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def remove_dc(wavs: torch.Tensor, sample_rate: int, cutoff_hz: float = DC_CUTOFF_HZ) -> torch.Tensor:
    """[..., T] -> [..., T]: a second-order high-pass at ``cutoff_hz`` (`highpass_biquad`)."""
    return highpass_biquad(wavs, sample_rate, cutoff_hz)


class FoleyGenerator(nn.Module):
    """The parts of a Foley run (see `FoleyGeneratorConfig`) as submodules named after the parts."""

    model_kind = "foley_generator"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = FoleyGeneratorConfig

    def __init__(self, config: FoleyGeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.parts = nn.ModuleDict()
        for name, spec in config.parts.items():
            spec = dict(spec)
            cls = model_class(spec.pop("kind"))
            self.parts[name] = cls(config_from_dict(cls.config_class, spec))

    @classmethod
    def from_parts(cls, class_names: list[str], path: str, parts: dict[str, nn.Module], sample_rate: int,
                   num_samples: int, sampling: dict | None = None) -> FoleyGenerator:
        """A generator holding trained ``parts`` (their weights are copied)."""
        specs = {name: {"kind": type(m).model_kind, **config_to_dict(m.config)} for name, m in parts.items()}
        model = cls(FoleyGeneratorConfig(list(class_names), path, specs, sample_rate, num_samples,
                                         dict(sampling or {})))
        for name, module in parts.items():
            model.parts[name].load_state_dict(module.state_dict())
        return model.eval()

    def prepare_for_inference(self) -> FoleyGenerator:
        """Folds the vocoder's weight norm where it has one (HiFi-GAN); eval mode. Returns self."""
        for part in self.parts.values():
            if hasattr(part, "remove_weight_norm"):
                part.remove_weight_norm()
        return self.eval()

    def label(self, class_name: str) -> int:
        """The label of ``class_name``.

        Raises:
            KeyError: an unknown class (the message lists the known ones).
        """
        if class_name not in self.config.class_names:
            raise KeyError(f"unknown class {class_name!r}; known: {', '.join(self.config.class_names)}")
        return self.config.class_names.index(class_name)

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, generator: torch.Generator | None = None,
                 timing: dict[str, float] | None = None) -> torch.Tensor:
        """Clips of the given classes.

        Args:
            labels: [B] class labels.
            generator: the sampling's random source.
            timing: if given, seconds spent per phase are added to it ("sample", "decode", "vocode").

        Returns:
            [B, num_samples] audio at ``sample_rate``.
        """
        clock = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            if timing is not None:
                timing[phase] = timing.get(phase, 0.0) + now - clock
            clock = now

        if self.config.path == "mel":
            wavs = self._generate_mel(labels, generator, lap)
        else:
            with one_thread():
                codes = sample_class_tokens(self.parts["prior"], labels, self.config.sampling, generator)
            lap("sample")
            wavs = self.parts["codec"].decode(codes)[:, 0].float()
            lap("decode")
        wavs = fit_length(remove_dc(wavs, self.config.sample_rate), self.config.num_samples)
        return wavs.clamp(-1.0, 1.0)

    def _generate_mel(self, labels: torch.Tensor, generator: torch.Generator | None,
                      lap: Callable[[str], None]) -> torch.Tensor:
        prior, autoencoder = self.parts["prior"], self.parts["autoencoder"]
        temperature = float(self.config.sampling.get("temperature", 1.0))
        guidance = float(self.config.sampling.get("guidance", 0.0))
        with one_thread():
            maps = sample_incremental(prior, labels, generator, temperature, guidance)
        lap("sample")
        mels = autoencoder.decode_codes(maps).reshape(len(labels), autoencoder.config.n_mels,
                                                      autoencoder.config.n_frames)
        lap("decode")
        wavs = self.parts["vocoder"].synthesize(mels, generator=generator)[:, 0]
        lap("vocode")
        return wavs


@torch.no_grad()
def write_clips(model: FoleyGenerator, out_root: Path, clips_per_class: int, batch_size: int, seed: int,
                classes: list[str] | None = None) -> dict[str, float]:
    """``clips_per_class`` clips of each class (default: all) as ``out_root/<challenge folder>/NNN.wav``
    (16-bit PCM at the model's rate and length, batches of ``batch_size`` [B, num_samples]); returns the
    seconds spent per phase."""
    generator = torch.Generator().manual_seed(seed)
    timing: dict[str, float] = {}
    for name in classes or model.config.class_names:
        label = model.label(name)
        folder = out_root / output_folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, clips_per_class, batch_size):
            count = min(batch_size, clips_per_class - start)
            wavs = model.generate(torch.full((count,), label), generator, timing)
            for k, wav in enumerate(wavs):
                save_audio(folder / f"{start + k:03d}.wav", wav, model.config.sample_rate, "PCM_16")
        print(f"{name}: {clips_per_class} clips -> {folder}")
    return timing
