"""Reference codecs with random seeded weights at their release shapes, each beside our conversion of it.

Used by ``bench_interop.py``. Each builder returns an `InteropPair`: the reference package's own model (its
weights perturbed so no layer is trivial: weight-norm gains ≠ ‖v‖, non-zero biases, Snake α ≠ 1, random
codebooks) called as its users call it, and the model our converter makes of its state dict, with weight
norm folded as ``codec encode`` loads a model directory. No weights are downloaded.

The reference side works on its own objects (``ref_encode`` returns what the package returns, e.g. a list
of frames or of SNAC levels; ``ref_decode`` takes that); ``ref_codes`` turns it into codes [B, K, N] for the
comparison only, outside the timing.
"""

from __future__ import annotations

import copy
import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torchaudio_standin import import_package  # tools/bench/torchaudio_standin.py: encodec, dac, funcodec

from funcodec_lite.codec.interface import CompressionModel


@dataclass
class InteropPair:
    """A reference model and our conversion of it, ready to time.

    ``ref_encode(wav [1, C, T]) -> native``, ``ref_codes(native) -> codes [1, K, N]``,
    ``ref_decode(native) -> wav``; ours runs ``ours.encode(ours_input(wav), n_q)`` and ``ours.decode``.
    """

    family: str
    reference: str  # the package and class timed
    sample_rate: int
    ours: CompressionModel
    ref_encode: Callable[[torch.Tensor], Any]
    ref_codes: Callable[[Any], torch.Tensor]
    ref_decode: Callable[[Any], torch.Tensor]
    n_q: int | None = None
    ours_input: Callable[[torch.Tensor], torch.Tensor] = lambda wav: wav
    seeded_decode: bool = False  # the decoders draw noise (SNAC): seed both alike for the audio check


def _rand(shape: torch.Size, g: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=g)


def _randn(shape: torch.Size, g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g)


@torch.no_grad()
def perturb_weight_norm_model(model: torch.nn.Module, seed: int, bias: float = 0.01) -> None:
    """DAC / SNAC style models: gains (``weight_g`` / ``original0``) × 0.8–1.2, biases N(0, bias²), Snake α
    in 0.5–1.5, codebook parameters N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("weight_g", "original0"):
            p.mul_(0.8 + 0.4 * _rand(p.shape, g))
        elif leaf == "alpha":
            p.copy_(0.5 + _rand(p.shape, g))
        elif "codebook" in name:
            p.copy_(_randn(p.shape, g))
        elif leaf == "bias":
            p.copy_(bias * _randn(p.shape, g))


@torch.no_grad()
def perturb_mimi(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """moshi's or transformers' MimiModel: weights N(0, 1 / fan-in), layer scales 0.2–0.5, norms off (1, 0),
    codebooks from random EMA sums and usage counts (the cached codewords dropped)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("scale"):
            p.copy_(0.2 + 0.3 * _rand(p.shape, g))
        elif "norm" in name:
            p.copy_(float(name.endswith("weight")) + 0.1 * _randn(p.shape, g))
        elif p.dim() == 1:
            p.copy_(0.05 * _randn(p.shape, g))
        else:
            p.copy_(_randn(p.shape, g) / math.sqrt(p[0].numel()))
    for name, b in model.named_buffers():
        if name.endswith(("embedding_sum", "embed_sum")):
            b.copy_(_randn(b.shape, g))
        elif name.endswith("cluster_usage"):
            b.copy_(0.5 + _rand(b.shape, g))
    for module in model.modules():
        for cache in ("_embedding", "_embed"):
            if getattr(module, cache, None) is not None:
                setattr(module, cache, None)
    return model.eval()


def spread_codebooks(books: list[torch.Tensor], latent: torch.Tensor, seed: int, decay: float = 0.8) -> None:
    """Codebooks [bins, D] drawn around latents [B, D, N] as residuals shrink: the first around their mean
    at their spread, each later one around zero at ``decay`` times the spread of the one before."""
    g = torch.Generator().manual_seed(seed)
    frames = latent.transpose(1, 2).reshape(-1, latent.shape[1])
    mean, std = frames.mean(0), frames.std(0)
    with torch.no_grad():
        for i, book in enumerate(books):
            book.copy_(_randn(book.shape, g) * std * decay**i + (mean if i == 0 else 0))


def test_signal(sample_rate: int, seconds: float, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """[1, C, T]: a chirp (200 → 2000 Hz) plus noise."""
    n = round(seconds * sample_rate)
    t = torch.arange(n) / sample_rate
    chirp = 0.3 * torch.sin(2 * math.pi * (200 + 900 * t / seconds) * t)
    g = torch.Generator().manual_seed(seed)
    return chirp + 0.05 * torch.randn(1, channels, n, generator=g)


def _folded(model: CompressionModel) -> CompressionModel:
    model.fold_weight_norm()
    return model.eval()


# ---------------------------------------------------------------------------------------------------
# EnCodec 24 kHz (the encodec package)
def encodec_24khz(kbps: float = 6.0) -> InteropPair:
    encodec = import_package("encodec")

    from funcodec_lite.convert.encodec import encodec_to_codec

    torch.manual_seed(0)
    ref = encodec.EncodecModel.encodec_model_24khz(pretrained=False).eval()
    with torch.no_grad():
        latent = ref.encoder(test_signal(24000, 1.0, seed=9))
    layers = [layer._codebook for layer in ref.quantizer.vq.layers]
    spread_codebooks([book.embed for book in layers], latent, seed=1)
    for book in layers:
        book.embed_avg.copy_(book.embed)
        book.inited.fill_(1.0)
    ref.set_target_bandwidth(kbps)
    ours = _folded(encodec_to_codec(ref.state_dict()))
    return InteropPair("EnCodec 24 kHz", "encodec 0.1.1 EncodecModel", 24000, ours, ref.encode,
                       lambda frames: frames[0][0], ref.decode, n_q=ours.n_q_for_bandwidth(kbps))


# ---------------------------------------------------------------------------------------------------
# FunCodec (time domain and FreqCodec)
def _perturb_funcodec(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 0.2 * _randn(p.shape, g)).add_(0.05 * _randn(p.shape, g))
        for name, b in model.quantizer.named_buffers():
            if name.endswith("inited"):
                b.fill_(1)
            elif name.endswith(("embed", "embed_avg")):
                b.copy_(_randn(b.shape, g))
    return model.eval()


def _funcodec_reference(config: dict, model_module: str, model_class: str, encoder: str, decoder: str,
                        seed: int) -> torch.nn.Module:
    """FunCodec's model for a ``config.yaml`` mapping, built as its GANSpeechCodecTask.build_model does."""
    import importlib

    import_package(model_module)  # funcodec imports torchaudio: the stand-in where that cannot load
    from funcodec.models.quantizer.costume_quantizer import CostumeQuantizer

    enc_module, enc_class = encoder.rsplit(".", 1)
    dec_module, dec_class = decoder.rsplit(".", 1)
    torch.manual_seed(seed)
    enc = getattr(importlib.import_module(enc_module), enc_class)(input_size=config["input_size"],
                                                                  **config["encoder_conf"])
    quantizer = CostumeQuantizer(input_size=enc.output_size(), **config["quantizer_conf"])
    dec = getattr(importlib.import_module(dec_module), dec_class)(input_size=quantizer.output_size(),
                                                                  **config["decoder_conf"])
    cls = getattr(importlib.import_module(model_module), model_class)
    model = cls(input_size=config["input_size"], encoder=enc, quantizer=quantizer, decoder=dec,
                discriminator=None, **copy.deepcopy(config["model_conf"]))
    return _perturb_funcodec(model, seed + 1)


def _funcodec_config(model: str, encoder_conf: dict, decoder_conf: dict, input_size: int, hop: int,
                     model_conf: dict | None = None, n_q: int = 32, bins: int = 1024) -> dict:
    """A FunCodec ``config.yaml`` of the LibriTTS recipe (``n_q`` × ``bins`` codebooks, released: 32 × 1024;
    unit-RMS input, no segments); ``encoder_conf`` / ``decoder_conf`` as its released models."""
    return {"input_size": input_size, "sampling_rate": 16000, "model": model,
            "encoder": "encodec_seanet_encoder" + ("_2d" if model == "freq_codec" else ""),
            "decoder": "encodec_seanet_decoder" + ("_2d" if model == "freq_codec" else ""),
            "encoder_conf": encoder_conf, "decoder_conf": decoder_conf, "quantizer": "costume_quantizer",
            "quantizer_conf": {"codebook_size": bins, "num_quantizers": n_q, "ema_decay": 0.99,
                               "kmeans_init": True, "sampling_rate": 16000, "quantize_dropout": True,
                               "rand_num_quant": [n for n in (1, 2, 4, 8, 16, 32) if n <= n_q],
                               "use_ddp": True,
                               "encoder_hop_length": hop},
            "model_conf": {"odim": 128, "multi_spectral_window_powers_of_two": [5, 6, 7, 8, 9, 10],
                           "target_sample_hz": 16000, "audio_normalize": True, "use_power_spec_loss": True,
                           "segment_dur": None, "overlap_ratio": None, **(model_conf or {})}}


def unit_rms(wav: torch.Tensor) -> torch.Tensor:
    """FunCodec's ``audio_normalize``: the input over (1e-8 + its RMS); ours is given it so scaled."""
    return wav / (1e-8 + wav.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt())


def _funcodec_pair(family: str, config: dict, reference, hop: int) -> InteropPair:
    from funcodec_lite.convert.funcodec import funcodec_to_codec

    ours = _folded(funcodec_to_codec(reference.state_dict(), config).codec)

    def ref_encode(wav: torch.Tensor) -> torch.Tensor:  # what FunCodec's Speech2Token(run_mod="encode") runs
        codes = reference.inference_encoding(wav[:, 0], need_recon=False)["code_indices"][0]
        return codes.permute(1, 0, 2)[..., :math.ceil(wav.shape[-1] / hop)]

    def ref_decode(codes: torch.Tensor) -> torch.Tensor:
        return reference.inference_decoding(codes.permute(0, 2, 1))["recon_speech"]

    return InteropPair(family, f"funcodec 0.2.0 {type(reference).__name__}", 16000, ours, ref_encode,
                       lambda codes: codes, ref_decode, ours_input=unit_rms)


def funcodec_time() -> InteropPair:
    """The released ``audio_codec-encodec-*-16k-nq32ds320`` shape (FunCodec's recipe
    encodec_16k_n32_600k_step: SEANet defaults, 32 filters, ratios 8·5·4·2, 2-layer LSTM, GroupNorm)."""
    section = {"norm": "time_group_norm", "causal": False}
    # no training-loss mel transforms: funcodec 0.2.0's time-domain Audio2Mel puts them on CUDA
    config = _funcodec_config("encodec", dict(section), dict(section), 1, 320,
                              {"multi_spectral_window_powers_of_two": []})
    reference = _funcodec_reference(config, "funcodec.models.codec_basic", "Encodec",
                                    "funcodec.models.encoder.seanet_encoder.SEANetEncoder",
                                    "funcodec.models.decoder.seanet_decoder.SEANetDecoder", seed=3)
    return _funcodec_pair("FunCodec ds320 (time)", config, reference, 320)


def funcodec_freq_reference(n_q: int = 32, bins: int = 1024, seed: int = 5) -> tuple[torch.nn.Module, dict]:
    """FunCodec's FreqCodec at the released ``audio_codec-freqcodec_magphase-en-libritts-16k-gr8nq32ds320``
    shape as docs/models.md reads it (32 filters, no LSTM, ``conv_group_ratio: 8``, magnitude/phase, 50 Hz),
    with ``n_q`` × ``bins`` codebooks; and its ``config.yaml`` mapping."""
    section = {"ratios": [[4, 1], [4, 1], [4, 2], [4, 1]], "norm": "time_group_norm",
               "norm_params": {"num_groups": 1}, "causal": False, "dilation_base": 1, "n_filters": 32,
               "seq_model": "none", "conv_group_ratio": 8}
    config = _funcodec_config("freq_codec", dict(section), {**section, "channels": 3}, 3, 320,
                              {"codec_domain": ["mag_phase", "mag_phase"]}, n_q=n_q, bins=bins)
    reference = _funcodec_reference(config, "funcodec.models.codec_freq", "FreqCodec",
                                    "funcodec.models.encoder.seanet_encoder.SEANetEncoder2d",
                                    "funcodec.models.decoder.seanet_decoder.SEANetDecoder2d", seed=seed)
    return reference, config


def funcodec_freq() -> InteropPair:
    reference, config = funcodec_freq_reference()
    return _funcodec_pair("FunCodec FreqCodec gr8 ds320", config, reference, 320)


# ---------------------------------------------------------------------------------------------------
# DAC (descript-audio-codec)
def dac_release(name: str) -> InteropPair:
    """descript-audio-codec's ``DAC`` at a released shape (``16khz``, ``24khz``, ``44khz``), all codebooks."""
    dac = import_package("dac")

    from funcodec_lite.convert.dac import RELEASED_CONFIGS, convert_dac_file

    kwargs = RELEASED_CONFIGS[name]
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation of the old weight_norm that DAC uses
        ref = dac.model.DAC(**kwargs).eval()
    perturb_weight_norm_model(ref, 8)
    with tempfile.TemporaryDirectory() as tmp:  # DAC's own release format, read as `codec convert` reads it
        ref.save(f"{tmp}/weights.pth", package=False)
        ours = _folded(convert_dac_file(f"{tmp}/weights.pth")[0])
    return InteropPair(f"DAC {name.replace('khz', ' kHz').replace('44 ', '44.1 ')}", "dac 1.0.0 DAC",
                       ref.sample_rate, ours, lambda wav: ref.encode(ref.preprocess(wav, ref.sample_rate))[1],
                       lambda codes: codes, lambda codes: ref.decode(ref.quantizer.from_codes(codes)[0]))


# ---------------------------------------------------------------------------------------------------
# Mimi (moshi) and SNAC (snac)
def mimi_moshi(num_codebooks: int = 8) -> InteropPair:
    from moshi.models import loaders

    from funcodec_lite.convert.mimi import mimi_from_moshi

    torch.manual_seed(11)
    ref = perturb_mimi(loaders.get_mimi(None, None, num_codebooks=num_codebooks), 12)
    ours = _folded(mimi_from_moshi(ref.state_dict(), None, num_codebooks=num_codebooks))
    return InteropPair("Mimi", "moshi 0.2.13 MimiModel", 24000, ours, ref.encode, lambda codes: codes,
                       ref.decode)


SNAC_24KHZ = dict(sampling_rate=24000, encoder_dim=48, encoder_rates=[2, 4, 8, 8], decoder_dim=1024,
                  decoder_rates=[8, 8, 4, 2], attn_window_size=None, codebook_size=4096, codebook_dim=8,
                  vq_strides=[4, 2, 1], noise=True, depthwise=True)  # hubertsiuzdak/snac_24khz config.json


def snac_24khz() -> InteropPair:
    import snac

    from funcodec_lite.convert.snac import snac_config_from_dict, snac_from_state_dict

    torch.manual_seed(13)
    ref = snac.SNAC(**SNAC_24KHZ).eval()
    perturb_weight_norm_model(ref, 14, bias=0.003)
    ours = _folded(snac_from_state_dict(ref.state_dict(), snac_config_from_dict(SNAC_24KHZ)))
    return InteropPair("SNAC 24 kHz", "snac 1.2.1 SNAC", 24000, ours, ref.encode, ours.join_codes, ref.decode,
                       seeded_decode=True)


# ---------------------------------------------------------------------------------------------------
# transformers' EncodecModel, DacModel, MimiModel (default / hub configs)
def hf_encodec(kbps: float = 6.0) -> InteropPair:
    import transformers

    from funcodec_lite.convert.hf import encodec_from_hf

    torch.manual_seed(17)
    ref = transformers.EncodecModel(transformers.EncodecConfig()).eval()  # the 24 kHz model's shapes
    perturb_weight_norm_model(ref, 18, bias=0.02)
    with torch.no_grad():
        latent = ref.encoder(test_signal(24000, 1.0, seed=9))
    spread_codebooks([layer.codebook.embed for layer in ref.quantizer.layers], latent, seed=19, decay=0.5)
    ours = _folded(encodec_from_hf(ref.config.to_dict(), ref.state_dict()))
    return InteropPair("EnCodec 24 kHz (transformers)", "transformers EncodecModel", 24000, ours,
                       lambda wav: ref.encode(wav, bandwidth=kbps), lambda out: out.audio_codes[0],
                       lambda out: ref.decode(out.audio_codes, out.audio_scales)[0],
                       n_q=ours.n_q_for_bandwidth(kbps))


def hf_dac() -> InteropPair:
    """transformers' DacModel at descript/dac_16khz's config (weight norm removed, as saved there)."""
    import transformers

    from funcodec_lite.convert.dac import dac_from_hf

    config = transformers.DacConfig(encoder_hidden_size=64, downsampling_ratios=[2, 4, 5, 8],
                                    upsampling_ratios=[8, 5, 4, 2], decoder_hidden_size=1536,
                                    n_codebooks=12, codebook_size=1024, codebook_dim=8, hidden_size=1024,
                                    sampling_rate=16000)
    torch.manual_seed(21)
    ref = transformers.DacModel(config).eval()
    g = torch.Generator().manual_seed(22)
    with torch.no_grad():  # its N(0, 0.02²) init leaves the encoder's output all bias: rescale by fan-in
        for name, p in ref.named_parameters():
            if name.endswith("weight") and "codebook" not in name:
                gain = 1.0 if name.startswith("encoder") else 0.75
                p.copy_(_randn(p.shape, g) * gain / p[0].numel() ** 0.5)
    perturb_weight_norm_model(ref, 23)
    ours = _folded(dac_from_hf(ref.config.to_dict(), ref.state_dict()))
    return InteropPair("DAC 16 kHz (transformers)", "transformers DacModel", 16000, ours,
                       lambda wav: ref.encode(wav).audio_codes, lambda codes: codes,
                       lambda codes: ref.decode(audio_codes=codes).audio_values)


def hf_mimi() -> InteropPair:
    import transformers

    from funcodec_lite.convert.mimi import mimi_from_hf

    torch.manual_seed(25)
    ref = perturb_mimi(transformers.MimiModel(transformers.MimiConfig()).eval(), 26)  # kyutai/mimi shapes
    ours = _folded(mimi_from_hf(ref.config.to_dict(), ref.state_dict()))
    return InteropPair("Mimi (transformers)", "transformers MimiModel", 24000, ours,
                       lambda wav: ref.encode(wav).audio_codes, lambda codes: codes,
                       lambda codes: ref.decode(codes).audio_values)


BUILDERS: dict[str, Callable[[], InteropPair]] = {
    "encodec": encodec_24khz, "funcodec": funcodec_time, "funcodec_freq": funcodec_freq,
    "dac16": lambda: dac_release("16khz"), "dac24": lambda: dac_release("24khz"),
    "dac44": lambda: dac_release("44khz"), "mimi": mimi_moshi, "snac": snac_24khz,
    "hf_encodec": hf_encodec, "hf_dac": hf_dac, "hf_mimi": hf_mimi,
}
