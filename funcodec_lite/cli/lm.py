"""``codec lm``: train a token language model on codec tokens, and generate audio with one.

``codec lm train --config lm.yaml --tokens DIR --exp-dir EXP`` trains on a token directory (``codec
tokenize``), optionally class-conditional (``--labels utt2class``), or on packed task examples
(``--examples``, e.g. the TTS recipe's). ``codec lm generate --model EXP/model --seconds S out.wav``
samples, continues an audio prompt (``--prompt``), speaks a text (``--text``, with VALL-E's NAR stage as
``--nar``) or a class (``--class``), and decodes with the LM's codec.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from funcodec_lite.cli.common import UsageError, pick_device

# The token LMs have no fixed context (rotary positions), so lengths are bounded by a sane maximum: one hour
# of audio (180,000 frames at 50 Hz). Without it, --seconds 1e9 tried to allocate 400 GB before failing.
MAX_SECONDS = 3600.0


def check_seconds(option: str, value: float) -> None:
    """A length option: finite, > 0 and at most `MAX_SECONDS`, or one `UsageError` line (exit 2)."""
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise UsageError(f"{option} must be > 0, finite and at most {MAX_SECONDS:g}, got {value:g}")


def cmd_train(args: argparse.Namespace) -> int:
    """Train an autoregressive, non-autoregressive or multi-scale token LM on the engine."""
    from funcodec_lite.lm.data import ExampleDataset, heldout_batches
    from funcodec_lite.lm.training import LMTrainConfig, train_lm

    if (args.tokens is None) == (args.examples is None):
        raise UsageError("give either --tokens DIR or --examples FILE")
    config = LMTrainConfig.from_yaml(args.config)
    n_q = config.data.n_q
    if args.tokens is not None:
        train, valid, info, fixed, extra = _token_data(args, n_q)
    else:
        train, valid, info, fixed, extra = _example_data(args, n_q)
    dataset = ExampleDataset(train, config.data.segment_frames, config.data.prompt_frames, config.train.seed)
    batches = heldout_batches(valid, config.train.batch_size, config.data.segment_frames,
                              config.data.prompt_frames, config.data.valid_examples)
    provenance = {"data": {"train": str(args.tokens or args.examples), "examples": len(train)},
                  "tokens": info, "codec": args.codec, **extra}
    codebooks = None
    if config.data.init_from_codec:
        from funcodec_lite.codec.loading import load_model, model_id
        from funcodec_lite.codec.model import Codec

        codec = load_model(args.codec)
        if model_id(codec) != info["model_id"]:
            raise UsageError(f"--codec {args.codec} is not the codec of the tokens ({info['model_id']})")
        if not isinstance(codec, Codec) or not hasattr(codec.quantizer, "layers"):
            raise UsageError(f"data.init_from_codec needs a funcodec_lite codec with RVQ codebooks; --codec "
                             f"{args.codec} is a {type(codec).model_kind!r} model "
                             "(set init_from_codec: false)")
        codebooks = torch.stack([layer.embed for layer in codec.quantizer.layers[:n_q]])
    train_lm(config, fixed, dataset, batches, args.exp_dir, resume=args.resume, provenance=provenance,
             max_steps=args.max_steps, codebooks=codebooks)
    print(f"codec lm train: model in {Path(args.exp_dir) / 'model'}")
    return 0


def _token_data(args: argparse.Namespace, n_q: int) -> tuple[list, list, dict, dict, dict]:
    """Examples from token directories (with class labels when ``--labels`` is given)."""
    from funcodec_lite.data.kaldi import read_table
    from funcodec_lite.lm.data import token_examples

    labels = read_table(args.labels) if args.labels else None
    train, info, class_names = token_examples(args.tokens, n_q, labels)
    valid = []
    if args.valid_tokens:
        valid, _, _ = token_examples(args.valid_tokens, n_q, labels, class_names, model_id=info.model_id)
    fixed = {"n_q": n_q, "card": info.codebook_size}
    if class_names:
        fixed["n_classes"] = len(class_names)
    return train, valid, info.to_dict(), fixed, {"class_names": class_names}


def _example_data(args: argparse.Namespace, n_q: int) -> tuple[list, list, dict, dict, dict]:
    """Packed task examples (``lm/examples.py``), phoneme-conditioned when they carry phonemes."""
    from funcodec_lite.data.phonemes import PhonemeVocabulary
    from funcodec_lite.lm.examples import ExampleSet

    sets = [ExampleSet.load(args.examples)] + ([ExampleSet.load(args.valid_examples)]
                                               if args.valid_examples else [])
    if len({s.model_id for s in sets}) > 1:
        raise ValueError(f"{args.valid_examples}: tokens of codec {sets[1].model_id}, not {sets[0].model_id}")
    if sets[0].num_codebooks < n_q:
        raise ValueError(f"{args.examples}: {sets[0].num_codebooks} codebooks, the LM models {n_q}")
    cut = [[_first_codebooks(e, n_q) for e in s.examples] for s in sets]
    info = {"model_id": sets[0].model_id, "frame_rate": sets[0].frame_rate,
            "codebook_size": sets[0].codebook_size, "n_q": n_q}
    fixed, extra = {"n_q": n_q, "card": sets[0].codebook_size}, {}
    if any(e.phonemes is not None for e in cut[0]):
        if not args.vocab:
            raise UsageError("these examples carry phonemes: give their vocabulary with --vocab")
        vocab = PhonemeVocabulary.load(args.vocab)
        fixed["n_phonemes"] = len(vocab)
        extra = {"phoneme_symbols": vocab.symbols, "language": args.language}
    return cut[0], cut[1] if len(cut) > 1 else [], info, fixed, extra


def _first_codebooks(example, n_q: int):
    from dataclasses import replace

    prompt = None if example.prompt is None else example.prompt[:n_q]
    return replace(example, target=example.target[:n_q], prompt=prompt)


def _load_lm(directory: str) -> tuple[torch.nn.Module, dict]:
    from funcodec_lite import load_model_dir
    from funcodec_lite.utils.weights import read_model_config, read_provenance

    kind, _ = read_model_config(directory)
    if kind not in ("codec_lm", "multiscale_lm", "masked_lm"):
        hint = " (give it as --nar beside the autoregressive model)" if kind == "nar_lm" else ""
        raise UsageError(f"{directory}: a {kind} model directory, not an autoregressive token LM{hint}")
    provenance = read_provenance(directory)
    if "tokens" not in provenance:
        raise UsageError(f"{directory}: no record of the codec its tokens came from (provenance.json)")
    return load_model_dir(directory), provenance


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate audio with a token LM: unconditionally, from a class, from text, or continuing a prompt."""
    from funcodec_lite.audio.io import load_audio, save_audio
    from funcodec_lite.codec.loading import load_model, model_id
    from funcodec_lite.lm.generate import SamplingConfig, generate
    from funcodec_lite.lm.multiscale import generate_multiscale

    check_seconds("--seconds", args.seconds)
    check_seconds("--window-seconds", args.window_seconds)
    if args.text is not None and not args.text.strip():
        raise UsageError("--text is empty")
    device = pick_device(args.device)
    model, provenance = _load_lm(args.model)
    tokens = provenance["tokens"]
    codec = load_model(args.codec or provenance.get("codec") or "default", device=device)
    if model_id(codec) != tokens["model_id"]:
        raise UsageError(f"{args.model} was trained on tokens of codec {tokens['model_id']}, but the codec "
                         f"given is {model_id(codec)}")
    model = model.to(device)
    n = 1
    labels = phonemes = lengths = prompt = None
    class_names = provenance.get("class_names") or []
    if args.class_name is not None:
        if args.class_name not in class_names:
            raise UsageError(f"unknown class {args.class_name!r}; known: {', '.join(class_names) or 'none'}")
        labels = torch.tensor([class_names.index(args.class_name)], device=device)
    if args.text is not None:
        phonemes, lengths = _phonemes(args.text, provenance, args.language, device)
    full_prompt = None
    if args.prompt:
        wav, _ = load_audio(args.prompt, codec.sample_rate, channels=codec.channels)
        with torch.no_grad():
            full_prompt = codec.encode(wav[None].to(device))  # every codebook: the NAR stage reads them all
        prompt = full_prompt[:, : model.config.n_q]
    frames = max(1, round(args.seconds * codec.frame_rate))
    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              cfg_coef=args.cfg)
    generator = torch.Generator().manual_seed(args.seed)
    if model.model_kind == "masked_lm":
        if args.text is not None:
            raise UsageError("masked models are not text-conditioned (--text)")
        out = _generate_masked(model, args, frames, codec.frame_rate, prompt, labels, generator)
    else:
        sampler = generate_multiscale if model.model_kind == "multiscale_lm" else generate
        out = sampler(model, n, frames, sampling, prompt=prompt, labels=labels, phonemes=phonemes,
                      phoneme_lengths=lengths, generator=generator)
    length = int(out.frames[0])
    if length == 0:
        raise ValueError("the model ended the sequence at once (EOS at the first frame): no audio written; "
                         "try another --seed or a higher --temperature")
    codes = out.codes[:, :, :length].to(device)
    if args.nar and model.model_kind != "masked_lm":  # VALL-E: codebooks 1..K-1 after codebook 0
        from funcodec_lite import load_model_dir

        nar = load_model_dir(args.nar, "nar_lm").to(device)
        codes = nar.continue_prompt(codes[:, 0], full_prompt, labels, phonemes, lengths)[:, : codec.n_q]
    with torch.no_grad():
        audio = codec.decode(codes)[0].float().cpu().clamp(-1, 1)
    save_audio(args.out, audio, codec.sample_rate)
    print(f"codec lm generate: {length} frames ({length / codec.frame_rate:.2f} s, stop: {out.reasons[0]}, "
          f"{codes.shape[1]} codebooks) -> {args.out}")
    return 0


def _generate_masked(model, args: argparse.Namespace, frames: int, frame_rate: float,
                     prompt: torch.Tensor | None, labels: torch.Tensor | None, generator: torch.Generator):
    """A masked model's generation: ``frames`` frames after the prompt (if any), all masked, by MaskGIT
    in windows of ``--window-seconds`` (``--nar`` is its coarse-to-fine model)."""
    from funcodec_lite import load_model_dir
    from funcodec_lite.lm.generate import Generation
    from funcodec_lite.lm.maskgit import MaskGITConfig
    from funcodec_lite.lm.vamp import VampConfig, vamp

    if model.config.n_conditioning:
        raise UsageError(f"{args.model}: a coarse-to-fine model; give the coarse model as --model and this "
                         "one as --nar")
    c2f = load_model_dir(args.nar, "masked_lm").to(next(model.parameters()).device) if args.nar else None
    k = c2f.config.n_q if c2f is not None else model.config.n_q
    tp = 0 if prompt is None else prompt.shape[-1]
    device = next(model.parameters()).device
    codes = torch.zeros(1, k, tp + frames, dtype=torch.long, device=device)
    mask = torch.ones_like(codes, dtype=torch.bool)
    if prompt is not None:
        codes[:, : prompt.shape[1], :tp] = prompt[:, :k]
        mask[:, :, :tp] = False
    config = VampConfig.for_window(max(1, round(args.window_seconds * frame_rate)),
                                   MaskGITConfig(steps=args.steps, temperature=args.temperature))
    out = vamp(model, c2f, codes, mask, config, labels, generator)[:, :, tp:]
    return Generation(out, torch.tensor([frames]), ["max_length"], args.steps)


def _phonemes(text: str, provenance: dict, language: str | None,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    from funcodec_lite.data.phonemes import PhonemeVocabulary, phonemize

    symbols = provenance.get("phoneme_symbols")
    if not symbols:
        raise UsageError("this model was not trained on text (--text needs a phoneme-conditioned model)")
    vocab = PhonemeVocabulary(symbols)
    ids = vocab.encode(phonemize([text], language or provenance.get("language", "en"))[0])
    return ids[None].to(device), torch.tensor([len(ids)], device=device)


def register(commands: argparse._SubParsersAction) -> None:
    lm = commands.add_parser("lm", help="token language models: train one, generate audio with one")
    sub = lm.add_subparsers(dest="lm_command", required=True)
    train = sub.add_parser("train", help=cmd_train.__doc__, description=cmd_train.__doc__)
    train.add_argument("--config", required=True, help="lm.yaml: model (kind and settings), train, data")
    train.add_argument("--tokens", help="token directory (codec tokenize): <utt>.npz")
    train.add_argument("--valid-tokens", help="held-out token directory (NLL per codebook in valid.jsonl)")
    train.add_argument("--labels", help="utt2class file: class-conditional training")
    train.add_argument("--examples", help="packed task examples (.npz, e.g. the TTS recipe's) instead of "
                       "--tokens")
    train.add_argument("--valid-examples", help="held-out packed task examples")
    train.add_argument("--vocab", help="phoneme vocabulary (JSON) of examples with phonemes")
    train.add_argument("--language", default="en-us", help="espeak-ng language of the phonemes (recorded "
                       "for generation from text)")
    train.add_argument("--codec", default="default", help="the codec the tokens came from (recorded for "
                       "generation; default: the shipped model)")
    train.add_argument("--exp-dir", required=True, help="experiment directory (model/, checkpoints/, logs)")
    train.add_argument("--max-steps", type=int, help="stop after this many steps (default: the config's)")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    train.set_defaults(func=cmd_train)
    gen = sub.add_parser("generate", help=cmd_generate.__doc__, description=cmd_generate.__doc__)
    gen.add_argument("out", help="output audio file (.wav)")
    gen.add_argument("--model", required=True, help="the LM's model directory")
    gen.add_argument("--seconds", type=float, required=True, help="length to generate at most")
    gen.add_argument("--prompt", help="audio to continue (encoded with the LM's codec)")
    gen.add_argument("--text", help="text to speak (phoneme-conditioned models)")
    gen.add_argument("--language", help="espeak-ng language of --text (default: the model's)")
    gen.add_argument("--class", dest="class_name", help="class to generate (class-conditional models)")
    gen.add_argument("--nar", help="VALL-E's non-autoregressive model (fills codebooks 1..K-1), or a masked "
                     "model's coarse-to-fine model")
    gen.add_argument("--steps", type=int, default=24, help="MaskGIT steps (masked models)")
    gen.add_argument("--window-seconds", type=float, default=10.0, help="window of masked models")
    gen.add_argument("--codec", help="codec model directory (default: the one the LM was trained for)")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--top-p", type=float, default=0.0)
    gen.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance weight (1: none)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", help="cpu, cuda or cuda:N")
    gen.set_defaults(func=cmd_generate)
