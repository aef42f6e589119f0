"""Vamping: fill the masked tokens of any length of audio with a coarse and a coarse-to-fine masked model.

Past a model's training length the tokens are cut into windows that overlap by ``overlap`` frames; each
window after the first is prompted by the previous window's output on the overlap (those frames are kept,
not re-generated), so consecutive windows agree exactly where they meet and the prompt carries the context
across the seam (VampNet's users' top request: its model stops at 10 s). The coarse model fills the first
``Nc`` codebooks; the coarse-to-fine model then fills the fine codebooks of every frame whose coarse
tokens changed or whose fine tokens were masked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from funcodec_lite.codec.loading import load_model, model_id
from funcodec_lite.lm.masked import MaskedLM
from funcodec_lite.lm.maskgit import MaskGITConfig, maskgit_generate
from funcodec_lite.lm.vampnet import VampNetLM
from funcodec_lite.utils.weights import load_model_dir, read_model_config, read_provenance

# the masked token models `codec vamp` runs: ours and VampNet's own (codec convert --from vampnet)
MASKED_KINDS = (MaskedLM.model_kind, VampNetLM.model_kind)


@dataclass
class VampConfig:
    """Args:
        window: frames per window of the coarse model (its training length; 0: one window).
        overlap: frames each window takes over from the previous one as its prompt.
        c2f_window, c2f_overlap: the same for the coarse-to-fine model.
        maskgit: decoding settings (steps, temperatures, filtering, guidance).
    """

    window: int = 500
    overlap: int = 100
    c2f_window: int = 150
    c2f_overlap: int = 30
    maskgit: MaskGITConfig = field(default_factory=MaskGITConfig)

    @classmethod
    def for_window(cls, window: int, maskgit: MaskGITConfig) -> VampConfig:
        """One window length for both models, each window prompted by the last fifth of the previous."""
        return cls(window=window, overlap=window // 5, c2f_window=window, c2f_overlap=window // 5,
                   maskgit=maskgit)

    def __post_init__(self) -> None:
        for window, overlap in ((self.window, self.overlap), (self.c2f_window, self.c2f_overlap)):
            if window and not 0 <= overlap < window:
                raise ValueError(f"need 0 <= overlap < window, got {overlap} and {window}")


def window_starts(frames: int, window: int, overlap: int) -> list[int]:
    """First frame of each window covering ``frames`` frames (0 or ``window`` >= frames: one window)."""
    if not window or frames <= window:
        return [0]
    starts = list(range(0, frames - window, window - overlap))
    return starts + [frames - window] if starts[-1] + window < frames else starts


@torch.no_grad()
def fill_windows(model: MaskedLM, codes: torch.Tensor, mask: torch.Tensor, window: int, overlap: int,
                 config: MaskGITConfig, labels: torch.Tensor | None = None,
                 generator: torch.Generator | None = None,
                 trace: list | None = None) -> torch.Tensor:
    """MaskGIT over windows of codes [B, K, N] with mask [B, K, N] (True = generate); returns the codes.

    Each window after the first keeps the frames it shares with the output so far (the previous window's
    overlap) as its prompt. ``trace`` (optional) receives (start, window output) per window.
    """
    out = codes.clone()
    mask = mask.clone()
    n = codes.shape[-1]
    done = 0  # frames [0, done) are final
    for start in window_starts(n, window, overlap):
        stop = min(n, start + window) if window else n
        piece_mask = mask[:, :, start:stop].clone()
        piece_mask[:, :, : max(0, done - start)] = False  # already generated: the prompt of this window
        filled = maskgit_generate(model, out[:, :, start:stop], piece_mask, config, labels,
                                  generator=generator).codes
        out[:, :, start:stop] = filled
        done = stop
        if trace is not None:
            trace.append((start, filled.clone()))
    return out


@torch.no_grad()
def vamp(coarse: MaskedLM, c2f: MaskedLM | None, codes: torch.Tensor, mask: torch.Tensor,
         config: VampConfig | None = None, labels: torch.Tensor | None = None,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Codes [B, K, N] with the masked ones (mask [B, K, N], True = generate) generated.

    Returns [B, K', N]: all K codebooks with a coarse-to-fine model (K' = its n_q), else the coarse
    model's ``Nc`` only.
    """
    config = config or VampConfig()
    nc = coarse.config.n_q
    if codes.shape[1] < nc:
        raise ValueError(f"the coarse model needs {nc} codebooks, the codes have {codes.shape[1]}")
    result = fill_windows(coarse, codes[:, :nc], mask[:, :nc], config.window, config.overlap, config.maskgit,
                          labels, generator)
    if c2f is None:
        return result
    k = c2f.config.n_q
    if c2f.config.n_conditioning != nc or codes.shape[1] < k:
        raise ValueError(f"the coarse-to-fine model reads {c2f.config.n_conditioning} coarse codebooks and "
                         f"makes {k}; the coarse model makes {nc} and the codes have {codes.shape[1]}")
    full = torch.cat([result, codes[:, nc:k]], dim=1)
    changed = (result != codes[:, :nc]).any(dim=1) | mask[:, :nc].any(dim=1)  # [B, N]
    fine = mask[:, nc:k] | changed[:, None]
    fine_mask = torch.cat([torch.zeros_like(mask[:, :nc]), fine], dim=1)
    return fill_windows(c2f, full, fine_mask, config.c2f_window, config.c2f_overlap, config.maskgit, labels,
                        generator)


def load_masked_models(model_dir: str | os.PathLike, c2f_dir: str | os.PathLike | None,
                       codec_dir: str | os.PathLike | None, device: torch.device) -> tuple:
    """The models of a vamp: (coarse, c2f or None, codec, the coarse model's provenance), on ``device``.

    Args:
        model_dir: the coarse masked model (``masked_lm`` or ``vampnet_lm``, no conditioning codebooks).
        c2f_dir: the coarse-to-fine masked model (None: coarse codebooks only).
        codec_dir: the codec (None: the one the coarse model's provenance names, else the shipped model).

    Raises:
        ValueError: one line for models that do not fit together (another kind, a coarse-to-fine model
            given as the coarse one, tokens of another codec, conditioning codebooks that do not match).
    """
    kind, config = read_model_config(model_dir)
    if kind not in MASKED_KINDS:
        raise ValueError(f"{model_dir}: a {kind} model directory, not a masked token model")
    if config.get("n_conditioning", 0):
        raise ValueError(f"{model_dir}: a coarse-to-fine model; give the coarse model as --model and this "
                         "one as --c2f")
    provenance = read_provenance(model_dir)
    if "tokens" not in provenance:
        raise ValueError(f"{model_dir}: no record of the codec its tokens came from (provenance.json)")
    coarse = load_model_dir(model_dir, kind).to(device)
    codec = load_model(codec_dir or provenance.get("codec") or "default", device=device)
    if model_id(codec) != provenance["tokens"]["model_id"]:
        raise ValueError(f"{model_dir} was trained on tokens of codec {provenance['tokens']['model_id']}, "
                         f"but the codec given is {model_id(codec)}")
    c2f = None
    if c2f_dir:
        c2f_kind, _ = read_model_config(c2f_dir)
        if c2f_kind not in MASKED_KINDS:
            raise ValueError(f"{c2f_dir}: a {c2f_kind} model directory, not a masked token model")
        c2f = load_model_dir(c2f_dir, c2f_kind).to(device)
        c2f_tokens = read_provenance(c2f_dir).get("tokens", {}).get("model_id")
        if c2f_tokens != provenance["tokens"]["model_id"]:
            raise ValueError(f"{c2f_dir} was trained on tokens of codec {c2f_tokens}, not the coarse model's")
        if c2f.config.n_conditioning != coarse.config.n_q:
            raise ValueError(f"{c2f_dir} reads {c2f.config.n_conditioning} coarse codebooks; the coarse "
                             f"model makes {coarse.config.n_q}")
    return coarse, c2f, codec, provenance


def rhythm_frames(wav: torch.Tensor, rate: int, frame_rate: float, spec) -> tuple[list | None, list | None]:
    """Onset and beat frames of each channel [C, T], computed only when the mask spec asks for them."""
    from funcodec_lite.audio.rhythm import detect_onsets, track_beats
    from funcodec_lite.lm.prompts import times_to_frames

    onsets = beats = None
    if spec.needs_onsets:
        onsets = [times_to_frames(detect_onsets(channel, rate), frame_rate) for channel in wav]
    if spec.needs_beats:
        beats = [times_to_frames(track_beats(channel, rate), frame_rate) for channel in wav]
    return onsets, beats


@torch.no_grad()
def vamp_audio(coarse: MaskedLM, c2f: MaskedLM | None, codec, wav: torch.Tensor, rate: int, spec,
               config: VampConfig, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Vamps a waveform: each channel encoded on its own with the (mono) codec, the tokens ``spec`` masks
    regenerated, decoded back to the input's rate and length.

    Args:
        codec: the mono codec the models were trained on.
        wav (torch.Tensor): audio [C, T] at ``rate``.
        spec: a parsed mask spec (`funcodec_lite.lm.mask_spec.parse_mask_spec`).

    Returns:
        (audio float32 [C, T] in [-1, 1], mask bool [C, K, N]: True where a token was generated).
    """
    from funcodec_lite.audio.io import resample

    device = next(coarse.parameters()).device
    channels, length = wav.shape
    mono = resample(wav, rate, codec.sample_rate)  # [C, T'] each channel coded on its own
    codes = codec.encode(mono[:, None].to(device))  # [C, n_q, N]
    onsets, beats = rhythm_frames(wav, rate, codec.frame_rate, spec)
    k = c2f.config.n_q if c2f is not None else coarse.config.n_q
    mask = spec.build(channels, k, codes.shape[-1], codec.frame_rate, generator, onsets, beats).to(device)
    out = vamp(coarse, c2f, codes[:, :k], mask, config, labels, generator)
    audio = codec.decode(out, length=mono.shape[-1])[:, 0].float().cpu()  # [C, T']
    audio = resample(audio, codec.sample_rate, rate)[:, :length]
    if audio.shape[-1] < length:
        audio = torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))
    return audio.clamp(-1, 1), mask.cpu()
