"""Build tests/fixtures/lac/ from LAC's own code: a random seeded LAC saved in its format, inputs, its codes
and its audio.

LAC (github.com/hugofloresgarcia/lac, the codec of VampNet's release: ``codec.pth``) is not on PyPI, so the
tests cannot run it; this script does, once, and stores what the tests compare against. The reference is the
commit ``REFERENCE_COMMIT`` of its repository, read from a local git clone (``--lac-repo``): its package
(``lac/``) is extracted to a temporary directory and imported as it is. It needs ``descript-audiotools``
(installed with ``descript-audio-codec``, a test extra) and ``einops`` (a test extra).

What is made (seed 0):

- ``lac.pth``: a LAC with the released encoder (rates 2, 4, 8, 8: hop 512 at 44.1 kHz) and quantizer
  (14 codebooks of 1024 x 8, as VampNet reads them) and a narrow decoder (``SMALL``), written by
  ``LAC.save(path, package=False)``. Every weight is random: weight-norm directions and gains drawn apart
  (g ≠ ‖v‖), non-zero biases, Snake α in [0.5, 1.5]; codebooks 0-8 are the VampNet fixtures' codebooks
  (``tests/fixtures/vampnet/codebooks.npz``, so that VampNet's fixture models embed this codec's tokens), 9-13
  random;
- ``cases.npz``: for each case an input ``wav_<name>`` [B, 1, T], LAC's codes ``codes_<name>``
  (``preprocess`` + ``encode``; with ``n_quantizers`` for the ``nq4`` case, first 4 kept) and its audio
  ``audio_<name>`` (``decode(quantizer.from_codes(codes))``, N · hop samples); ``audio_vampnet`` is the
  ``long`` case decoded as VampNet decodes (``quantizer.from_latents`` of the codebook vectors);
- ``meta.json``: the reference commit, the kwargs, the cases, and (``--real-shapes``) the comparison at the
  released shapes.

Usage: ``python tools/make_lac_fixtures.py [--lac-repo DIR] [--out tests/fixtures/lac] [--real-shapes]``
(``--real-shapes`` also builds LAC at the shapes of its training config (``decoder_dim`` 1536, 14
codebooks: 145 M parameters), saves and converts it with ``codec convert --from lac``, encodes and decodes
0.2 s through both and records whether the codes are identical and the largest audio difference).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

REFERENCE_COMMIT = "7761206878d1fba79aad314a38f975e9589af0a4"  # hugofloresgarcia/lac, 2024-05-27
MIRROR = Path("/work/.mirror/hugofloresgarcia+lac/repo")
ROOT = Path(__file__).resolve().parent.parent
VAMPNET_CODEBOOKS = ROOT / "tests" / "fixtures" / "vampnet" / "codebooks.npz"
SMALL = {"sample_rate": 44100, "encoder_dim": 2, "encoder_rates": [2, 4, 8, 8], "decoder_dim": 32,
         "decoder_rates": [8, 4, 4, 2, 2], "n_codebooks": 14, "codebook_size": 1024, "codebook_dim": 8}
REAL = {"sample_rate": 44100, "encoder_dim": 64, "encoder_rates": [2, 4, 8, 8], "decoder_dim": 1536,
        "decoder_rates": [4, 4, 4, 2, 2, 2], "n_codebooks": 14, "codebook_size": 1024, "codebook_dim": 8}
# name -> (batch, samples): shorter than a frame, one frame exactly, a few, many; a batch
CASES = {"one": (1, 1), "short": (1, 500), "frame": (1, 512), "mid": (1, 4410), "long": (1, 11025),
         "batch": (3, 3000)}
SEED = 0


def extract_reference(repo: Path, target: Path) -> None:
    """``lac/`` of the reference commit → ``target/lac``."""
    archive = subprocess.run(["git", "-C", str(repo), "archive", REFERENCE_COMMIT, "lac"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "x", "-C", str(target)], input=archive, check=True)


def perturb(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Random weights everywhere: directions, gains apart from their norms, biases, Snake α, codebooks."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("alpha"):
                param.copy_(0.5 + torch.rand(param.shape, generator=generator))
            elif name.endswith("weight_g"):
                param.copy_(0.3 + 0.5 * torch.rand(param.shape, generator=generator))
            elif name.endswith("bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(torch.randn(param.shape, generator=generator))


def build(lac_class: type, kwargs: dict, generator: torch.Generator) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation of the weight_norm LAC uses
        model = lac_class(**kwargs)
    perturb(model, generator)
    return model.eval()


def reference_case(model: torch.nn.Module, wav: torch.Tensor, n_q: int | None) -> dict[str, np.ndarray]:
    with torch.no_grad():
        codes = model.encode(wav, 44100, n_quantizers=n_q)["codes"]
        if n_q is not None:
            codes = codes[:, :n_q]
        audio = model.decode(model.quantizer.from_codes(codes)[0])["audio"]
    return {"codes": codes.numpy(), "audio": audio.numpy()}


def make(lac_class: type, out: Path) -> dict:
    generator = torch.Generator().manual_seed(SEED)
    model = build(lac_class, SMALL, generator)
    books = np.load(VAMPNET_CODEBOOKS, allow_pickle=False)["codebooks"]
    with torch.no_grad():
        for quantizer, book in zip(model.quantizer.quantizers, books):
            quantizer.codebook.weight.copy_(torch.from_numpy(book))
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out / "lac.pth"), package=False)
    arrays: dict[str, np.ndarray] = {}
    for name, (batch, samples) in {**CASES, "nq4": CASES["mid"]}.items():
        t = torch.arange(samples) / 44100
        tone = 0.3 * torch.sin(2 * torch.pi * (110 + 330 * torch.rand(batch, 1, 1, generator=generator)) * t)
        wav = tone + 0.1 * torch.randn(batch, 1, samples, generator=generator)
        result = reference_case(model, wav, 4 if name == "nq4" else None)
        arrays[f"wav_{name}"] = wav.numpy()
        arrays[f"codes_{name}"] = result["codes"]
        arrays[f"audio_{name}"] = result["audio"]
    with torch.no_grad():  # VampNet's decode: from_latents of the codebook vectors, then decode
        latents = model.quantizer.from_codes(torch.from_numpy(arrays["codes_long"]))[1]
        arrays["audio_vampnet"] = model.decode(model.quantizer.from_latents(latents)[0])["audio"].numpy()
    np.savez(out / "cases.npz", **arrays)
    long_codes = arrays["codes_long"]
    return {"distinct_codes_long": int(len(np.unique(long_codes))),
            "audio_long_std": float(arrays["audio_long"].std()),
            "audio_long_max": float(np.abs(arrays["audio_long"]).max())}


def real_shapes(lac_class: type) -> dict:
    """LAC at its training config's shapes against the converted model on 0.2 s."""
    sys.path.insert(0, str(ROOT))
    from funcodec_lite.convert.lac import convert_lac_file

    generator = torch.Generator().manual_seed(SEED + 1)
    model = build(lac_class, REAL, generator)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(f"{tmp}/codec.pth", package=False)
        ours, _ = convert_lac_file(f"{tmp}/codec.pth")
    wav = 0.3 * torch.randn(1, 1, 8820, generator=generator)
    ref = reference_case(model, wav, None)
    with torch.no_grad():
        codes = ours.encode(wav)
        audio = ours.decode(codes)
    same = bool(np.array_equal(codes.numpy(), ref["codes"]))
    return {"kwargs": REAL, "samples": 8820, "codes_identical": same,
            "audio_max_abs_diff": float(np.abs(audio.numpy() - ref["audio"]).max()),
            "audio_std": float(ref["audio"].std())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lac-repo", type=Path, default=MIRROR)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "lac")
    parser.add_argument("--real-shapes", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        extract_reference(args.lac_repo, Path(tmp))
        sys.path.insert(0, tmp)
        from lac.model.lac import LAC

        checks = make(LAC, args.out)
        meta = {"reference": f"github.com/hugofloresgarcia/lac@{REFERENCE_COMMIT}", "seed": SEED,
                "kwargs": SMALL, "cases": {**CASES, "nq4": CASES["mid"]}, "nq4_n_quantizers": 4,
                "vampnet_codebooks": "codebooks 0-8 from tests/fixtures/vampnet/codebooks.npz",
                "checks": checks, "torch": torch.__version__, "made_by": "tools/make_lac_fixtures.py"}
        if args.real_shapes:
            meta["real_shapes"] = real_shapes(LAC)
            print("real shapes:", meta["real_shapes"])
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1e6:.2f} MB): {checks}")


if __name__ == "__main__":
    main()
