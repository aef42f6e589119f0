"""The work behind ``codec serve``: code one uploaded clip with a chosen model and bit rate, score it, plot
it.

`DemoApp` holds the codecs (the default model and any others), optional masked token models for vamping,
and an output folder; `DemoApp.run` takes the bytes of an upload and writes, under ``out/<job>/``, the
original at the model's rate, its decoding, their spectrograms and (with a masked model and a preset) a
vamped version, and returns what the page shows: links, bit rate, the scores of ``codec eval``. Bad input
raises `DemoError` with a message for the page. The codec is used through its public path only: loaded by
`funcodec_lite.codec.loading.load_model`, coded by `funcodec_lite.inference.tokenizer.Tokenizer`.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from funcodec_lite.audio.blocks import AUDIO_EXTENSIONS
from funcodec_lite.audio.io import AudioError, load_audio, save_audio
from funcodec_lite.codec.loading import load_model, model_id
from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.metrics import Scorer

JOB_ID = re.compile(r"^[0-9]{4}-[0-9a-f]{8}$")
OUTPUT_FILES = ("original.wav", "decoded.wav", "vamped.wav", "original.png", "decoded.png", "vamped.png")


class DemoError(ValueError):
    """Input the demo cannot code (not audio, too long, an unknown model or bit rate): the page shows it."""


@dataclass
class DemoConfig:
    """Args:
        max_seconds: longest clip accepted.
        max_bytes: largest upload accepted.
        vamp_steps: MaskGIT steps of a vamp.
        seed: of the vamp's sampling.
    """

    max_seconds: float = 30.0
    max_bytes: int = 20_000_000
    vamp_steps: int = 12
    seed: int = 0


@dataclass
class DemoModel:
    """A codec as the page offers it: a name, its tokenizer and the codebook counts to choose from."""

    name: str
    tokenizer: Tokenizer
    choices: list[int]

    def describe(self) -> dict:
        codec = self.tokenizer.codec
        return {"name": self.name, "sample_rate": codec.sample_rate, "channels": codec.channels,
                "model_id": model_id(codec),
                "bitrates": [{"n_q": n, "kbps": round(codec.bandwidth(n), 3)} for n in self.choices]}


@dataclass
class MaskedModels:
    """A coarse masked model (and its coarse-to-fine partner) with the codec it was trained on."""

    name: str
    coarse: torch.nn.Module
    c2f: torch.nn.Module | None
    codec: torch.nn.Module
    frame_rate: float = field(init=False)

    def __post_init__(self) -> None:
        self.frame_rate = self.codec.frame_rate


def _choices(codec: torch.nn.Module) -> list[int]:
    """The codebook counts offered: those the model trained with (quantizer dropout), else 1..n_q."""
    quantizer = getattr(getattr(codec, "config", None), "quantizer", None)
    trained = getattr(quantizer, "dropout_choices", None) or []
    choices = sorted({int(n) for n in trained if 1 <= int(n) <= codec.n_q} | {codec.n_q})
    return choices if len(choices) > 1 else list(range(1, codec.n_q + 1))


def _unique(name: str, taken: set[str]) -> str:
    candidate, k = name, 2
    while candidate in taken:
        candidate, k = f"{name}-{k}", k + 1
    return candidate


class DemoApp:
    """Codecs, masked models and the output folder of one ``codec serve``.

    Args:
        models: model directories (None or ``"default"``: the shipped model), offered in this order.
        masked: coarse masked model directories (each vamps with its own codec); ``c2f`` its
            coarse-to-fine partners by position (shorter lists: coarse only).
        out_dir: every file the demo writes goes below it.

    Raises:
        ModelError / ValueError: a model directory that cannot be loaded (one line naming it).
    """

    def __init__(self, models: list[str | None], masked: list[str], c2f: list[str],
                 out_dir: str | os.PathLike, config: DemoConfig | None = None) -> None:
        from funcodec_lite.lm.vamp import load_masked_models

        self.config = config or DemoConfig()
        self.out_dir = Path(out_dir)
        self.models: dict[str, DemoModel] = {}
        for directory in models:
            codec = load_model(directory)
            label = "default" if directory in (None, "default") else Path(directory).name
            name = _unique(label, set(self.models))
            self.models[name] = DemoModel(name, Tokenizer(codec), _choices(codec))
        self.masked: dict[str, MaskedModels] = {}
        for i, directory in enumerate(masked):
            coarse, fine, codec, _ = load_masked_models(directory, c2f[i] if i < len(c2f) else None, None,
                                                        torch.device("cpu"))
            if codec.channels != 1:
                raise ValueError(f"{directory}: its codec codes {codec.channels} channels; vamping needs a "
                                 "mono codec")
            name = _unique(Path(directory).name, set(self.masked))
            self.masked[name] = MaskedModels(name, coarse.eval(), fine.eval() if fine else None, codec)
        self.scorer = Scorer("classic")
        self._lock = threading.Lock()
        self._count = 0

    def describe(self) -> dict:
        """What the page offers: models with their bit rates, masked models and mask presets, limits."""
        from funcodec_lite.lm.mask_spec import PRESETS

        return {"models": [m.describe() for m in self.models.values()],
                "masked": list(self.masked), "presets": list(PRESETS) if self.masked else [],
                "max_seconds": self.config.max_seconds, "max_bytes": self.config.max_bytes}

    def file_path(self, job: str, name: str) -> Path | None:
        """The file ``name`` of job ``job`` if both are well-formed and it exists (else None)."""
        if not JOB_ID.match(job) or name not in OUTPUT_FILES:
            return None
        path = self.out_dir / job / name
        return path if path.is_file() else None

    def run(self, data: bytes, filename: str, model: str, n_q: int | str, vamp: str = "",
            masked: str = "") -> dict:
        """Codes one upload; see the module docstring. Thread-safe (one clip at a time).

        Raises:
            DemoError: bad input, with the message for the page.
        """
        entry = self.models.get(model)
        if entry is None:
            raise DemoError(f"unknown model {model!r}; this server has {', '.join(self.models)}")
        try:
            n_q = int(n_q)
        except (TypeError, ValueError):
            raise DemoError(f"bit rate: {n_q!r} is not a number of codebooks") from None
        if n_q not in entry.choices:
            raise DemoError(f"{model} codes with {', '.join(map(str, entry.choices))} codebooks, not {n_q}")
        if vamp and not self.masked:
            raise DemoError("this server has no masked model to vamp with (codec serve --masked DIR)")
        if not data:
            raise DemoError("no file: choose an audio file or record one")
        if len(data) > self.config.max_bytes:
            raise DemoError(f"{filename}: {len(data) / 1e6:.1f} MB is too large (at most "
                            f"{self.config.max_bytes / 1e6:.0f} MB)")
        with self._lock:
            self._count += 1
            job = f"{self._count:04d}-{secrets.token_hex(4)}"
            folder = self.out_dir / job
            folder.mkdir(parents=True)
            return self._run(folder, job, data, filename, entry, n_q, vamp, masked)

    def _run(self, folder: Path, job: str, data: bytes, filename: str, entry: DemoModel, n_q: int,
             vamp: str, masked: str) -> dict:
        started = time.perf_counter()
        suffix = Path(filename).suffix.lower()
        upload = folder / f"upload{suffix if suffix in AUDIO_EXTENSIONS else '.bin'}"
        upload.write_bytes(data)
        name = Path(filename).name or "upload"
        try:
            raw, rate = load_audio(upload)
        except AudioError as err:
            problem = err.problem.replace(f"'{upload}'", name).replace(str(upload), name)
            raise DemoError(f"{name}: not audio that can be read ({problem})") from None
        seconds = raw.shape[-1] / rate
        if raw.shape[-1] == 0:
            raise DemoError(f"{name}: the file holds no samples")
        if seconds > self.config.max_seconds:
            raise DemoError(f"{name}: {seconds:.1f} s is too long (at most {self.config.max_seconds:g} s)")
        codec = entry.tokenizer.codec
        wav, _ = load_audio(upload, codec.sample_rate, codec.channels)  # [C, T] at the model's rate
        entry.tokenizer.set_num_codebooks(n_q)
        codes, _ = entry.tokenizer.encode(wav[None], codec.sample_rate)
        decoded = entry.tokenizer.decode(codes).wav[0, :, : wav.shape[-1]].clamp(-1, 1)
        save_audio(folder / "original.wav", wav.clamp(-1, 1), codec.sample_rate)
        save_audio(folder / "decoded.wav", decoded, codec.sample_rate)
        scores = self.scorer.score_pair(wav, decoded, codec.sample_rate)
        plot_spectrogram(folder / "original.png", wav, codec.sample_rate, f"original: {name}")
        plot_spectrogram(folder / "decoded.png", decoded, codec.sample_rate,
                         f"{entry.name}: {codec.bandwidth(n_q):.2f} kbps")
        result = {"job": job, "name": name, "model": entry.name, "n_q": n_q,
                  "kbps": round(codec.bandwidth(n_q), 3), "sample_rate": codec.sample_rate,
                  "seconds": round(seconds, 3), "frames": int(codes.shape[-1]),
                  "scores": {k: (None if math.isnan(v) else round(v, 4)) for k, v in scores.items()},
                  "original": {"audio": f"files/{job}/original.wav", "image": f"files/{job}/original.png"},
                  "decoded": {"audio": f"files/{job}/decoded.wav", "image": f"files/{job}/decoded.png"},
                  "vamped": None}
        if vamp:
            result["vamped"] = self._vamp(folder, job, raw, rate, vamp, masked)
        result["elapsed_seconds"] = round(time.perf_counter() - started, 3)
        return result

    def _vamp(self, folder: Path, job: str, wav: torch.Tensor, rate: int, preset: str, masked: str) -> dict:
        """Vamps the clip with a masked model (its own codec) and a mask preset."""
        from funcodec_lite.lm.mask_spec import PRESETS, parse_mask_spec
        from funcodec_lite.lm.maskgit import MaskGITConfig
        from funcodec_lite.lm.vamp import VampConfig, vamp_audio

        if preset not in PRESETS:
            raise DemoError(f"unknown mask preset {preset!r}")
        models = self.masked.get(masked) if masked else next(iter(self.masked.values()))
        if models is None:
            raise DemoError(f"unknown masked model {masked!r}; this server has {', '.join(self.masked)}")
        spec = parse_mask_spec(preset)
        config = VampConfig.for_window(max(1, round(10.0 * models.frame_rate)),
                                       MaskGITConfig(steps=self.config.vamp_steps))
        generator = torch.Generator().manual_seed(self.config.seed)
        mono = wav.mean(dim=0, keepdim=True)
        audio, mask = vamp_audio(models.coarse, models.c2f, models.codec, mono, rate, spec, config, None,
                                 generator)
        save_audio(folder / "vamped.wav", audio, rate)
        plot_spectrogram(folder / "vamped.png", audio, rate, f"vamped: {preset}")
        return {"model": models.name, "preset": preset, "generated": round(float(mask.float().mean()), 4),
                "audio": f"files/{job}/vamped.wav", "image": f"files/{job}/vamped.png"}


def plot_spectrogram(path: Path, wav: torch.Tensor, rate: int, title: str) -> None:
    """A log-magnitude spectrogram (dB, 40 ms Hann windows, 10 ms hop) of the channel mean of [C, T], PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = wav.float().mean(dim=0)
    n_fft = 1 << max(6, int(math.ceil(math.log2(0.04 * rate))))
    hop = max(1, rate // 100)
    if x.numel() < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.numel()))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-5))
    figure = Figure(figsize=(5.0, 2.6), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    image = ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-100, vmax=0,
                      extent=(0.0, x.numel() / rate, 0.0, rate / 2000))
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("frequency (kHz)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title[:70], fontsize=9)
    figure.colorbar(image, ax=ax, label="dB")
    figure.savefig(path, format="png", dpi=80)
