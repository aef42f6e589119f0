"""``codec lm``: train a token language model on codec tokens, and generate audio with one.

``codec lm train --config lm.yaml --tokens DIR --exp-dir EXP`` trains on a token directory (``codec
tokenize``), optionally class-conditional (``--labels utt2class``), or on packed task examples
(``--examples``, e.g. the TTS recipe's). ``codec lm generate --model EXP/model --seconds S out.wav``
samples, continues an audio prompt (``--prompt``), speaks a text (``--text``, with VALL-E's NAR stage as
``--nar``) or a class (``--class``), and decodes with the LM's codec.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from funcodec_lite.cli.common import UsageError, pick_device


def cmd_train(args: argparse.Namespace) -> int:
    """Train an autoregressive, non-autoregressive or multi-scale token LM on the engine."""
    from funcodec_lite.lm.data import ExampleDataset, heldout_batches, read_labels, token_examples
    from funcodec_lite.lm.training import LMTrainConfig, train_lm

    config = LMTrainConfig.from_yaml(args.config)
    n_q = config.data.n_q
    labels = read_labels(args.labels) if args.labels else None
    train, info, class_names = token_examples(args.tokens, n_q, labels)
    valid = []
    if args.valid_tokens:
        valid, _, _ = token_examples(args.valid_tokens, n_q, labels, class_names, model_id=info.model_id)
    fixed = {"n_q": n_q, "card": info.codebook_size}
    if class_names:
        fixed["n_classes"] = len(class_names)
    dataset = ExampleDataset(train, config.data.segment_frames, config.data.prompt_frames, config.train.seed)
    batches = heldout_batches(valid, config.train.batch_size, config.data.segment_frames,
                              config.data.prompt_frames, config.data.valid_examples)
    provenance = {"data": {"tokens": str(args.tokens), "examples": len(train)}, "tokens": info.to_dict(),
                  "codec": args.codec, "class_names": class_names}
    train_lm(config, fixed, dataset, batches, args.exp_dir, resume=args.resume, provenance=provenance,
             max_steps=args.max_steps)
    print(f"codec lm train: model in {Path(args.exp_dir) / 'model'}")
    return 0


def _load_lm(directory: str) -> tuple[torch.nn.Module, dict]:
    from funcodec_lite.utils.weights import load_model_dir, read_model_config, read_provenance

    kind, _ = read_model_config(directory)
    if kind not in ("codec_lm", "multiscale_lm"):
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

    if args.seconds <= 0:
        raise UsageError(f"--seconds must be > 0, got {args.seconds}")
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
    if args.prompt:
        wav, _ = load_audio(args.prompt, codec.sample_rate, channels=codec.channels)
        with torch.no_grad():
            prompt = codec.encode(wav[None].to(device))[:, : model.config.n_q]
    frames = max(1, round(args.seconds * codec.frame_rate))
    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              cfg_coef=args.cfg)
    generator = torch.Generator().manual_seed(args.seed)
    sampler = generate_multiscale if model.model_kind == "multiscale_lm" else generate
    out = sampler(model, n, frames, sampling, prompt=prompt, labels=labels, phonemes=phonemes,
                  phoneme_lengths=lengths, generator=generator)
    length = int(out.frames[0])
    if length == 0:
        raise ValueError("the model ended the sequence at once (EOS at the first frame): no audio written; "
                         "try another --seed or a higher --temperature")
    codes = out.codes[:, :, :length].to(device)
    if args.nar:
        codes = _fill_upper(args.nar, codes, prompt, phonemes, lengths, labels, codec.n_q, device)
    with torch.no_grad():
        audio = codec.decode(codes)[0].float().cpu().clamp(-1, 1)
    save_audio(args.out, audio, codec.sample_rate)
    print(f"codec lm generate: {length} frames ({length / codec.frame_rate:.2f} s, stop: {out.reasons[0]}, "
          f"{codes.shape[1]} codebooks) -> {args.out}")
    return 0


def _phonemes(text: str, provenance: dict, language: str | None,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    from funcodec_lite.data.phonemes import PhonemeVocabulary, phonemize

    symbols = provenance.get("phoneme_symbols")
    if not symbols:
        raise UsageError("this model was not trained on text (--text needs a phoneme-conditioned model)")
    vocab = PhonemeVocabulary(symbols)
    ids = vocab.encode(phonemize([text], language or provenance.get("language", "en"))[0])
    return ids[None].to(device), torch.tensor([len(ids)], device=device)


def _fill_upper(directory: str, codes: torch.Tensor, prompt: torch.Tensor | None, phonemes, lengths, labels,
                n_q: int, device: torch.device) -> torch.Tensor:
    """Codebooks 1..K-1 by VALL-E's NAR model after the AR model's codebook 0."""
    from funcodec_lite.utils.weights import load_model_dir

    nar = load_model_dir(directory, "nar_lm").to(device)
    k = nar.config.n_q
    tp = 0 if prompt is None else prompt.shape[-1]
    full = torch.zeros(1, k, tp + codes.shape[-1], dtype=torch.long, device=device)
    if prompt is not None:
        if prompt.shape[1] < k:
            raise UsageError(f"--nar models {k} codebooks but the prompt was encoded with {prompt.shape[1]}")
        full[:, :, :tp] = prompt[:, :k]
    full[:, 0, tp:] = codes[:, 0]
    filled = nar.fill(full, torch.tensor([full.shape[-1]], device=device), torch.tensor([tp], device=device),
                      labels, phonemes, lengths)
    return filled[:, : min(k, n_q), tp:]


def register(commands: argparse._SubParsersAction) -> None:
    lm = commands.add_parser("lm", help="token language models: train one, generate audio with one")
    sub = lm.add_subparsers(dest="lm_command", required=True)
    train = sub.add_parser("train", help=cmd_train.__doc__, description=cmd_train.__doc__)
    train.add_argument("--config", required=True, help="lm.yaml: model (kind and settings), train, data")
    train.add_argument("--tokens", required=True, help="token directory (codec tokenize): <utt>.npz")
    train.add_argument("--valid-tokens", help="held-out token directory (NLL per codebook in valid.jsonl)")
    train.add_argument("--labels", help="utt2class file: class-conditional training")
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
    gen.add_argument("--nar", help="VALL-E's non-autoregressive model: fills codebooks 1..K-1")
    gen.add_argument("--codec", help="codec model directory (default: the one the LM was trained for)")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--top-p", type=float, default=0.0)
    gen.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance weight (1: none)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", help="cpu, cuda or cuda:N")
    gen.set_defaults(func=cmd_generate)
