"""Build tests/fixtures/vampnet/ from VampNet's own code: random seeded models saved in its format, tokens,
masks, its logits and its sampled tokens.

VampNet (github.com/hugofloresgarcia/vampnet) is not on PyPI and pins old libraries, so the tests cannot
run it; this script does, once, and stores what the tests compare against. The reference is the commit
``REFERENCE_COMMIT`` of its repository, read from a local git clone (``--vampnet-repo``): its model modules
(``vampnet/modules/``, ``vampnet/util.py``, ``vampnet/mask.py``) are extracted to a temporary directory and
imported as they are, as a namespace package (``vampnet/__init__.py``, which imports its app's
dependencies, is left out). They need ``loralib``, ``einops``, ``descript-audiotools`` and ``dac``
(``pip install loralib``; the rest are test extras).

What is made (seed 0):

- ``codebooks.npz``: random codebooks [9, 1024, 8] for a DAC 44.1 kHz model (the tests build DAC's model
  at those shapes with the ``dac`` package, set these codebooks, convert it with ``codec convert --from
  dac``);
- ``coarse.pth`` (4 codebooks) and ``c2f.pth`` (9 codebooks, 4 of them given): VampNet models with the
  released models' structure (LoRA rank 8 on its linear layers, relative position bias, weight-normed
  classifier, no flash attention, no FiLM) at a small width, every weight random (LoRA B non-zero, norm
  gains and weight-norm g random), written by ``VampNet.save(path, package=False, metadata=...)`` with a
  training history of ``defaultdict(default_list)`` as its trainer writes it;
- ``cases.npz``: tokens and masks; VampNet's logits (``forward(embedding.from_codes(...))``, batch 1, in
  eval mode after ``VampNet.load``); its ``generate`` output for seeded batch-1 runs of the coarse and the c2f
  model at two settings, and the chain coarse → c2f (one RNG stream, the c2f run unseeded);
- ``meta.json``: the reference commit, the settings of every case, and checks made here (typical filtering
  on and off give the same tokens at this commit).

Usage: ``python tools/make_vampnet_fixtures.py [--vampnet-repo DIR] [--out tests/fixtures/vampnet]
[--real-shapes]`` (``--real-shapes`` also builds the released coarse model's shapes, 20 layers x 1280, runs
one forward through VampNet and through the converted model, and prints the largest difference; nothing of
it is stored).
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REFERENCE_COMMIT = "72e2675790091fe28ecfd8391303a46b25a703db"  # hugofloresgarcia/vampnet, 2025-05-16
MIRROR = Path("/work/.mirror/hugofloresgarcia+vampnet/repo")
REFERENCE_FILES = ["vampnet/modules", "vampnet/util.py", "vampnet/mask.py"]
SMALL = {"n_heads": 2, "n_layers": 3, "embedding_dim": 16, "latent_dim": 8, "vocab_size": 1024,
         "flash_attn": False, "dropout": 0.1}
COARSE = {**SMALL, "n_codebooks": 4, "n_conditioning_codebooks": 0}
C2F = {**SMALL, "n_codebooks": 9, "n_conditioning_codebooks": 4}
FRAMES = 12
# (steps, temperature, mask_temperature) of the seeded generate runs
SETTINGS = [(8, 1.0, 10.5), (5, 0.7, 3.0)]
SEED = 0


def extract_reference(repo: Path, target: Path) -> None:
    """Writes the reference's model files at REFERENCE_COMMIT under ``target``."""
    archive = subprocess.run(["git", "-C", str(repo), "archive", REFERENCE_COMMIT, *REFERENCE_FILES],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)


def perturb(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter random (none at its initial value: LoRA B, norm gains, weight-norm g included)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.5 if param.ndim == 1 or "special" in name or "relative" in name else 0.3
            param.copy_(torch.randn(param.shape, generator=generator) * scale
                        + (1.0 if name.endswith("norm_1.weight") or name.endswith("norm_3.weight") else 0.0))


def build_codec(codebooks: torch.Tensor) -> torch.nn.Module:
    """DAC's 44.1 kHz model (``dac`` package) with the given codebooks [9, 1024, 8]."""
    import dac

    torch.manual_seed(SEED)
    codec = dac.DAC()
    with torch.no_grad():
        for quantizer, book in zip(codec.quantizer.quantizers, codebooks):
            quantizer.codebook.weight.copy_(book)
    return codec.eval()


def load_reference(vampnet_class: type, path: Path) -> torch.nn.Module:
    """VampNet's model from a file written here, as audiotools' ``BaseModel.load`` builds it (that reads
    with torch.load's default, which is weights_only=True since torch 2.6 and refuses the history, so
    the file written here is read with weights_only=False), then ``eval()`` as VampNet's interface does
    (which merges the LoRA pairs)."""
    data = torch.load(path, map_location="cpu", weights_only=False)  # a file this script just wrote
    model = vampnet_class(**data["metadata"]["kwargs"])
    model.load_state_dict(data["state_dict"], strict=True)
    return model.eval()


def history() -> dict:
    """A training history as VampNet's trainer saves it (audiotools' Tracker: defaultdict(default_list))."""
    from audiotools.ml.decorators import default_list

    train = collections.defaultdict(default_list)
    train["loss"].extend([7.1, 6.9])
    train["step"].extend([1, 2])
    return {"train": train}


def make(vampnet_repo: Path, out: Path, real_shapes: bool) -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        extract_reference(vampnet_repo, Path(tmp))
        sys.path.insert(0, tmp)
        from vampnet.modules.transformer import VampNet

        out.mkdir(parents=True, exist_ok=True)
        generator = torch.Generator().manual_seed(SEED)
        codebooks = torch.randn(9, 1024, 8, generator=generator)
        codec = build_codec(codebooks)
        models = {}
        for name, kwargs in (("coarse", COARSE), ("c2f", C2F)):
            model = VampNet(**kwargs)
            perturb(model, generator)
            model.save(str(out / f"{name}.pth"), metadata={"logs": history()}, package=False)
            models[name] = load_reference(VampNet, out / f"{name}.pth")
        cases, meta = run_cases(models, codec, generator)
        np.savez(out / "codebooks.npz", codebooks=codebooks.numpy())
        np.savez(out / "cases.npz", **cases)
        meta.update(reference=f"github.com/hugofloresgarcia/vampnet@{REFERENCE_COMMIT}", seed=SEED,
                    coarse=COARSE, c2f=C2F, frames=FRAMES, settings=SETTINGS,
                    torch=torch.__version__, made_by="tools/make_vampnet_fixtures.py")
        (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        total = sum(f.stat().st_size for f in out.iterdir())
        print(f"wrote {out} ({total / 1e6:.2f} MB)")
        if real_shapes:
            check_real_shapes(VampNet, codec, generator, Path(tmp))


def run_cases(models: dict, codec: torch.nn.Module, generator: torch.Generator) -> tuple[dict, dict]:
    coarse, c2f = models["coarse"], models["c2f"]
    mask_id = coarse.mask_token
    codes = torch.randint(0, 1024, (1, 9, FRAMES), generator=generator)
    token_mask = torch.rand(1, 9, FRAMES, generator=generator) < 0.5
    token_mask[:, :4, :2] = False
    fine_mask = token_mask.clone()
    fine_mask[:, :4] = False
    column = torch.zeros(1, 9, FRAMES, dtype=torch.bool)
    column[..., 3:9] = True  # frames 3-8 regenerated in every codebook
    cases = {"codes": codes.numpy(), "token_mask": token_mask.numpy(), "fine_mask": fine_mask.numpy(),
             "column_mask": column.numpy()}
    with torch.no_grad():
        z = codes[:, :4].masked_fill(token_mask[:, :4], mask_id)
        cases["coarse_logits"] = coarse(coarse.embedding.from_codes(z, codec)).numpy()  # [1, V, T*4]
        z = codes.masked_fill(fine_mask, mask_id)
        cases["c2f_logits"] = c2f(c2f.embedding.from_codes(z, codec)).numpy()  # [1, V, T*5]
    meta = {"typical_filter_has_no_effect": True}
    for i, (steps, temperature, mask_temperature) in enumerate(SETTINGS):
        common = {"_sampling_steps": steps, "temperature": temperature, "mask_temperature": mask_temperature,
                  "return_signal": False}
        for typical in (True, False):  # VampNet's generate default is True
            a = coarse.generate(codec, start_tokens=codes[:, :4], mask=token_mask[:, :4].long(), seed=SEED,
                                typical_filtering=typical, **common)
            b = c2f.generate(codec, start_tokens=codes, mask=fine_mask.long(), seed=SEED,
                             typical_filtering=typical, **common)
            if typical:
                cases[f"coarse_generate_{i}"], cases[f"c2f_generate_{i}"] = a.numpy(), b.numpy()
            else:
                same = np.array_equal(a.numpy(), cases[f"coarse_generate_{i}"]) and np.array_equal(
                    b.numpy(), cases[f"c2f_generate_{i}"])
                meta["typical_filter_has_no_effect"] &= bool(same)
        # the chain of a vamp: coarse on the column mask (seeded), then c2f on its fine codebooks
        coarse_out = coarse.generate(codec, start_tokens=codes[:, :4], mask=column[:, :4].long(), seed=SEED,
                                     **common)
        fine = column.clone()
        fine[:, :4] = False
        full = torch.cat([coarse_out, codes[:, 4:]], dim=1)
        cases[f"chain_{i}"] = c2f.generate(codec, start_tokens=full, mask=fine.long(), **common).numpy()
    return cases, meta


def check_real_shapes(vampnet_class: type, codec: torch.nn.Module, generator: torch.Generator,
                      tmp: Path) -> None:
    """The released coarse model's shapes: VampNet's forward against the converted model's."""
    from funcodec_lite.convert.vampnet import vampnet_config, vampnet_state_dict
    from funcodec_lite.lm.vampnet import VampNetLM

    kwargs = {"n_codebooks": 4, "n_conditioning_codebooks": 0, "embedding_dim": 1280, "n_layers": 20,
              "n_heads": 20, "flash_attn": False}
    model = vampnet_class(**kwargs)
    perturb(model, generator)
    with torch.no_grad():  # the released weights are small; keep the activations in a sane range
        for name, param in model.named_parameters():
            if param.ndim == 2 and "special" not in name and "relative" not in name:
                param.mul_(0.1)
    model.save(str(tmp / "real.pth"), metadata={"logs": history()}, package=False)
    model = load_reference(vampnet_class, tmp / "real.pth")
    state = torch.load(tmp / "real.pth", map_location="cpu", weights_only=False)  # our own file
    config = vampnet_config(state["state_dict"], state["metadata"]["kwargs"])
    ours = VampNetLM(config)
    books = [q.codebook.weight.detach() for q in codec.quantizer.quantizers[:4]]
    ours.load_state_dict(vampnet_state_dict(state["state_dict"], config, books))
    ours.eval()
    codes = torch.randint(0, 1024, (1, 4, 40), generator=generator)
    codes[:, :, 10:30] = model.mask_token
    with torch.no_grad():
        ref = model(model.embedding.from_codes(codes, codec))
        got = ours(codes)
    ref = ref.view(1, 1024, 40, 4).permute(0, 3, 2, 1)
    diff = float((ref - got).abs().max())
    print(f"real shapes (20 layers x 1280, 40 frames): max |logit difference| {diff:.3g} (logits up to "
          f"{float(ref.abs().max()):.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vampnet-repo", type=Path, default=MIRROR, help="a git clone of VampNet")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "fixtures"
                        / "vampnet")
    parser.add_argument("--real-shapes", action="store_true")
    args = parser.parse_args()
    make(args.vampnet_repo, args.out, args.real_shapes)


if __name__ == "__main__":
    main()
