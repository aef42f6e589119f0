"""``codec vamp``: vary, inpaint or compress audio with a masked token model (VampNet-style prompts).

The input is encoded with the model's codec, the mask spec (``funcodec_lite/lm/mask_spec.py``: e.g.
``periodic:7,width:1 & upper:4`` or a preset such as ``beat-driven``) chooses which tokens to regenerate,
the coarse (and coarse-to-fine) models fill them by MaskGIT decoding in windows, and the result is decoded
back to the input's length, rate and channel count.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from funcodec_lite.cli.common import UsageError, pick_device
from funcodec_lite.lm.vamp import load_masked_models


def cmd_vamp(args: argparse.Namespace) -> int:
    """Regenerate the masked tokens of an audio file and write the result (same length, rate, channels)."""
    from funcodec_lite.audio.io import load_audio, save_audio
    from funcodec_lite.lm.mask_spec import parse_mask_spec
    from funcodec_lite.lm.maskgit import MaskGITConfig
    from funcodec_lite.lm.vamp import VampConfig, vamp_audio

    spec = parse_mask_spec(args.mask)  # a bad spec fails before anything is loaded
    if args.window_seconds <= 0:
        raise UsageError(f"--window-seconds must be > 0, got {args.window_seconds}")
    device = pick_device(args.device)
    coarse, c2f, codec, provenance = load_masked_models(args.model, args.c2f, args.codec, device)
    if codec.channels != 1:
        raise UsageError("codec vamp works with mono codecs (each channel of the input is vamped on its own)")
    wav, rate = load_audio(args.input)
    channels, length = wav.shape
    generator = torch.Generator().manual_seed(args.seed)
    config = VampConfig.for_window(max(1, round(args.window_seconds * codec.frame_rate)),
                                   MaskGITConfig(steps=args.steps, temperature=args.temperature,
                                                 mask_temperature=args.mask_temperature))
    labels = _labels(args.class_name, provenance, channels, device)
    audio, mask = vamp_audio(coarse, c2f, codec, wav, rate, spec, config, labels, generator)
    save_audio(args.output, audio, rate)
    kept = int((~mask).sum())
    kept_per_codebook = (~mask).sum(dim=(0, 2)).tolist()  # mask [C, K, N]
    bits = sum(n * math.log2(size) for n, size in zip(kept_per_codebook, codec.codebook_sizes))
    kbps = bits / (length / rate) / 1000 / channels
    print(f"codec vamp: {mask.numel() - kept} of {mask.numel()} tokens generated ({kbps:.3f} kbps kept per "
          f"channel) -> {args.output}")
    return 0


def _labels(name: str | None, provenance: dict, batch: int, device: torch.device) -> torch.Tensor | None:
    if name is None:
        return None
    names = provenance.get("class_names") or []
    if name not in names:
        raise UsageError(f"unknown class {name!r}; known: {', '.join(names) or 'none'}")
    return torch.full((batch,), names.index(name), device=device)


def register(commands: argparse._SubParsersAction) -> None:
    vamp_cmd = commands.add_parser("vamp", help=cmd_vamp.__doc__, description=cmd_vamp.__doc__)
    vamp_cmd.add_argument("input", type=Path, help="input audio")
    vamp_cmd.add_argument("output", type=Path, help="output audio (.wav)")
    vamp_cmd.add_argument("--model", required=True, help="the coarse masked model's directory")
    vamp_cmd.add_argument("--c2f", help="the coarse-to-fine masked model's directory (else: coarse codebooks "
                          "only)")
    vamp_cmd.add_argument("--mask", required=True, help="mask spec or preset, e.g. 'periodic:7,width:1 & "
                          "upper:4', 'beat-driven', 'inpaint-1s'")
    vamp_cmd.add_argument("--codec", help="codec model directory (default: the model's own)")
    vamp_cmd.add_argument("--steps", type=int, default=24, help="MaskGIT steps (12-36)")
    vamp_cmd.add_argument("--temperature", type=float, default=1.0)
    vamp_cmd.add_argument("--mask-temperature", type=float, default=10.5)
    vamp_cmd.add_argument("--window-seconds", type=float, default=10.0, help="frames per window (the models' "
                          "training length); longer audio is vamped in overlapping windows")
    vamp_cmd.add_argument("--class", dest="class_name", help="class (class-conditional models)")
    vamp_cmd.add_argument("--seed", type=int, default=0)
    vamp_cmd.add_argument("--device", help="cpu, cuda or cuda:N")
    vamp_cmd.set_defaults(func=cmd_vamp)
