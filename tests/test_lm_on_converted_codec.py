"""The user paths on converted checkpoints: a token LM trains on DAC tokens; the CLI and the Tokenizer run on
one converted directory of each family (DAC, Mimi, SNAC, FunCodec's FreqCodec).

Each release file is written by the reference package's own model (random seeded weights, perturbed; small
configs) in the family's release format and converted by ``codec convert``; the reference's codes and
audio are the expected values. The weights are perturbed with ``tools/bench/interop_refs.py``'s helpers (the
interop benchmark builds its references with them).
"""

from __future__ import annotations

import copy
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from reference_libs import import_reference
from safetensors.torch import save_file
from tiny_models import speechlike

from funcodec_lite.cli import main
from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.inference.tokens import load_tokens

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "bench"))
import interop_refs  # noqa: E402  (tools/bench/interop_refs.py)

DAC_SMALL = {"sample_rate": 16000, "encoder_dim": 8, "encoder_rates": [2, 4, 5, 8], "decoder_dim": 64,
             "decoder_rates": [8, 5, 4, 2], "n_codebooks": 4, "codebook_size": 64, "codebook_dim": 4}
SNAC_SMALL = dict(sampling_rate=16000, encoder_dim=8, encoder_rates=[2, 2, 2, 2], decoder_dim=128,
                  decoder_rates=[2, 2, 2, 2], attn_window_size=4, codebook_size=64, codebook_dim=4,
                  vq_strides=[4, 2, 1], noise=True, depthwise=True)
LM_CONFIG = {
    "model": {"kind": "codec_lm", "pattern": "delay",
              "transformer": {"dim": 32, "n_layers": 2, "n_heads": 2}},
    "train": {"steps": 60, "batch_size": 8, "lr": 3e-3, "log_every": 10, "checkpoint_every": 60},
    "data": {"n_q": 4, "segment_frames": 24, "valid_every": 60, "valid_examples": 8},
}


def clip(seconds: float, rate: int, seed: int) -> np.ndarray:
    """A speech-like mono clip at half scale, float32 [T]."""
    return (0.5 * speechlike(seconds, rate, seed=seed))[0].numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# release files of each family: (reference model, `codec convert --from` source, its path, extra args)
def dac_release(root: Path):
    dac = import_reference("dac")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation of the old weight_norm that DAC uses
        ref = dac.model.DAC(**DAC_SMALL).eval()
    interop_refs.perturb_weight_norm_model(ref, 1)
    ref.save(str(root / "weights.pth"), package=False)  # DAC's release format
    encode = lambda wav: ref.encode(ref.preprocess(wav, 16000))[1]  # noqa: E731
    decode = lambda codes: ref.decode(ref.quantizer.from_codes(codes)[0])  # noqa: E731
    return encode, decode, ["dac", str(root / "weights.pth")], 16000


def mimi_release(root: Path):
    loaders = import_reference("moshi.models.loaders")
    cfg = copy.deepcopy(loaders._mimi_config)
    cfg["seanet"].update(n_filters=4, dimension=32)
    cfg["transformer"].update(d_model=32, num_heads=4, num_layers=2, dim_feedforward=64, context=6,
                              input_dimension=32, output_dimensions=[32])
    cfg["quantizer"].update(n_q=5, bins=64, dimension=16, input_dimension=32, output_dimension=32)
    torch.manual_seed(2)
    ref = interop_refs.perturb_mimi(loaders.get_mimi(None, cfg, num_codebooks=5), 3)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(root / "mimi.safetensors"))
    (root / "mimi.json").write_text(json.dumps(cfg))
    args = ["mimi", str(root / "mimi.safetensors"), "--config", str(root / "mimi.json")]
    return ref.encode, ref.decode, args, 24000  # [source, checkpoint, options...]


def snac_release(root: Path):
    snac = import_reference("snac")
    torch.manual_seed(4)
    ref = snac.SNAC(**SNAC_SMALL).eval()
    interop_refs.perturb_weight_norm_model(ref, 5, bias=0.003)
    (root / "snac").mkdir()
    (root / "snac" / "config.json").write_text(json.dumps(SNAC_SMALL))
    torch.save(ref.state_dict(), root / "snac" / "pytorch_model.bin")

    def encode(wav: torch.Tensor) -> torch.Tensor:  # the levels as our [B, K, N] layout (coarse repeated)
        levels = ref.encode(wav)
        n = levels[-1].shape[-1]
        return torch.stack([level.repeat_interleave(n // level.shape[-1], -1) for level in levels], 1)

    def decode(codes: torch.Tensor) -> torch.Tensor:
        return ref.decode([codes[:, k, ::stride] for k, stride in enumerate(SNAC_SMALL["vq_strides"])])

    return encode, decode, ["snac", str(root / "snac")], 16000


def freq_release(root: Path):
    for module in ("funcodec.models.codec_freq", "funcodec.models.quantizer.costume_quantizer"):
        import_reference(module)
    ref, config = interop_refs.funcodec_freq_reference(n_q=4, bins=64, seed=6)
    (root / "freq").mkdir()
    torch.save(ref.state_dict(), root / "freq" / "model.pth")
    (root / "freq" / "config.yaml").write_text(yaml.safe_dump(config))

    def encode(wav: torch.Tensor) -> torch.Tensor:  # FunCodec's inference_encoding, ceil(T / hop) frames
        codes = ref.inference_encoding(wav[:, 0], need_recon=False)["code_indices"][0]
        return codes.permute(1, 0, 2)[..., :math.ceil(wav.shape[-1] / 320)]

    def decode(codes: torch.Tensor) -> torch.Tensor:
        return ref.inference_decoding(codes.permute(0, 2, 1))["recon_speech"]

    return encode, decode, ["funcodec", str(root / "freq")], 16000


FAMILIES = {"dac": dac_release, "mimi": mimi_release, "snac": snac_release, "funcodec_freq": freq_release}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """family -> (directory, reference encode, reference decode, sample rate); built when first asked."""
    cache = {}

    def get(family: str):
        if family not in cache:
            root = tmp_path_factory.mktemp(family)
            encode, decode, (source, checkpoint, *options), rate = FAMILIES[family](root)
            out = root / "converted"
            assert main(["convert", "--from", source, checkpoint, str(out), *options]) == 0
            assert yaml.safe_load((out / "config.yaml").read_text())["kind"] == family
            cache[family] = out, encode, decode, rate
        return cache[family]
    return get


# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", sorted(FAMILIES))
@torch.no_grad()
def test_cli_and_tokenizer_on_a_converted_directory(family, converted, tmp_path, capsys):
    out, ref_encode, ref_decode, rate = converted(family)
    wav = clip(0.4, rate, seed=1)
    sf.write(tmp_path / "a.wav", wav, rate, subtype="FLOAT")
    signal = torch.from_numpy(wav)[None, None]
    expected = ref_encode(signal)
    assert len(torch.unique(expected)) > 4  # not a constant code

    tokenizer = Tokenizer.from_pretrained(out)
    assert tokenizer.sample_rate == rate and tokenizer.total_codebooks == expected.shape[1]
    encoded = tokenizer.encode(signal[0], rate)
    if family == "funcodec_freq":  # FunCodec scales its input to unit RMS (audio_normalize); ours does not
        assert not torch.equal(encoded.codes, expected)
        encoded = tokenizer.encode(interop_refs.unit_rms(signal)[0], rate)
    assert torch.equal(encoded.codes, expected)
    assert encoded.lengths.tolist() == [expected.shape[-1]]
    # SNAC's decoder draws noise: loaded for inference it is seeded, so decoding is reproducible ...
    assert torch.equal(tokenizer.decode(encoded.codes).wav, tokenizer.decode(encoded.codes).wav)
    tokenizer.codec.set_noise_seed(None)  # ... and from torch's global RNG it draws what the reference draws
    torch.manual_seed(7)
    reference = ref_decode(expected)
    torch.manual_seed(7)
    decoded = tokenizer.decode(encoded.codes).wav
    n = min(reference.shape[-1], decoded.shape[-1])
    assert n >= len(wav) - 320 and reference.std() > 1e-3
    assert (decoded[..., :n] - reference[..., :n]).abs().max() <= 1e-4

    model = str(out)
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), "--model", model]) == 0
    tokens = load_tokens(tmp_path / "a.npz")
    plain = tokenizer.encode(signal[0], rate).codes  # the file as it is
    assert np.array_equal(np.asarray(tokens.codes).reshape(plain.shape), plain.numpy())
    assert main(["decode", str(tmp_path / "a.npz"), str(tmp_path / "b.wav"), "--model", model]) == 0
    hyp, hyp_rate = sf.read(tmp_path / "b.wav", dtype="float32")
    assert hyp_rate == rate and hyp.shape == wav.shape and np.isfinite(hyp).all() and hyp.std() > 1e-3
    (tmp_path / "wav.scp").write_text(f"utt1 {tmp_path / 'a.wav'}\nutt2 {tmp_path / 'b.wav'}\n")
    assert main(["tokenize", "--scp", str(tmp_path / "wav.scp"), "--out-dir", str(tmp_path / "tok"),
                 "--model", model, "-q"]) == 0
    assert np.array_equal(load_tokens(tmp_path / "tok" / "utt1.npz").codes, tokens.codes)
    assert load_tokens(tmp_path / "tok" / "utt2.npz").model_id == tokens.model_id
    capsys.readouterr()
    assert main(["eval", "--ref", str(tmp_path / "a.wav"), "--hyp", str(tmp_path / "b.wav"), "--metrics",
                 "mel,si_snr", "--json", str(tmp_path / "scores.json")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert "1 pair(s) scored, 0 failed" in capsys.readouterr()[0]
    assert scores["scored"] == 1 and math.isfinite(scores["mean"]["si_snr"])
    assert scores["mean"]["mel_distance"] > 0  # random weights: the audio is not the input


def test_token_lm_trains_on_converted_dac_tokens(converted, tmp_path):
    out, _, _, rate = converted("dac")
    lines = []
    for i in range(8):
        sf.write(tmp_path / f"u{i}.wav", clip(0.6, rate, seed=10 + i), rate, subtype="FLOAT")
        lines.append(f"u{i} {tmp_path / f'u{i}.wav'}")
    (tmp_path / "wav.scp").write_text("\n".join(lines) + "\n")
    assert main(["tokenize", "--scp", str(tmp_path / "wav.scp"), "--out-dir", str(tmp_path / "tokens"),
                 "--model", str(out), "-q"]) == 0
    tokens = load_tokens(tmp_path / "tokens" / "u0.npz")
    assert np.asarray(tokens.codes).shape[-2:] == (4, 30) and np.asarray(tokens.codes).max() < 64
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(LM_CONFIG))
    torch.manual_seed(0)
    assert main(["lm", "train", "--config", str(tmp_path / "lm.yaml"), "--tokens", str(tmp_path / "tokens"),
                 "--valid-tokens", str(tmp_path / "tokens"), "--codec", str(out),
                 "--exp-dir", str(tmp_path / "exp")]) == 0
    saved = yaml.safe_load((tmp_path / "exp" / "model" / "config.yaml").read_text())
    assert saved["kind"] == "codec_lm" and saved["card"] == 64 and saved["n_q"] == 4
    train = [json.loads(line) for line in (tmp_path / "exp" / "train.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in train]  # steps 10, 20, ..., 60 (3.39, 1.78, 0.97, 0.61, 0.43, 0.32)
    assert [row["step"] for row in train] == [10, 20, 30, 40, 50, 60]
    assert 2.5 < losses[0] < math.log(64) + 0.2  # from about uniform over the 64 codes
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.6  # it learns the 8 clips
    valid = [json.loads(line) for line in (tmp_path / "exp" / "valid.jsonl").read_text().splitlines()]
    assert valid[-1]["step"] == 60 and len([k for k in valid[-1] if k.startswith("nll/cb")]) == 4
