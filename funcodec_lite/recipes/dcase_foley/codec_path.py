"""The Foley recipe's codec-token path: codec -> tokens -> class-conditional token prior -> codec decoder.

Instead of the mel autoencoder, PixelSNAIL and a vocoder, a run with a ``codec_tokens`` section trains a
codec on the training clips (the codec trainer, `funcodec_lite.codec.training.task`), tokenizes the clips
(the tokenization job, `funcodec_lite.jobs.tokenize`), trains a class-conditional token model on the engine
(`funcodec_lite.lm.training`: ``masked_lm``, sampled with MaskGIT, or ``codec_lm``, sampled
autoregressively with a KV cache) and decodes sampled tokens with the codec.

The codec and its tokens depend only on the codec's settings and the training clips, so runs that share
both share them (a masked and an autoregressive prior on one codec): ``exp/codec_<hash>/``
(`FoleyRun.codec_exp`; the hash covers the ``codec`` settings and the training clips' ids, classes and
bytes) holds ``model``, ``valid.json`` and ``tokens/{train,valid}/`` (token files + utt2class). Under
``exp/<run>/``: ``prior/{model,best,valid.json}`` and the clips of stage 6
(`funcodec_lite.recipes.dcase_foley.generation.stage_generate`, which builds its generator with
`build_codec_generator`).

Stages (run by ``egs/dcase_foley/run.sh`` when the config has ``codec_tokens``): ``python -m
funcodec_lite.recipes.dcase_foley {codec,tokens,token_prior,generate_codec} --config C --exp E``.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch

from funcodec_lite.audio.mel_frontend import recipe_front_end
from funcodec_lite.codec.loading import model_id
from funcodec_lite.codec.model import Codec
from funcodec_lite.codec.training.task import Trainer
from funcodec_lite.foley.data import FoleyDataError, load_clips, read_foley_data_dir
from funcodec_lite.foley.generator import FoleyGenerator
from funcodec_lite.jobs.tokenize import Shard, tokenize_scp
from funcodec_lite.lm.data import ExampleDataset, heldout_batches, read_labels, token_examples
from funcodec_lite.lm.training import heldout_nll, train_lm
from funcodec_lite.recipes.dcase_foley.run import FoleyRun, require_model
from funcodec_lite.utils.atomic import write_json
from funcodec_lite.utils.weights import load_model_dir, read_provenance


# ---------------------------------------------------------------------------------------------- stages
def stage_codec(run: FoleyRun) -> None:
    """Trains the codec on ``data/train`` (validation on ``data/valid``) in ``run.codec_exp``, unless a run
    with the same codec settings and training clips finished it already (``--resume`` continues its
    training); then writes its ``valid.json``: the recipe's log-mel L1 distance per class between the valid
    clips and their reconstructions from the prior's codebooks."""
    tokens, directory = run.tokens, run.codec_exp
    if (directory / "valid.json").is_file() and not run.resume:
        print(f"reusing the codec of {directory} (delete it to retrain, or --resume to train on)")
        return
    valid = run.data / "valid"
    trainer = Trainer(tokens.codec, run.data / "train", valid if (valid / "wav.scp").is_file() else None,
                      directory)
    trainer.fit(resume=run.resume)
    codec = run.load_codec()
    report = {"parameters": sum(p.numel() for p in codec.parameters()), "steps": trainer.step,
              "train_minutes": round(trainer.train_seconds / 60, 2), "n_q": tokens.n_q,
              "frame_rate": codec.frame_rate, "kbps": codec.bandwidth(tokens.n_q)}
    if (valid / "wav.scp").is_file():
        report["valid_mel_l1"] = mel_distance_per_class(codec, tokens.n_q, valid)
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


def stage_tokens(run: FoleyRun) -> None:
    """Token files of the train and valid clips (the tokenization job; a rerun skips files of this codec):
    ``exp/codec_<hash>/tokens/<split>/<utt>.npz``, with the split's ``utt2class`` beside them."""
    n_q, codec = run.tokens.n_q, run.load_codec()
    for split in ("train", "valid"):
        data = run.data / split
        if not (data / "wav.scp").is_file():
            if split == "train":
                raise FileNotFoundError(f"{data / 'wav.scp'}: missing, run stage 0 first")
            continue
        out = run.codec_exp / "tokens" / split
        summary = tokenize_scp(codec, data / "wav.scp", out, n_q=n_q, shard=Shard())
        if summary.failed:
            first = next(iter(summary.failed.items()))
            raise FoleyDataError(f"{split}: {len(summary.failed)} clip(s) failed to tokenize (first: "
                                 f"{first[0]}: {first[1]}); see {summary.log}")
        shutil.copyfile(data / "utt2class", out / "utt2class")
        print(f"{split}: {summary.ok} tokenized, {summary.skipped} already there -> {out}")


def stage_token_prior(run: FoleyRun) -> None:
    """Trains the class-conditional token model on the train tokens, scored on the valid tokens (held-out
    NLL; ``best_metric`` keeps the best model in ``prior/best``); writes ``prior/valid.json``."""
    config, codec = run.tokens, run.load_codec()
    tokens = run.codec_exp / "tokens"
    if not (tokens / "train" / "utt2class").is_file():
        raise FileNotFoundError(f"{tokens / 'train'}: no tokens, run the tokens stage first")
    names = sorted({c.class_name for c in read_foley_data_dir(run.data / "train")})
    data, loop = config.prior.data, config.prior.train
    train, info, _ = token_examples(tokens / "train", config.n_q, read_labels(tokens / "train" / "utt2class"),
                                    names, model_id=model_id(codec))
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
                  "codec": str(run.codec_exp / "model"), "class_names": names}
    model = train_lm(config.prior, config.fixed(len(names)), dataset, batches, run.exp / "prior",
                     resume=run.resume, provenance=provenance, codebooks=codebooks)
    best, record = load_model_dir(run.prior_dir), read_provenance(run.prior_dir)
    spread = train[:: max(1, len(train) // max(len(valid), 32))]  # every class, as many as the valid split
    report = {"kind": config.prior.kind, "parameters": sum(p.numel() for p in model.parameters()),
              "sampled_model": str(run.prior_dir), "steps": record.get("steps"),
              "train_minutes": record.get("train_minutes"),
              "valid": heldout_nll(best, heldout_batches(valid, loop.batch_size)) if valid else {},
              "train": heldout_nll(best, heldout_batches(spread, loop.batch_size))}
    write_json(run.exp / "prior" / "valid.json", report)
    print(f"prior: valid {report['valid']}, train {report['train']}")


# ------------------------------------------------------------------------------------- generation parts
def build_codec_generator(run: FoleyRun) -> FoleyGenerator:
    """The run's `FoleyGenerator` on the codec path (parts ``prior`` and ``codec``); its ``sampling``
    holds the sampler's settings and ``frames``, the code frames of one clip.

    Raises:
        ValueError: the prior was trained on tokens of another codec.
    """
    codec = run.load_codec()
    directory = require_model(run.prior_dir, "token_prior")
    prior, provenance = load_model_dir(directory), read_provenance(directory)
    trained_on = provenance.get("tokens", {}).get("model_id")
    if trained_on != model_id(codec):
        raise ValueError(f"{directory} was trained on tokens of codec {trained_on}, not of "
                         f"{run.codec_exp / 'model'} ({model_id(codec)}): rerun the tokens and token_prior "
                         "stages")
    samples = recipe_front_end().config.num_samples
    sampling = run.tokens.sampling_settings(math.ceil(samples / codec.samples_per_frame))
    return FoleyGenerator.from_parts(provenance["class_names"], "codec", {"prior": prior, "codec": codec},
                                     codec.sample_rate, samples, sampling)


@torch.no_grad()
def reconstruct(codec: Codec, wavs: torch.Tensor, n_q: int, batch_size: int = 16) -> torch.Tensor:
    """Clips [N, T] through ``codec`` (encode with ``n_q`` codebooks, decode): [N, T]."""
    codec.eval()
    out = [codec.decode(codec.encode(wavs[i : i + batch_size, None], n_q=n_q), length=wavs.shape[-1])[:, 0]
           for i in range(0, len(wavs), batch_size)]
    return torch.cat(out).float()


def reconstruct_clips(run: FoleyRun, wavs: torch.Tensor) -> torch.Tensor:
    """Real clips [N, T] at the codec's rate through the run's codec, with the codebooks the prior models
    (the best a perfect prior could reproduce): [N, T]."""
    return reconstruct(run.load_codec(), wavs, run.tokens.n_q)


STAGES = {"codec": stage_codec, "tokens": stage_tokens, "token_prior": stage_token_prior}
