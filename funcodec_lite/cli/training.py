"""``codec demo``, ``codec presets`` and ``codec train``."""

from __future__ import annotations

import argparse
import time

import torch

from funcodec_lite.codec.config import list_presets

# one time-domain model at 24 kHz (EnCodec's), one at 16 kHz (FunCodec's), one frequency-domain (FreqCodec)
DEMO_PRESETS = ("encodec_24khz", "funcodec_ds320_16k", "freqcodec_16k")


def _demo_signal(sample_rate: int, seconds: float, channels: int, seed: int = 0) -> torch.Tensor:
    """A voiced-speech-like test signal: a gliding harmonic tone with vibrato, syllable envelope and noise.

    Returns [1, channels, T] in [-1, 1].
    """
    generator = torch.Generator().manual_seed(seed)
    base, glide, rate = (torch.rand(3, generator=generator) * torch.tensor([120.0, 60.0, 1.5])).tolist()
    t = torch.arange(int(sample_rate * seconds)) / sample_rate
    vibrato = 3 * torch.sin(2 * torch.pi * 5.5 * t)
    f0 = 90 + base + glide * torch.sin(2 * torch.pi * (0.3 + rate) * t) + vibrato
    phase = 2 * torch.pi * torch.cumsum(f0, 0) / sample_rate
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 - torch.cos(2 * torch.pi * 3.0 * t)).clamp(min=0.05)
    wav = 0.25 * envelope * voiced + 0.01 * torch.randn(t.shape, generator=generator)
    return wav.expand(1, channels, -1).clone()


def cmd_demo(args: argparse.Namespace) -> int:
    """Encode and decode generated audio with freshly initialised models of each preset."""
    from funcodec_lite import Codec, CodecConfig
    from funcodec_lite.utils.profile import count_parameters

    if not 0 < args.seconds <= 600:
        raise ValueError(f"--seconds must be in (0, 600], got {args.seconds:g}")
    torch.manual_seed(0)
    presets = args.preset or list(DEMO_PRESETS)
    print(f"funcodec_lite demo: {args.seconds:g} s of generated audio through freshly initialised models\n"
          "(random weights, codebooks k-means-fitted to other generated clips): shapes, bit rates, speed.\n"
          "Untrained models do not reproduce audio; egs/ recipes train them.")
    for name in presets:
        config = CodecConfig.from_yaml(name)
        config.quantizer.kmeans_iters = 10  # a quick fit is enough for a demo
        codec = Codec(config)
        wav = _demo_signal(codec.sample_rate, args.seconds, codec.channels)
        # k-means needs more frames than codes, or later layers see all-zero residuals.
        fit = torch.cat([_demo_signal(codec.sample_rate, 8.0, codec.channels, seed) for seed in range(1, 5)])
        with torch.no_grad():
            codec.train()(fit, n_q=codec.n_q)  # k-means initialisation of the codebooks on other clips
        codec.eval()
        codec.fold_weight_norm()
        print(f"\n[{name}] {count_parameters(codec) / 1e6:.2f} M parameters, {codec.sample_rate} Hz, "
              f"{codec.frame_rate:g} frames/s, {codec.n_q} codebooks x {codec.codebook_size}")
        print(f"  input wav {tuple(wav.shape)}")
        for n_q in (codec.n_q_for_bandwidth(1.5), codec.n_q // 4, codec.n_q):
            with torch.inference_mode():
                start = time.perf_counter()
                codes = codec.encode(wav, n_q=n_q)
                encoded = time.perf_counter()
                out = codec.decode(codes, length=wav.shape[-1])
                decoded = time.perf_counter()
            print(f"  n_q={n_q:2d} ({codec.bandwidth(n_q):5.2f} kbps): codes {tuple(codes.shape)} -> wav "
                  f"{tuple(out.shape)}; encode {encoded - start:.3f} s "
                  f"({args.seconds / (encoded - start):.1f}x real time), decode {decoded - encoded:.3f} s "
                  f"({args.seconds / (decoded - encoded):.1f}x)")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    """List the shipped model configurations."""
    from funcodec_lite import Codec, CodecConfig
    from funcodec_lite.utils.profile import count_parameters

    for name in list_presets():
        codec = Codec(CodecConfig.from_yaml(name))
        print(f"{name:24s} {codec.config.arch:9s} {codec.sample_rate:6d} Hz {codec.frame_rate:5g} frames/s "
              f"{count_parameters(codec.encoder) + count_parameters(codec.decoder):>11,d} params")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a codec (GAN) on Kaldi data directories; run under `accelerate launch` for several processes."""
    from pathlib import Path

    import yaml

    from funcodec_lite.codec.training.config import TrainConfig
    from funcodec_lite.codec.training.finetune import finetune_config
    from funcodec_lite.codec.training.task import Trainer

    if args.init_from is not None:
        config = finetune_config(args.config, args.set, args.init_from)
    else:
        config = TrainConfig.from_yaml(args.config, args.set)
    exp_dir = Path(args.exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    with open(exp_dir / "train_config.yaml", "w", encoding="utf-8") as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)
    trainer = Trainer(config, args.train, args.valid, exp_dir, init_from=args.init_from)
    trainer.fit(max_steps=args.max_steps, resume=args.resume)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Adds the demo, train and presets commands."""
    demo = commands.add_parser("demo", help=cmd_demo.__doc__)
    demo.add_argument("--preset", action="append", choices=list_presets(),
                      help=f"preset to run (repeatable; default: {', '.join(DEMO_PRESETS)}: two "
                      "time-domain models and one frequency-domain model)")
    demo.add_argument("--seconds", type=float, default=3.0, help="length of the generated clip")
    demo.set_defaults(func=cmd_demo)
    train = commands.add_parser("train", help=cmd_train.__doc__)
    train.add_argument("--config", required=True, help="training YAML (codec, discriminator, loss, ...)")
    train.add_argument("--train", required=True, help="training data directory (wav.scp)")
    train.add_argument("--valid", help="validation data directory")
    train.add_argument("--exp-dir", required=True, help="experiment directory")
    train.add_argument("--max-steps", type=int, help="stop after this many steps (default: the config's)")
    train.add_argument("--resume", action="store_true",
                       help="continue from the newest checkpoint (wins over --init-from when there is one)")
    train.add_argument("--init-from", metavar="MODEL_DIR",
                       help="start from a codec model directory's weights and codebooks, with fresh "
                       "optimizers at step 0; its config.yaml gives the codec section (the training YAML's, "
                       "if any, must agree)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set optim.lr=1e-4 (repeatable)")
    train.set_defaults(func=cmd_train)
    presets = commands.add_parser("presets", help=cmd_presets.__doc__)
    presets.set_defaults(func=cmd_presets)
