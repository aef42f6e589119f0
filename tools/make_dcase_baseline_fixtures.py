#!/usr/bin/env python
"""Builds tests/fixtures/dcase_baseline/: the DCASE 2023 Task 7 baseline's own models with random seeded
weights, their checkpoints in the baseline's formats, inputs and the reference outputs.

The reference is github.com/DCASE2023-Task7-Foley-Sound-Synthesis/dcase2023_task7_baseline at commit
411ab9ecdb5880223a934666c4d294a4aa7062bc (``vqvae.py``, ``pixelsnail.py``, ``HiFiGanWrapper.py``); it is not
on PyPI, so tests/test_convert_dcase_baseline.py compares against what this script wrote once.

    python tools/make_dcase_baseline_fixtures.py --reference PATH [--out tests/fixtures/dcase_baseline]

PATH is a checkout of the baseline (the folder holding vqvae.py) or its bare git directory (the files are
read at the commit above). The models keep the baseline's structure at a small size: the VQ-VAE with channel
16 (four branches, two residual blocks, 16 codes of 8 dims), the PixelSNAIL over 20 x 86 maps (channel 32,
kernel 5, 2 blocks of 2 residual blocks of width 8 with attention, one output block, a 1-block cond_resnet,
embedNet width 8) and a three-stage HiFi-GAN (resblock "1", 32 channels, hop 256). Weights are perturbed so
that no layer is trivial: weight-norm g != ||v||, non-zero biases, a codebook drawn from the encoder's own
latents, and the causal convs' hidden taps left non-zero in the saved file (the baseline zeroes them at its
first forward).

Written files (under 2 MB in all):
- ``vqvae.pth`` (``torch.save(state_dict)``), ``pixelsnail.pt`` (``{"model", "args": Namespace}``),
  ``g_small`` (``{"generator": state_dict}``, weight norm as trained) and ``hifigan_config.json``;
- ``reference.npz`` (no pickled objects): ``mel`` [2, 1, 80, 344] in (float16 values), ``codes``
  [2, 20, 86] (VQVAE.encode),
  ``decoded`` [2, 1, 80, 344] (VQVAE.decode_code of ``codes``), ``labels`` [2] and ``logits``
  [2, 16, 20, 86] (the prior on ``codes``, eval mode), ``sample_label``/``sample_seed`` and ``sampled``
  [1, 20, 86] (inference.py's loop: ``torch.manual_seed(seed)``, a forward over the rows so far and
  ``torch.multinomial(softmax(logits), 1)`` per position), ``audio`` [1, 1, 16384] (the generator with weight
  norm removed on the first 64 frames of ``decoded[0]``), and ``reference_commit``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

COMMIT = "411ab9ecdb5880223a934666c4d294a4aa7062bc"
FILES = ("vqvae.py", "pixelsnail.py", "HiFiGanWrapper.py")
HIFIGAN_CONFIG = {
    "resblock": "1", "num_gpus": 0, "batch_size": 16, "learning_rate": 0.0002, "adam_b1": 0.8,
    "adam_b2": 0.99,
    "lr_decay": 0.999, "seed": 1234, "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
    "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 5],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
    "segment_size": 8192, "num_mels": 80, "num_freq": 1025, "n_fft": 1024, "hop_size": 256, "win_size": 1024,
    "sampling_rate": 22050, "fmin": 0, "fmax": 8000, "fmax_for_loss": None,
}
PRIOR_ARGS = dict(batch=8, epoch=1500, hier="bottom", lr=3e-4, channel=32, n_res_block=2, n_res_channel=8,
                  n_out_res_block=1, n_cond_res_block=1, dropout=0.1, amp="O0", sched=None, ckpt=None,
                  path="vqvae-code/")


def reference_modules(path: Path, scratch: Path) -> dict[str, object]:
    """The baseline's three modules, imported from a checkout or read from a git directory at COMMIT."""
    if not (path / "vqvae.py").is_file():
        for name in FILES:
            text = subprocess.run(["git", "-C", str(path), "show", f"{COMMIT}:{name}"], check=True,
                                  capture_output=True, text=True).stdout
            (scratch / name).write_text(text)
        path = scratch
    modules = {}
    for name in FILES:
        spec = importlib.util.spec_from_file_location(f"dcase_reference_{Path(name).stem}", path / name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[Path(name).stem] = module
    return modules


@torch.no_grad()
def perturb_weight_norm(model: torch.nn.Module, generator: torch.Generator) -> None:
    """g = ||v|| * U(0.5, 1.5) for every old-style weight-norm pair, so g != ||v||."""
    for module in model.modules():
        if hasattr(module, "weight_g") and hasattr(module, "weight_v"):
            norm = module.weight_v.flatten(1).norm(dim=1).view_as(module.weight_g)
            module.weight_g.copy_(norm * (0.5 + torch.rand(norm.shape, generator=generator)))


@torch.no_grad()
def make_vqvae(ref, generator: torch.Generator, mel: torch.Tensor):
    model = ref.VQVAE(in_channel=1, channel=16, n_res_block=2, n_res_channel=8, embed_dim=8, n_embed=16)
    model.eval()
    for parameter in model.parameters():  # PyTorch's init plus noise: every bias non-zero
        parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    # codewords near the encoder's own latents, so that the 16 codes are all in use
    latents = model.quantize_conv_b(model.enc_b(mel)).permute(0, 2, 3, 1).reshape(-1, 8)
    picks = torch.randperm(len(latents), generator=generator)[:16]
    embed = latents[picks].t() + 0.01 * torch.randn(8, 16, generator=generator)
    model.quantize_b.embed.copy_(embed)
    model.quantize_b.embed_avg.copy_(embed * (1 + torch.rand(1, 16, generator=generator)))
    model.quantize_b.cluster_size.copy_(torch.rand(16, generator=generator) * 10)
    return model


@torch.no_grad()
def make_prior(ref, generator: torch.Generator):
    model = ref.PixelSNAIL([20, 86], 16, 32, 5, 2, 2, 8, attention=True, dropout=0.1, n_cond_res_block=1,
                           cond_res_channel=8, n_out_res_block=1, embed_dim=8)
    for name, parameter in model.named_parameters():
        if not name.endswith("weight_g"):
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    perturb_weight_norm(model, generator)
    return model.eval()


@torch.no_grad()
def make_vocoder(ref, generator: torch.Generator, mel: torch.Tensor):
    model = ref.Generator(ref.AttrDict(HIFIGAN_CONFIG))
    for name, parameter in model.named_parameters():
        if not name.endswith("weight_g"):
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    perturb_weight_norm(model, generator)
    # conv_post's gain and bias such that the output before tanh has mean 0.02 and std 0.3 on ``mel``:
    # audible, rarely saturated
    conv_part = torch.atanh(model.eval()(mel).clamp(-0.999, 0.999)) - model.conv_post.bias
    gain = 0.3 / conv_part.std()
    model.conv_post.weight_g.mul_(gain)
    model.conv_post.bias.copy_(0.02 - gain * conv_part.mean())
    return model.eval()


@torch.no_grad()
def sample_like_inference(prior, label: int, seed: int) -> torch.Tensor:
    """inference.py's BaseLineModel.synthesize_sound loop for one map (on the CPU's global generator)."""
    torch.manual_seed(seed)
    tokens = torch.zeros(1, 20, 86, dtype=torch.int64)
    cache: dict = {}
    for i in range(20):
        for j in range(86):
            out, cache = prior(tokens[:, : i + 1, :], label_condition=torch.full([1, 1], label).long(),
                               cache=cache)
            tokens[:, i, j] = torch.multinomial(torch.softmax(out[:, :, i, j], 1), 1).squeeze(-1)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True,
                        help="the baseline's checkout or git directory")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/dcase_baseline"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(20230401)
    with tempfile.TemporaryDirectory() as scratch:
        ref = reference_modules(args.reference, Path(scratch))
    args.out.mkdir(parents=True, exist_ok=True)

    # stored as float16: values that float16 holds exactly, computed on in float32
    mel = (torch.randn(2, 1, 80, 344, generator=generator) * 2.0 - 5.0).clamp_min(-11.5).half().float()
    vqvae = make_vqvae(ref["vqvae"], generator, mel)
    torch.save(vqvae.state_dict(), args.out / "vqvae.pth")
    with torch.no_grad():
        codes = vqvae.encode(mel.clone())[2]
        decoded = vqvae.decode_code(codes)
    print(f"codes in use: {codes.unique().numel()} of 16", flush=True)

    prior = make_prior(ref["pixelsnail"], generator)
    # saved before any forward: the causal convs' hidden taps are still non-zero in the file
    torch.save({"model": copy.deepcopy(prior.state_dict()), "args": argparse.Namespace(**PRIOR_ARGS)},
               args.out / "pixelsnail.pt")
    labels = torch.tensor([3, 5])
    with torch.no_grad():
        logits = prior(codes, label_condition=labels[:, None])[0]
    sample_label, sample_seed = 2, 1234
    sampled = sample_like_inference(prior, sample_label, sample_seed)

    vocoder_mel = decoded[0][..., :64]  # [1, 80, 64]: 64 frames keep the fixture small
    vocoder = make_vocoder(ref["HiFiGanWrapper"], generator, vocoder_mel)
    torch.save({"generator": vocoder.state_dict()}, args.out / "g_small")
    (args.out / "hifigan_config.json").write_text(json.dumps(HIFIGAN_CONFIG, indent=4) + "\n")
    vocoder.remove_weight_norm()  # as HiFiGanWrapper.load_hifi_gan does
    with torch.no_grad():
        audio = vocoder(vocoder_mel)  # the wrapper's input: one mel [1, 80, frames] as a batch of 1
    print(f"audio std {audio.std():.3f}, |x| > 0.99: {(audio.abs() > 0.99).float().mean():.4f}", flush=True)

    np.savez_compressed(
        args.out / "reference.npz", mel=mel.half().numpy(), codes=codes.numpy(), decoded=decoded.numpy(),
        labels=labels.numpy(), logits=logits.numpy(), sample_label=np.array(sample_label),
        sample_seed=np.array(sample_seed), sampled=sampled.numpy(), audio=audio.numpy(),
        reference_commit=np.array(COMMIT),
    )
    total = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"wrote {args.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    sys.exit(main())
