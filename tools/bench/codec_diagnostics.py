"""Where a codec loses quality: bits, magnitude or phase, on a few utterances.

For each utterance (first ``--seconds`` of each) it scores, with the project's metrics (PESQ-wb, STOI,
mel distance):
- the codec at each ``--n-q`` and its decoder fed the encoder's continuous latent (no quantization):
  if the continuous latent is no better than the most codebooks, the bits are not the limit;
- the magnitude/phase swap at a 1024-point STFT (hop 256): the reference magnitudes with the codec's
  phase, and the codec's magnitudes with the reference phase: which of the two costs the score.
``--png`` draws the reference and decoded spectrograms (0-4 kHz) of the first utterance.

Usage (from the repository root):
    python tools/bench/codec_diagnostics.py --model funcodec_lite/codec/pretrained/default \\
        --wav CORPUS/wavs/fest_lj/fest_lj-000069.wav [--wav ...] [--n-q 1,3,12] [--png out.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from funcodec_lite import Codec
from funcodec_lite.audio import load_audio
from funcodec_lite.metrics import score_pair

N_FFT, HOP = 1024, 256


def _stft(x: torch.Tensor) -> torch.Tensor:
    return torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)


def _istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    return torch.istft(spec, N_FFT, HOP, window=torch.hann_window(N_FFT), length=length)


def variants(codec: Codec, wav: torch.Tensor, n_qs: list[int]) -> dict[str, torch.Tensor]:
    """Decoded signals [1, T] of ``wav`` [1, T]: per n_q, the continuous latent, and the two swaps."""
    length = wav.shape[-1]
    with torch.no_grad():
        out = {f"n_q {n}": codec.decode(codec.encode(wav[None], n_q=n), length=length)[0] for n in n_qs}
        out["continuous latent"] = codec.decode_latent(codec.encode_latent(wav[None]), length)[0]
    ref, hyp = _stft(wav[0]), _stft(out[f"n_q {max(n_qs)}"][0])
    out["ref magnitude + codec phase"] = _istft(ref.abs() * torch.exp(1j * hyp.angle()), length)[None]
    out["codec magnitude + ref phase"] = _istft(hyp.abs() * torch.exp(1j * ref.angle()), length)[None]
    return out


def spectrogram_png(ref: torch.Tensor, hyp: torch.Tensor, sample_rate: int, path: Path, title: str) -> None:
    """Reference and decoded log spectrograms (0-4 kHz) side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    top = int(4000 / (sample_rate / N_FFT)) + 1
    for axis, (name, x) in zip(axes, [("reference", ref), (title, hyp)]):
        spec = _stft(x[0]).abs().add(1e-6).log10() * 20
        axis.imshow(spec[:top].numpy(), origin="lower", aspect="auto", vmin=spec.max().item() - 70,
                    cmap="magma", extent=[0, x.shape[-1] / sample_rate, 0, 4000])
        axis.set_title(name)
        axis.set_xlabel("s")
    axes[0].set_ylabel("Hz")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--wav", action="append", required=True)
    parser.add_argument("--n-q", default="1,3,12")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--png", type=Path)
    args = parser.parse_args()
    codec = Codec.from_pretrained(args.model).eval()
    n_qs = [int(n) for n in args.n_q.split(",")]
    print("| utterance | signal | PESQ | STOI | mel distance |\n|---|---|---|---|---|")
    for index, path in enumerate(args.wav):
        wav, _ = load_audio(path, sample_rate=codec.sample_rate, channels=1)
        wav = wav[:, : int(args.seconds * codec.sample_rate)]
        decoded = variants(codec, wav, n_qs)
        for name, signal in decoded.items():
            s = score_pair(wav, signal.clamp(-1, 1), codec.sample_rate)
            print(f"| {Path(path).stem} | {name} | {s.pesq:.2f} | {s.stoi:.3f} | {s.mel_distance:.3f} |")
        if args.png and index == 0:
            spectrogram_png(wav, decoded[f"n_q {max(n_qs)}"], codec.sample_rate, args.png,
                            f"decoded, n_q = {max(n_qs)}")


if __name__ == "__main__":
    main()
