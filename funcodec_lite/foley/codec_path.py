"""The Foley recipe's codec-token path: codec -> tokens -> class-conditional token prior -> codec decoder.

Instead of the mel autoencoder, PixelSNAIL and a vocoder, a run with a ``codec_tokens`` section trains a
codec on the training clips (the codec trainer, `funcodec_lite.codec.training.task`), tokenizes the clips (the
tokenization job, `funcodec_lite.jobs.tokenize`), trains a class-conditional token model on the engine
(`funcodec_lite.lm.training`: ``masked_lm``, sampled with MaskGIT, or ``codec_lm``, sampled
autoregressively with a KV cache) and decodes sampled tokens with the codec.

The codec and its tokens depend only on the codec's settings and the training clips, so runs that share
both share them (a masked and an autoregressive prior on one codec): ``exp/codec_<hash>/`` (`codec_dir`;
the hash covers the ``codec`` settings and the training clips' ids, classes and bytes) holds ``model``,
``valid.json`` and ``tokens/{train,valid}/`` (token files + utt2class). Under ``exp/<run>/``:
``prior/{model,best,valid.json}`` and the clips of stage 6 (`funcodec_lite.foley.generation.stage_generate`,
which builds its generator with `build_codec_generator`).

Stages (run by ``egs/dcase_foley/run.sh`` when the config has ``codec_tokens``): ``python -m
funcodec_lite.foley.recipe {codec,tokens,token_prior,generate_codec} --config C --exp E``.
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

import torch

from funcodec_lite.codec.model import Codec
from funcodec_lite.foley.codec_path_config import (
    PRIOR_KINDS,
    CodecTokensConfig,
    codec_dir,
    codec_exp,
    codec_model_id,
    load_codec,
    load_config,
    prior_dir,
    require_model,
)
from funcodec_lite.foley.data import FoleyDataError, load_clips, read_foley_data_dir
from funcodec_lite.foley.mel import recipe_front_end
from funcodec_lite.foley.recipe_config import FoleyRunConfig
from funcodec_lite.lm.generate import SamplingConfig, generate
from funcodec_lite.lm.maskgit import MaskGITConfig, maskgit_generate
from funcodec_lite.utils.atomic import write_json
from funcodec_lite.utils.weights import load_model_dir, read_provenance

__all__ = ["CodecTokensConfig", "STAGES", "build_codec_generator", "reconstruct_clips", "sample_codec_tokens"]


# ---------------------------------------------------------------------------------------------- stages
def stage_codec(args: argparse.Namespace) -> None:
    """Trains the codec on ``data/train`` (validation on ``data/valid``) in `codec_exp`, unless a run with
    the same codec settings and training clips finished it already (``--resume`` continues its training);
    then writes its ``valid.json``: the recipe's log-mel L1 distance per class between the valid clips and
    their reconstructions from the prior's codebooks."""
    from funcodec_lite.codec.training.task import Trainer

    config = load_config(args)
    directory = codec_exp(args, config)
    if (directory / "valid.json").is_file() and not args.resume:
        print(f"reusing the codec of {directory} (delete it to retrain, or --resume to train on)")
        return
    valid = args.data / "valid"
    trainer = Trainer(config.codec, args.data / "train", valid if (valid / "wav.scp").is_file() else None,
                      directory)
    trainer.fit(resume=args.resume)
    codec = load_codec(args, config)
    report = {"parameters": sum(p.numel() for p in codec.parameters()), "steps": trainer.step,
              "train_minutes": round(trainer.train_seconds / 60, 2), "n_q": config.n_q,
              "frame_rate": codec.frame_rate, "kbps": codec.bandwidth(config.n_q)}
    if (valid / "wav.scp").is_file():
        report["valid_mel_l1"] = mel_distance_per_class(codec, config.n_q, valid)
    write_json(directory / "valid.json", report)
    print(f"codec in {directory}: {report}")


@torch.no_grad()
def mel_distance_per_class(codec: Codec, n_q: int, data_dir: Path) -> dict[str, float]:
    """Mean L1 distance of the recipe's log-mels [80, 344] of the clips of ``data_dir`` and of their codec
    reconstructions (``n_q`` codebooks), per class and overall (``"all"``)."""
    mel = recipe_front_end()
    clips = read_foley_data_dir(data_dir)
    wavs = load_clips([c.path for c in clips], mel.config)
    distance = (mel(wavs) - mel(reconstruct(codec, wavs, n_q))).abs().mean(dim=(1, 2))
    names = [c.class_name for c in clips]
    report = {name: float(distance[[n == name for n in names]].mean()) for name in sorted(set(names))}
    report["all"] = float(distance.mean())
    return report


def stage_tokens(args: argparse.Namespace) -> None:
    """Token files of the train and valid clips (the tokenization job; a rerun skips files of this codec):
    ``exp/codec_<hash>/tokens/<split>/<utt>.npz`` (`codec_exp`), with the split's ``utt2class`` beside
    them."""
    from funcodec_lite.jobs.tokenize import Shard, tokenize_scp

    config = load_config(args)
    codec = load_codec(args, config)
    for split in ("train", "valid"):
        data = args.data / split
        if not (data / "wav.scp").is_file():
            if split == "train":
                raise FileNotFoundError(f"{data / 'wav.scp'}: missing, run stage 0 first")
            continue
        out = codec_exp(args, config) / "tokens" / split
        summary = tokenize_scp(codec, data / "wav.scp", out, n_q=config.n_q, shard=Shard())
        if summary.failed:
            first = next(iter(summary.failed.items()))
            raise FoleyDataError(f"{split}: {len(summary.failed)} clip(s) failed to tokenize (first: "
                                 f"{first[0]}: {first[1]}); see {summary.log}")
        shutil.copyfile(data / "utt2class", out / "utt2class")
        print(f"{split}: {summary.ok} tokenized, {summary.skipped} already there -> {out}")


def stage_token_prior(args: argparse.Namespace) -> None:
    """Trains the class-conditional token model on the train tokens, scored on the valid tokens (held-out
    NLL; ``best_metric`` keeps the best model in ``prior/best``); writes ``prior/valid.json``."""
    from funcodec_lite.lm.data import ExampleDataset, heldout_batches, read_labels, token_examples
    from funcodec_lite.lm.training import heldout_nll, train_lm

    config = load_config(args)
    codec = load_codec(args, config)
    tokens = codec_exp(args, config) / "tokens"
    if not (tokens / "train" / "utt2class").is_file():
        raise FileNotFoundError(f"{tokens / 'train'}: no tokens, run the tokens stage first")
    names = sorted({c.class_name for c in read_foley_data_dir(args.data / "train")})
    data, loop = config.prior.data, config.prior.train
    train, info, _ = token_examples(tokens / "train", config.n_q, read_labels(tokens / "train" / "utt2class"),
                                    names, model_id=codec_model_id(codec))
    valid = []
    if (tokens / "valid" / "utt2class").is_file():
        labels = read_labels(tokens / "valid" / "utt2class")
        valid, _, _ = token_examples(tokens / "valid", config.n_q, labels, names, model_id=info.model_id)
    dataset = ExampleDataset(train, data.segment_frames, 0, loop.seed)
    batches = heldout_batches(valid, loop.batch_size, data.segment_frames, 0, data.valid_examples)
    codebooks = None
    if data.init_from_codec:
        codebooks = torch.stack([layer.embed for layer in codec.quantizer.layers[: config.n_q]])
    provenance = {"data": {"train": str(tokens / "train"), "examples": len(train)}, "tokens": info.to_dict(),
                  "codec": str(codec_dir(args, config)), "class_names": names}
    model = train_lm(config.prior, config.fixed(len(names)), dataset, batches, args.exp / "prior",
                     resume=args.resume, provenance=provenance, codebooks=codebooks)
    best, record = load_model_dir(prior_dir(args)), read_provenance(prior_dir(args))
    spread = train[:: max(1, len(train) // max(len(valid), 32))]  # every class, as many as the valid split
    report = {"kind": config.prior.kind, "parameters": sum(p.numel() for p in model.parameters()),
              "sampled_model": str(prior_dir(args)), "steps": record.get("steps"),
              "train_minutes": record.get("train_minutes"),
              "valid": heldout_nll(best, heldout_batches(valid, loop.batch_size)) if valid else {},
              "train": heldout_nll(best, heldout_batches(spread, loop.batch_size))}
    write_json(args.exp / "prior" / "valid.json", report)
    print(f"prior: valid {report['valid']}, train {report['train']}")


def stage_generate_codec(args: argparse.Namespace) -> None:
    """Stage 6 of a codec-token run: `funcodec_lite.foley.generation.stage_generate` (its generator comes
    from `build_codec_generator`): ``generate.clips_per_class`` clips per class in the challenge's format,
    ``generated/timing.json``."""
    from funcodec_lite.foley.generation import stage_generate

    load_config(args)  # a mel-path run is refused here, in one line
    stage_generate(args)


# ------------------------------------------------------------------------------------- generation parts
def build_codec_generator(args: argparse.Namespace, config: FoleyRunConfig) -> torch.nn.Module:
    """The run's `FoleyGenerator` on the codec path (parts ``prior`` and ``codec``); its ``sampling``
    holds the sampler's settings and ``frames``, the code frames of one clip.

    Raises:
        ValueError: the prior was trained on tokens of another codec.
    """
    from funcodec_lite.foley.generator import FoleyGenerator

    tokens_config = CodecTokensConfig.from_dict(config.codec_tokens)
    codec = load_codec(args, tokens_config)
    directory = require_model(prior_dir(args), "token_prior")
    prior, provenance = load_model_dir(directory), read_provenance(directory)
    trained_on = provenance.get("tokens", {}).get("model_id")
    if trained_on != codec_model_id(codec):
        raise ValueError(f"{directory} was trained on tokens of codec {trained_on}, not of "
                         f"{codec_dir(args, tokens_config)} ({codec_model_id(codec)}): rerun the tokens and "
                         "token_prior stages")
    samples = recipe_front_end().config.num_samples
    sampling = {**tokens_config.sampling, "frames": math.ceil(samples / codec.samples_per_frame)}
    return FoleyGenerator.from_parts(provenance["class_names"], "codec", {"prior": prior, "codec": codec},
                                     codec.sample_rate, samples, sampling)


@torch.no_grad()
def sample_codec_tokens(prior: torch.nn.Module, labels: torch.Tensor, sampling: dict,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Codes [B, K, frames] of the classes ``labels`` [B]: MaskGIT from a fully masked clip (``masked_lm``)
    or the autoregressive sampler with its KV cache (``codec_lm``, no EOS before ``frames``).

    Args:
        prior: the token model.
        labels: [B] class ids.
        sampling: ``frames`` and the sampler's settings (`MaskGITConfig` / `SamplingConfig` fields).
        generator: the random source (CPU).
    """
    settings = dict(sampling)
    frames = int(settings.pop("frames"))
    b, k = len(labels), prior.config.n_q
    if prior.model_kind == "masked_lm":
        codes = torch.zeros(b, k, frames, dtype=torch.long)
        mask = torch.ones(b, k, frames, dtype=torch.bool)
        return maskgit_generate(prior, codes, mask, MaskGITConfig(**settings), labels,
                                generator=generator).codes
    if prior.model_kind == "codec_lm":
        config = SamplingConfig(**{**settings, "min_frames": frames})
        return generate(prior, b, frames, config, labels=labels, generator=generator).codes
    raise ValueError(f"a {prior.model_kind} prior cannot sample Foley clips; use one of {PRIOR_KINDS}")


@torch.no_grad()
def reconstruct(codec: Codec, wavs: torch.Tensor, n_q: int, batch_size: int = 16) -> torch.Tensor:
    """Clips [N, T] through ``codec`` (encode with ``n_q`` codebooks, decode): [N, T]."""
    codec.eval()
    out = [codec.decode(codec.encode(wavs[i : i + batch_size, None], n_q=n_q), length=wavs.shape[-1])[:, 0]
           for i in range(0, len(wavs), batch_size)]
    return torch.cat(out).float()


def reconstruct_clips(args: argparse.Namespace, wavs: torch.Tensor) -> torch.Tensor:
    """Real clips [N, T] at the codec's rate through the run's codec, with the codebooks the prior models
    (the best a perfect prior could reproduce): [N, T]."""
    config = load_config(args)
    return reconstruct(load_codec(args, config), wavs, config.n_q)


# ------------------------------------------------------------------------------------------------ CLI
STAGES = {
    "codec": stage_codec,
    "tokens": stage_tokens,
    "token_prior": stage_token_prior,
    "generate_codec": stage_generate_codec,
}
