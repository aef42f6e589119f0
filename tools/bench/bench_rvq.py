"""Benchmark RVQ encode (one minute of latents) against vector-quantize-pytorch and encodec, side by side.

Usage: python tools/bench/bench_rvq.py [--frames 4500] [--layers 8] [--repeats 15] [--threads 1,all]
"""

from __future__ import annotations

import argparse
import os
import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timing import interleaved_samples  # tools/bench/timing.py (scripts run from this folder)

from funcodec_lite.quantization import ResidualVectorQuantizer, RVQConfig, nearest_codes

DIM, BINS, FRAME_RATE = 128, 1024, 75


@dataclass
class Timing:
    name: str
    median_ms: float
    min_ms: float


def latents(frames: int, seed: int) -> torch.Tensor:
    """Latent-like [1, D, T]: channel scales over ~2 decades, smooth frames plus noise."""
    scale = torch.logspace(-1, 0.7, DIM)[torch.randperm(DIM, generator=torch.Generator().manual_seed(0))]
    g = torch.Generator().manual_seed(seed)
    smooth = torch.randn(1, DIM, frames + 4, generator=g).unfold(-1, 5, 1).mean(-1) * 2
    return (smooth + 0.5 * torch.randn(1, DIM, frames, generator=g)) * scale[None, :, None]


def codebooks(layers: int) -> list[torch.Tensor]:
    """Per layer, K codewords near samples of that layer's residual on separate training latents."""
    residual = latents(4 * BINS, seed=1)[0].t().contiguous()
    g = torch.Generator().manual_seed(2)
    out = []
    for _ in range(layers):
        embed = residual[torch.randperm(residual.shape[0], generator=g)[:BINS]]
        embed = embed + 0.3 * embed.std(0) * torch.randn(embed.shape, generator=g)
        out.append(embed)
        residual = residual - embed[nearest_codes(residual, embed)]
    return out


def build(layers: int) -> dict[str, tuple[torch.nn.Module, Callable[[], torch.Tensor]]]:
    """The three quantizers with the same codebooks, each with an encode closure returning [B, n_q, T]."""
    from encodec.quantization import ResidualVectorQuantizer as EncodecRVQ
    from vector_quantize_pytorch import ResidualVQ

    embeds = codebooks(layers)
    ours = ResidualVectorQuantizer(RVQConfig(dim=DIM, n_q=layers, codebook_size=BINS)).eval()
    ref = EncodecRVQ(dimension=DIM, n_q=layers, bins=BINS).eval()
    lucid = ResidualVQ(dim=DIM, num_quantizers=layers, codebook_size=BINS).eval()
    for i, embed in enumerate(embeds):
        ours.layers[i].embed.copy_(embed)
        ours.layers[i].inited.fill_(1.0)
        ref.vq.layers[i]._codebook.embed.copy_(embed)
        ref.vq.layers[i]._codebook.inited.fill_(1.0)
        lucid.layers[i]._codebook.embed.copy_(embed[None])
    return {"ours": ours, "encodec": ref, "vq-pytorch": lucid}


def time_side_by_side(fns: dict[str, Callable[[], object]], repeats: int) -> list[Timing]:
    """Interleaved runs (order rotated every round) so load changes hit all implementations alike."""
    samples = {n: [t * 1e3 for t in ts] for n, ts in interleaved_samples(fns, repeats).items()}
    return [Timing(n, statistics.median(samples[n]), min(samples[n])) for n in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4500, help="latent frames (4500 = 1 min at 75 Hz)")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", default="1,all", help="comma list of thread counts; 'all' = every core")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    models = build(args.layers)
    x = latents(args.frames, seed=3)
    x_btd = x.transpose(1, 2).contiguous()  # vq-pytorch's native [B, T, D] layout, prepared once
    bandwidth = args.layers * 10 * FRAME_RATE / 1000  # kbps giving exactly `layers` codebooks
    ours, ref, lucid = models["ours"], models["encodec"], models["vq-pytorch"]

    def run_ours() -> torch.Tensor:
        return ours.encode(x)

    def run_encodec() -> torch.Tensor:
        with torch.no_grad():
            return ref.encode(x, FRAME_RATE, bandwidth).permute(1, 0, 2)

    def run_lucid() -> torch.Tensor:
        with torch.no_grad():
            return lucid(x_btd)[1].permute(0, 2, 1)

    fns = {"ours": run_ours, "encodec": run_encodec, "vq-pytorch": run_lucid}
    codes = {name: fn() for name, fn in fns.items()}
    same_as_encodec = torch.equal(codes["ours"], codes["encodec"])
    lucid_agree = (codes["ours"] == codes["vq-pytorch"]).float().mean().item()

    all_threads = os.cpu_count() or 1
    print(
        f"torch {torch.__version__}, {all_threads} CPUs, {args.frames} frames x D={DIM}, "
        f"{args.layers} layers x {BINS} codes, median of {args.repeats} interleaved runs"
    )
    print(f"codes identical to encodec: {same_as_encodec}; agreement with vq-pytorch: {lucid_agree:.4%}")
    print()
    print(
        "| threads | ours (ms) | encodec (ms) | vq-pytorch (ms) | encodec / ours | vq-pytorch / ours "
        "| best-run ratios (encodec, vq-pytorch) |"
    )
    print("|---|---|---|---|---|---|---|")
    for spec in args.threads.split(","):
        threads = all_threads if spec == "all" else int(spec)
        torch.set_num_threads(threads)
        t = {timing.name: timing for timing in time_side_by_side(fns, args.repeats)}
        o, e, v = t["ours"].median_ms, t["encodec"].median_ms, t["vq-pytorch"].median_ms
        best_e, best_v = t["encodec"].min_ms / t["ours"].min_ms, t["vq-pytorch"].min_ms / t["ours"].min_ms
        print(
            f"| {threads} | {o:.1f} | {e:.1f} | {v:.1f} | {e / o:.2f}x | {v / o:.2f}x "
            f"| {best_e:.2f}x, {best_v:.2f}x |"
        )
    if not same_as_encodec:
        raise SystemExit("codes differ from encodec")


if __name__ == "__main__":
    main()
