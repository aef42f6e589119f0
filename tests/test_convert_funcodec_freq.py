"""`codec convert --from funcodec` on FunCodec's frequency-domain models (``model: freq_codec``), exactly.

FunCodec's own classes (``funcodec`` 0.2.0: ``FreqCodec``, ``SEANetEncoder2d``, ``SEANetDecoder2d``,
``CostumeQuantizer``) are built from each config shape FunCodec released or ships in its recipe, as its
``GANSpeechCodecTask.build_model`` builds them, with seeded random weights perturbed so that no layer is
trivial (GroupNorm affine ≠ (1, 0), weight-norm g ≠ ‖v‖, random codebooks). The state dict is saved as
FunCodec's ``model.pth`` + ``config.yaml``, converted by the command line, and the converted model must
give FunCodec's codes exactly (``inference_encoding``, the call ``Speech2Token(run_mod="encode")`` makes)
and its decoded audio (``inference_decoding``, ``run_mod="decode"``) to 1e-4.

FunCodec scales each input to unit RMS before encoding (``audio_normalize: true`` in every released
config); the converted model does not (a note says so), so its inputs here are scaled that way.
"""

import copy
import math
import re

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from reference_libs import import_reference

from funcodec_lite import load_model_dir
from funcodec_lite.cli import main
from funcodec_lite.codec.families.funcodec_freq import FunCodecFreq
from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.inference.tokens import load_tokens

codec_freq = import_reference("funcodec.models.codec_freq")
seanet_encoder = import_reference("funcodec.models.encoder.seanet_encoder")
seanet_decoder = import_reference("funcodec.models.decoder.seanet_decoder")
costume_quantizer = import_reference("funcodec.models.quantizer.costume_quantizer")

STFT_HOP = 160


def recipe_config(domain: str = "mag_phase", ratios=((4, 1), (4, 1), (4, 2), (4, 1)), n_q: int = 32,
                  bins: int = 1024, **net) -> dict:
    """A FreqCodec ``config.yaml`` as FunCodec's LibriTTS recipe writes it
    (egs/LibriTTS/codec/conf/freqcodec_{mag_phase,mag_angle}_16k_n32_600k_step*.yaml), with ``net``
    overriding encoder_conf and decoder_conf (``tr_conv_group_ratio`` the decoder's only)."""
    channels = {"mag_phase": 3, "mag_angle": 2}[domain]
    common = {"ratios": [list(r) for r in ratios], "norm": "time_group_norm",
              "norm_params": {"num_groups": 1}, "causal": False, "dilation_base": 1}
    transpose = net.pop("tr_conv_group_ratio", None)
    encoder = {**common, **net}
    decoder = {**common, "channels": channels, **net}
    if transpose is not None:
        decoder["tr_conv_group_ratio"] = transpose
    choices = [n for n in (1, 2, 4, 8, 16, 32) if n <= n_q]
    return {
        "input_size": channels, "sampling_rate": 16000,
        "encoder": "encodec_seanet_encoder_2d", "encoder_conf": encoder,
        "quantizer": "costume_quantizer",
        "quantizer_conf": {"codebook_size": bins, "num_quantizers": n_q, "ema_decay": 0.99,
                           "kmeans_init": True, "sampling_rate": 16000, "quantize_dropout": True,
                           "rand_num_quant": choices, "use_ddp": True,
                           "encoder_hop_length": STFT_HOP * math.prod(t for _, t in ratios)},
        "decoder": "encodec_seanet_decoder_2d", "decoder_conf": decoder,
        "discriminator": "multiple_disc", "model": "freq_codec",
        "model_conf": {"odim": 128, "multi_spectral_window_powers_of_two": [5, 6, 7, 8, 9, 10],
                       "target_sample_hz": 16000, "audio_normalize": True, "use_power_spec_loss": True,
                       "segment_dur": None, "overlap_ratio": None, "codec_domain": [domain, domain]},
        "optim": "adam", "optim_conf": {"lr": 0.0003},
    }


# The shapes: the recipe's mag/phase and mag/angle at 320 samples per frame and mag/phase at 640, and the
# two released models, gr1nq32ds320 (0.52 M parameters: FunCodec's "dwconv", groups of two channels, no
# LSTM) and gr8nq32ds320 (4.50 M: groups eight times wider, no LSTM), as we read their names and sizes
# (their config.yaml is not in FunCodec's repository); widths reduced where the full size is slow.
SHAPES = {
    "mag_phase_ds320": recipe_config("mag_phase", n_filters=8, n_q=6, bins=64),
    "mag_angle_ds320": recipe_config("mag_angle", n_filters=8, n_q=6, bins=64),
    "mag_phase_ds640": recipe_config("mag_phase", ratios=((4, 2), (4, 1), (4, 2), (4, 1)), n_filters=8,
                                     n_q=6, bins=64),
    "gr1nq32ds320": recipe_config("mag_phase", n_filters=16, seq_model="none", conv_group_ratio=1,
                                  tr_conv_group_ratio=1, n_q=6, bins=64),
    "gr8nq32ds320": recipe_config("mag_phase", n_filters=32, seq_model="none", conv_group_ratio=8, n_q=6,
                                  bins=64),
}


def weight_norm_config() -> dict:
    """FreqCodec's own defaults (weight norm, no GroupNorm, dilation 2)."""
    config = recipe_config("mag_angle", n_filters=8, n_q=4, bins=32)
    for part in ("encoder_conf", "decoder_conf"):
        for key in ("norm", "norm_params", "dilation_base"):
            config[part].pop(key)
    return config


def per_layer_codebooks(state: dict) -> dict:
    """The state dict with its stacked (``use_ddp``) codebooks as FunCodec's per-layer RVQ names them
    (``quantizer.rq.model.layers.{i}._codebook.*``; funcodec 0.2.0 cannot build that RVQ itself: it passes
    ``q0_ds_ratio`` to ``VectorQuantization``)."""
    out = {}
    for key, value in state.items():
        match = re.fullmatch(r"quantizer\.rq\.model\.(\w+)", key)
        if match:
            name = match.group(1)
            out.update({f"quantizer.rq.model.layers.{i}._codebook.{name}": v for i, v in enumerate(value)})
        else:
            out[key] = value
    return out


def build_reference(config: dict, seed: int) -> torch.nn.Module:
    """FunCodec's FreqCodec for ``config``, built as GANSpeechCodecTask.build_model does, perturbed."""
    torch.manual_seed(seed)
    encoder = seanet_encoder.SEANetEncoder2d(input_size=config["input_size"], **config["encoder_conf"])
    quantizer = costume_quantizer.CostumeQuantizer(input_size=encoder.output_size(),
                                                   **config["quantizer_conf"])
    decoder = seanet_decoder.SEANetDecoder2d(input_size=quantizer.output_size(), **config["decoder_conf"])
    model = codec_freq.FreqCodec(input_size=config["input_size"], encoder=encoder, quantizer=quantizer,
                                 decoder=decoder, discriminator=None, **copy.deepcopy(config["model_conf"]))
    return perturb(model, seed)


def save_release(model: torch.nn.Module, config: dict, directory, per_layer: bool = False) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    torch.save(per_layer_codebooks(state) if per_layer else state, directory / "model.pth")
    (directory / "config.yaml").write_text(yaml.safe_dump(config))


def signal(batch: int, length: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 16000
    tone = torch.sin(2 * math.pi * (180 + 40 * torch.rand(batch, 1, 1, generator=generator)) * t)
    return 0.2 * tone + 0.05 * torch.randn(batch, 1, length, generator=generator)


def unit_rms(wav: torch.Tensor) -> torch.Tensor:
    """FunCodec's audio_normalize: the input over (1e-8 + its RMS)."""
    return wav / (1e-8 + wav.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt())


def reference_codes(model, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
    """FunCodec's codes as its inference script writes them: [B, n_q, ceil(T / hop)]; ``n_q`` codebooks
    are asked for as FunCodec's ``bit_width`` (bits per second)."""
    hop = model.quantizer.encoder_hop_length
    bit_width = None if n_q is None else (n_q + 0.5) * math.log2(model.quantizer.codebook_size) * 16000 / hop
    with torch.no_grad():
        result = model.inference_encoding(wav[:, 0], need_recon=False, bit_width=bit_width)
    (codes,) = result["code_indices"]  # [n_q, B, N'] for the one segment
    return codes.permute(1, 0, 2)[..., :math.ceil(wav.shape[-1] / hop)]


def reference_audio(model, codes: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.inference_decoding(codes.permute(0, 2, 1))["recon_speech"]


def convert(tmp_path, model, config, capsys, per_layer: bool = False) -> FunCodecFreq:
    save_release(model, config, tmp_path / "release", per_layer)
    args = ["convert", "--from", "funcodec", str(tmp_path / "release"), str(tmp_path / "converted")]
    assert main(args) == 0
    out = capsys.readouterr()[0]
    assert "audio_normalize" in out and "model id" in out
    converted = load_model_dir(tmp_path / "converted")
    assert isinstance(converted, FunCodecFreq)
    return converted


def check_exact(ours: FunCodecFreq, reference, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
    expected = reference_codes(reference, wav, n_q)
    with torch.no_grad():
        codes = ours.encode(unit_rms(wav), n_q)
        assert torch.equal(codes, expected)
        audio = reference_audio(reference, codes)
        decoded = ours.decode(codes)
        assert decoded.shape == (wav.shape[0], 1, codes.shape[-1] * ours.samples_per_frame)
        assert audio.shape[-1] == decoded.shape[-1] - STFT_HOP  # FunCodec stops one STFT hop short
        torch.testing.assert_close(decoded[..., :audio.shape[-1]], audio, rtol=0, atol=1e-4)
        trimmed = ours.decode(codes, length=wav.shape[-1])
        common = min(wav.shape[-1], audio.shape[-1])
        assert trimmed.shape[-1] == wav.shape[-1]
        torch.testing.assert_close(trimmed[..., :common], audio[..., :common], rtol=0, atol=1e-4)
    return codes


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_released_shapes_give_funcodecs_codes_and_audio(shape, tmp_path, capsys):
    config = SHAPES[shape]
    reference = build_reference(config, seed=len(shape))
    ours = convert(tmp_path, reference, config, capsys)
    assert ours.samples_per_frame == config["quantizer_conf"]["encoder_hop_length"]
    assert ours.frame_rate == 16000 / ours.samples_per_frame
    for length in (300, 1601, 6400):  # shorter than a frame, odd, a multiple of the hop
        wav = signal(2, length, seed=length)
        batched = check_exact(ours, reference, wav)
        assert len(batched.unique()) > 3  # the codes are not degenerate
        assert torch.equal(check_exact(ours, reference, wav[1:]), batched[1:])  # unbatched: the same codes


def test_real_size_models(tmp_path, capsys):
    """The recipe's mag/phase model at its full size (32 filters, 2-layer LSTM of 512, 32 × 1024
    codebooks) on 3 s, and the released gr8 shape with its 32 × 1024 codebooks, fewer codebooks too."""
    config = recipe_config("mag_phase")
    reference = build_reference(config, seed=11)
    ours = convert(tmp_path / "full", reference, config, capsys)
    assert (ours.n_q, ours.codebook_size, ours.frame_rate, ours.bandwidth()) == (32, 1024, 50, 16.0)
    codes = check_exact(ours, reference, signal(1, 48000, seed=5))
    assert codes.shape == (1, 32, 150)
    check_exact(ours, reference, signal(2, 1601, seed=6), n_q=4)
    config = recipe_config("mag_phase", seq_model="none", conv_group_ratio=8)
    reference = build_reference(config, seed=12)
    ours = convert(tmp_path / "gr8", reference, config, capsys)
    theirs = [*reference.encoder.parameters(), *reference.decoder.parameters()]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs)
    check_exact(ours, reference, signal(2, 1601, seed=7))
    check_exact(ours, reference, signal(1, 3000, seed=8), n_q=1)


def test_weight_norm_and_per_layer_codebooks(tmp_path, capsys):
    config = weight_norm_config()
    reference = build_reference(config, seed=21)
    assert any(name.endswith("weight_g") for name in reference.state_dict())
    ours = convert(tmp_path, reference, config, capsys, per_layer=True)
    for length in (300, 2001):
        check_exact(ours, reference, signal(2, length, seed=length))
    wav = unit_rms(signal(1, 2001, seed=1))
    folded = load_model_dir(tmp_path / "converted")  # (a deep copy would share the parametrized classes)
    assert folded.fold_weight_norm() > 0
    with torch.no_grad():
        codes = ours.encode(wav)
        assert torch.equal(folded.encode(wav), codes)
        torch.testing.assert_close(folded.decode(codes), ours.decode(codes), rtol=0, atol=1e-5)


def test_codec_cli_encodes_and_decodes_a_converted_model(tmp_path, capsys):
    config = SHAPES["gr1nq32ds320"]
    reference = build_reference(config, seed=31)
    convert(tmp_path, reference, config, capsys)
    wav = unit_rms(signal(1, 4000, seed=2))[0, 0].numpy()
    sf.write(tmp_path / "a.wav", wav, 16000, subtype="FLOAT")
    model = str(tmp_path / "converted")
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), "--model", model]) == 0
    tokens = load_tokens(tmp_path / "a.npz").codes
    expected = reference_codes(reference, torch.from_numpy(wav)[None, None])
    assert torch.equal(torch.as_tensor(np.asarray(tokens)).reshape(expected.shape), expected)
    assert main(["decode", str(tmp_path / "a.npz"), str(tmp_path / "b.wav"), "--model", model]) == 0
    decoded, rate = sf.read(tmp_path / "b.wav", dtype="float32")
    audio = reference_audio(reference, expected)[0, 0].numpy()
    assert rate == 16000 and decoded.shape == (4000,)
    assert np.abs(decoded[:audio.shape[-1]] - audio[:4000]).max() < 1e-4 + 2 ** -15  # 16-bit PCM at most
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt1 {tmp_path / 'a.wav'}\n")
    assert main(["tokenize", "--scp", str(scp), "--out-dir", str(tmp_path / "tokens"), "--model", model]) == 0
    tokenized = torch.as_tensor(np.asarray(load_tokens(tmp_path / "tokens" / "utt1.npz").codes))
    assert torch.equal(tokenized.reshape(expected.shape), expected)
    tokenizer = Tokenizer.from_pretrained(model)
    codes, frames = tokenizer.encode([torch.from_numpy(wav), torch.from_numpy(wav[:3000])], 16000)
    assert torch.equal(codes[:1], expected) and frames.tolist() == [13, 10]
    shorter = reference_codes(reference, torch.from_numpy(wav[:3000])[None, None])
    assert torch.equal(codes[1:, :, :10], shorter)  # each length coded alone (GroupNorm spans the signal)
    capsys.readouterr()


def test_short_input_is_one_line(tmp_path, capsys):
    config = SHAPES["gr1nq32ds320"]
    ours = convert(tmp_path, build_reference(config, seed=1), config, capsys)
    with pytest.raises(ValueError, match="at least 257 samples"):
        ours.encode(torch.zeros(1, 1, 200))


def _bad(config: dict, where: str, key: str, value) -> dict:
    config = copy.deepcopy(config)
    config[where][key] = value
    return config


@pytest.mark.parametrize("case, expected", [
    ("codec_domain", "codec_domain \\['mag', 'mag'\\]"),
    ("segment_dur", "model_conf.segment_dur 1.0"),
    ("seq_model", "seq_model 'transformer'"),
    ("unknown", "encoder_conf: option\\(s\\) funcodec_lite does not know: \\['foo'\\]"),
    ("causal", "causal true"),
    ("encoder", "encoder 'encodec_seanet_encoder' cannot be converted"),
    ("shape", "shape"),
    ("missing_weights", "missing \\['encoder.layers.0.conv.bias'"),
    ("truncated", "not a readable PyTorch checkpoint"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, expected):
    config = SHAPES["gr1nq32ds320"]
    state = build_reference(config, seed=2).state_dict()
    if case == "codec_domain":
        config = _bad(config, "model_conf", "codec_domain", ["mag", "mag"])
    elif case == "segment_dur":
        config = _bad(config, "model_conf", "segment_dur", 1.0)
    elif case in ("seq_model", "causal"):
        value = "transformer" if case == "seq_model" else True
        config = _bad(_bad(config, "encoder_conf", case, value), "decoder_conf", case, value)
    elif case == "unknown":
        config = _bad(config, "encoder_conf", "foo", 1)
    elif case == "encoder":
        config = {**config, "encoder": "encodec_seanet_encoder"}
    elif case == "shape":
        state = build_reference(_bad(_bad(config, "encoder_conf", "n_filters", 8), "decoder_conf",
                                     "n_filters", 8), seed=2).state_dict()
    elif case == "missing_weights":
        state = {k: v for k, v in state.items() if not k.startswith("encoder.")}
    release = tmp_path / "release"
    release.mkdir()
    (release / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save(state, release / "model.pth")
    if case == "truncated":
        (release / "model.pth").write_bytes((release / "model.pth").read_bytes()[:5000])
    code = main(["convert", "--from", "funcodec", str(release), str(tmp_path / "out")])
    err = capsys.readouterr()[1]
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(expected, err), err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# ------------------------------------------------------------------------------------------------
# FunCodec's semantic augmentation (model: codec_semantic_aug): a time-domain codec conditioned on phoneme
# ids ("ppg"), converted into our Codec with SemanticConfig(frontend="funcodec").
def semantic_config(usage: str, ds_type: str = "conv") -> dict:
    seanet = {"n_filters": 4, "ratios": [4, 2], "dimension": 16, "n_residual_layers": 1,
              "norm": "time_group_norm", "causal": False, "seq_model": "lstm", "seq_layer_num": 1}
    return {
        "input_size": 1, "sampling_rate": 16000,
        "encoder": "encodec_seanet_encoder", "encoder_conf": dict(seanet),
        "quantizer": "costume_quantizer",
        "quantizer_conf": {"codebook_size": 32, "num_quantizers": 4, "ema_decay": 0.99, "kmeans_init": True,
                           "sampling_rate": 16000, "quantize_dropout": True, "rand_num_quant": [1, 2, 4],
                           "use_ddp": True, "encoder_hop_length": 8},
        "decoder": "encodec_seanet_decoder",
        "decoder_conf": {k: v for k, v in seanet.items() if k != "dimension"},
        "model": "codec_semantic_aug",
        "model_conf": {"odim": 16, "target_sample_hz": 16000, "audio_normalize": False,
                       "segment_dur": None, "overlap_ratio": None,
                       "multi_spectral_window_powers_of_two": [],  # (its mel filters are put on CUDA)
                       "ppg_conf": {"ppg_dim": 10, "ppg_ds_rate": 2, "ppg_ds_type": ds_type,
                                    "ppg_usage_mod": usage}},
    }


def build_semantic_reference(config: dict, seed: int) -> torch.nn.Module:
    semantic_aug = import_reference("funcodec.models.codec_semantic_aug")
    torch.manual_seed(seed)
    encoder = seanet_encoder.SEANetEncoder(input_size=1, **config["encoder_conf"])
    quantizer = costume_quantizer.CostumeQuantizer(input_size=encoder.output_size(),
                                                   **config["quantizer_conf"])
    decoder = seanet_decoder.SEANetDecoder(input_size=quantizer.output_size(), **config["decoder_conf"])
    model = semantic_aug.CodecSemanticAug(input_size=1, encoder=encoder, quantizer=quantizer, decoder=decoder,
                                          discriminator=None, **copy.deepcopy(config["model_conf"]))
    return perturb(model, seed)


def perturb(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.mul_(1 + 0.2 * noise).add_(0.05 * torch.randn(parameter.shape, generator=generator))
        for name, buffer in model.quantizer.named_buffers():
            if name.endswith("inited"):
                buffer.fill_(1)
            elif name.endswith(("embed", "embed_avg")):
                buffer.copy_(torch.randn(buffer.shape, generator=generator))
    return model.eval()


def semantic_reference(model, wav: torch.Tensor, ppg: torch.Tensor, usage: str):
    """FunCodec's codes [B, n_q, N] and audio [B, 1, T] for one segment. ``concat`` and ``addition`` run
    its ``inference``; ``residual`` and ``supervision`` follow their branch of it by hand (FunCodec 0.2.0's
    ``inference`` also runs its concatenating branch in those modes and fails: on the channels of the
    transposed ppg in ``residual``, on its one-segment assertion in ``supervision``)."""
    with torch.no_grad():
        if usage == "concat":
            result = model.inference(wav[:, 0], ppg)
            return result["code_indices"][0].permute(1, 0, 2), result["recon_speech"]
        emb, _ = model._encode_frame(wav)  # [B, N, D]
        ppg_seg = model._process_ppg(ppg, None, wav.shape[-1])[0].transpose(1, 2)
        ppg_seg = torch.nn.functional.pad(ppg_seg, (0, 0, 0, emb.shape[1] - ppg_seg.shape[1]), "replicate")
        if usage == "residual":
            quantized, codes, _ = model.quantizer.inference(emb - ppg_seg)
            audio = model._decode_frame((quantized + ppg_seg, None))
        else:
            quantized, codes, _ = model.quantizer.inference(emb)
            audio = model._decode_frame((quantized + (ppg_seg if usage == "addition" else 0), None))
        if usage == "addition":
            whole = model.inference(wav[:, 0], ppg)["recon_speech"]
            torch.testing.assert_close(whole, audio[..., :wav.shape[-1]])
        return codes.permute(1, 0, 2), audio[..., :wav.shape[-1]]


@pytest.mark.parametrize("usage, ds_type, mode", [("residual", "conv", "res"), ("addition", "skip", "add"),
                                                  ("concat", "conv", "cat"), ("supervision", "conv", None)])
def test_semantic_augmented_models(tmp_path, capsys, usage, ds_type, mode):
    config = semantic_config(usage, ds_type)
    reference = build_semantic_reference(config, seed=41)
    if usage in ("residual", "supervision"):
        with pytest.raises((AssertionError, RuntimeError)), torch.no_grad():
            reference.inference(signal(1, 800, seed=0)[:, 0], torch.zeros(1, 200, dtype=torch.long))
    save_release(reference, config, tmp_path / "release")
    assert main(["convert", "--from", "funcodec", str(tmp_path / "release"), str(tmp_path / "out")]) == 0
    notes = capsys.readouterr()[0]
    ours = load_model_dir(tmp_path / "out")
    assert (ours.semantic.config.mode if ours.semantic is not None else None) == mode
    assert ("phoneme" in notes) == (mode is not None)
    generator = torch.Generator().manual_seed(3)
    for batch, length in ((2, 1600), (1, 1603), (2, 4001)):
        wav = signal(batch, length, seed=length)
        ppg = torch.randint(0, 10, (batch, 2 * (length // 8)), generator=generator)  # 2 per code frame
        expected_codes, expected_audio = semantic_reference(reference, wav, ppg, usage)
        semantic = {} if mode is None else {"semantic": ppg}
        with torch.no_grad():
            codes = ours.encode(wav, **semantic)
            assert torch.equal(codes, expected_codes)
            decoded = ours.decode(codes, length=length, **semantic)
        torch.testing.assert_close(decoded, expected_audio, rtol=0, atol=1e-4)
    if mode is not None:
        posteriors = torch.nn.functional.one_hot(ppg, 10).float() + 0.01  # FunCodec takes their argmax
        with torch.no_grad():
            assert torch.equal(ours.encode(wav, semantic=posteriors), codes)
        with pytest.raises(ValueError, match="semantic"):
            ours.encode(wav)


def test_semantic_refusals():
    from funcodec_lite.convert.funcodec import funcodec_config

    with pytest.raises(ValueError, match="ppg_usage_mod 'ptts'"):
        funcodec_config(semantic_config("ptts"))
    bad = semantic_config("residual")
    bad["model_conf"]["ppg_conf"]["speaker_dim"] = 4
    with pytest.raises(ValueError, match="ppg_conf: .* does not know: \\['speaker_dim'\\]"):
        funcodec_config(bad)
