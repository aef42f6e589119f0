"""``codec vocoder train|resynth``: train any vocoder kind on a Kaldi data directory; mel -> audio of a file.

``codec vocoder train --kind wavenet --preset tiny --data-dir data/train --exp-dir exp/wavenet`` trains
through the engine (checkpoints, ``--resume``, ``accelerate launch`` for several GPUs) and writes the model
directory ``exp/wavenet/model``; ``codec vocoder resynth --model exp/wavenet/model in.wav out.wav`` computes
the log-mel of ``in.wav`` with the vocoder's front end and synthesizes it back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from funcodec_lite.cli.common import UsageError


def _front_end(sample_rate: int):
    from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig

    return FoleyMel(FoleyMelConfig(sample_rate=sample_rate, num_samples=None))


def cmd_train(args: argparse.Namespace) -> int:
    """Train a vocoder of any kind on the utterances of a Kaldi data directory."""
    from funcodec_lite import load_model_dir
    from funcodec_lite.utils.config import load_yaml
    from funcodec_lite.vocoders.data import load_vocoder_data
    from funcodec_lite.vocoders.training import loop_config, train_any_vocoder, vocoder_config

    train = load_yaml(Path(args.train_config).read_text(encoding="utf-8")) if args.train_config else {}
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v is not None}
    train = {**(train or {}), **overrides}
    if args.kind == "student" and not args.teacher:
        raise UsageError("--kind student needs --teacher: a trained WaveNet model directory")
    loop = loop_config(args.kind, train)
    config = vocoder_config(args.kind, args.preset)
    teacher = load_model_dir(args.teacher, "wavenet").eval() if args.kind == "student" else None
    loss = None
    if args.loss_config:
        if args.kind != "hifigan":
            raise UsageError("--loss-config is HiFi-GAN's (its discriminators and loss weights)")
        from funcodec_lite.utils.config import build_dataclass
        from funcodec_lite.vocoders.hifigan_loss import HiFiGANLossConfig

        loss = build_dataclass(HiFiGANLossConfig, load_yaml(Path(args.loss_config).read_text()) or {}, "loss")
    mel = _front_end(args.sample_rate)
    frames = loop.segment_frames if loop is not None else 32
    mels, wavs = load_vocoder_data(args.data_dir, mel, chunk_frames=max(args.chunk_frames, frames))
    print(f"codec vocoder train: {args.kind} {args.preset} on {len(mels)} chunks of {mels.shape[-1]} frames")
    train_any_vocoder(args.kind, config, mels, wavs, loop, args.exp_dir, loss, resume=args.resume,
                      provenance={"data": str(args.data_dir), "chunks": len(mels),
                                  "sample_rate": args.sample_rate}, teacher=teacher)
    print(f"codec vocoder train: model -> {Path(args.exp_dir) / 'model'}")
    return 0


def cmd_resynth(args: argparse.Namespace) -> int:
    """Log-mel of an audio file through a trained vocoder, written as audio."""
    from funcodec_lite.audio.io import load_audio, save_audio
    from funcodec_lite.foley.generator import remove_dc
    from funcodec_lite.vocoders.training import load_any_vocoder

    model = load_any_vocoder(args.model, for_inference=True)
    kind = model.model_kind
    mel = _front_end(args.sample_rate)
    wav, _ = load_audio(args.input, args.sample_rate, channels=1)
    frames = wav.shape[-1] // mel.config.hop_length
    if frames < 1:
        raise UsageError(f"{args.input}: shorter than one frame")
    with torch.no_grad():
        out = model.synthesize(mel(wav[:, : frames * mel.config.hop_length]), args.temperature,
                               torch.Generator().manual_seed(args.seed))[0]
    save_audio(args.output, remove_dc(out, args.sample_rate).clamp(-1, 1), args.sample_rate)
    print(f"codec vocoder resynth: {kind} -> {args.output}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    vocoder = commands.add_parser("vocoder", help="train or run a mel vocoder (any kind)")
    sub = vocoder.add_subparsers(dest="vocoder_command", required=True)
    train = sub.add_parser("train", help=cmd_train.__doc__, description=cmd_train.__doc__)
    train.add_argument("--kind", required=True,
                       help="hifigan, wavenet, waveglow, flowavenet, student or griffinlim")
    train.add_argument("--preset", default="tiny", help="the kind's preset (default: tiny)")
    train.add_argument("--data-dir", required=True, help="Kaldi data directory (wav.scp)")
    train.add_argument("--exp-dir", required=True, help="checkpoints, logs and the model directory")
    train.add_argument("--train-config", help="YAML of the kind's training loop (steps, batch_size, lr, ...)")
    train.add_argument("--steps", type=int, help="training steps (overrides the YAML)")
    train.add_argument("--batch-size", type=int, help="examples per step (overrides the YAML)")
    train.add_argument("--loss-config", help="HiFi-GAN: YAML of its loss (discriminators, weights)")
    train.add_argument("--teacher", help="the student's trained WaveNet model directory")
    train.add_argument("--sample-rate", type=int, default=22050)
    train.add_argument("--chunk-frames", type=int, default=64, help="frames per chunk of an utterance")
    train.add_argument("--resume", action="store_true")
    train.set_defaults(func=cmd_train)
    resynth = sub.add_parser("resynth", help=cmd_resynth.__doc__, description=cmd_resynth.__doc__)
    resynth.add_argument("input", help="audio file")
    resynth.add_argument("output", help="output .wav")
    resynth.add_argument("--model", required=True, help="a vocoder model directory")
    resynth.add_argument("--sample-rate", type=int, default=22050)
    resynth.add_argument("--temperature", type=float, default=1.0)
    resynth.add_argument("--seed", type=int, default=0)
    resynth.set_defaults(func=cmd_resynth)
