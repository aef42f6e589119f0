"""Prints parameters and GFLOPs per second of audio of the FreqCodec presets and a SEANet ds320 comparator."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
import yaml

from funcodec_lite.modules.freqcodec import FreqCodecConfig, FreqDecoder, FreqEncoder
from funcodec_lite.utils.profile import count_parameters, flops_per_second, profile_table

PRESETS = Path(__file__).resolve().parents[1] / "funcodec_lite" / "codec" / "presets"
# FunCodec paper Table 4 / README figures: (params, GFLOPs).
FUNCODEC = {
    "freqcodec_16k": ("16.21M (M3)", "6.47"),
    "freqcodec_16k_grouped": ("4.50M (M5, gr8)", "2.18"),
    "freqcodec_16k_tiny": ("0.52M (M6, gr1)", "0.34"),
    "SEANet ds320 (encodec)": ("14.85M (M1)", "3.72"),
}


def frames_for(seconds: float, sample_rate: int, hop: int) -> int:
    """STFT frames of ``seconds`` of audio with a centred STFT: floor(samples / hop) + 1."""
    return int(round(seconds * sample_rate)) // hop + 1


def profile_preset(name: str, seconds: float) -> tuple[dict[str, str], str]:
    """Row for one preset (encoder + decoder) and a line on its RVQ codebooks (not counted in the row)."""
    preset = yaml.safe_load((PRESETS / f"{name}.yaml").read_text())
    config = FreqCodecConfig.from_dict(preset["model"])
    encoder, decoder = FreqEncoder(config).eval(), FreqDecoder(config).eval()
    n = frames_for(seconds, preset["sample_rate"], preset["stft"]["hop_length"])
    features = torch.randn(1, config.in_channels, config.n_freq, n)
    flops = flops_per_second(lambda x: decoder(encoder(x), n), features, seconds)
    params = count_parameters(encoder) + count_parameters(decoder)
    q = preset["quantizer"]
    size = q["n_q"] * q["codebook_size"] * q["dim"]
    line = f"{name}: RVQ codebooks {q['n_q']} x {q['codebook_size']} x {q['dim']} = {size:,} values"
    return _row(name, params, flops, count_parameters(encoder)), line


def profile_seanet(seconds: float) -> dict[str, str] | None:
    """Row for EnCodec's SEANet (ratios [8,5,4,2], 32 filters, LSTM×2, D 128) at 16 kHz, if installed."""
    try:
        from encodec.modules import SEANetDecoder, SEANetEncoder
    except ImportError:
        return None
    kwargs = dict(channels=1, dimension=128, n_filters=32, ratios=[8, 5, 4, 2], lstm=2)
    encoder, decoder = SEANetEncoder(**kwargs).eval(), SEANetDecoder(**kwargs).eval()
    wav = torch.randn(1, 1, int(round(seconds * 16000)))
    flops = flops_per_second(lambda x: decoder(encoder(x)), wav, seconds)
    params = count_parameters(encoder) + count_parameters(decoder)
    return _row("SEANet ds320 (encodec)", params, flops, count_parameters(encoder))


def _row(name: str, params: int, flops: float, encoder_params: int) -> dict[str, str]:
    paper_params, paper_gflops = FUNCODEC[name]
    return {
        "params (enc + dec)": f"{params:,}",
        "encoder": f"{encoder_params:,}",
        "FunCodec params": paper_params,
        "GFLOPs / s (ours)": f"{flops / 1e9:.2f}",
        "FunCodec GFLOPs": paper_gflops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="audio duration profiled (default 1 s)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    rows, codebooks = {}, {}
    for name in ("freqcodec_16k", "freqcodec_16k_grouped", "freqcodec_16k_tiny"):
        rows[name], codebooks[name] = profile_preset(name, args.seconds)
    seanet = profile_seanet(args.seconds)
    if seanet is not None:
        rows["SEANet ds320 (encodec)"] = seanet
    print(profile_table(rows))
    print()
    print("\n".join(codebooks.values()))


if __name__ == "__main__":
    main()
