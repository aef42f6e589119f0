"""KV cache vs full recomputation: autoregressive sampling of 10 s of codec tokens, same model, one run.

The model is a `CodecLM` with the delay pattern over 8 codebooks of 1024 codes (random weights: the speed
does not depend on them), sampling 500 frames (10 s at 50 frames/s) after no prompt. Both runs use the
same seed; the script checks that they give identical tokens and reports tokens per second of each and
their ratio.

Usage (from the repository root):
    OMP_NUM_THREADS=2 python tools/bench/bench_lm.py [--frames 500] [--dim 256] [--layers 6] [--heads 8]
        [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

from funcodec_lite.lm.codec_lm import CodecLM, CodecLMConfig
from funcodec_lite.lm.generate import SamplingConfig, generate
from funcodec_lite.lm.transformer import TransformerConfig
from funcodec_lite.utils.profile import count_parameters


def run(model: CodecLM, frames: int, cached: bool, device: str) -> tuple[torch.Tensor, float]:
    config = SamplingConfig(temperature=1.0, top_k=250, use_cache=cached)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = generate(model, 1, frames, config, generator=torch.Generator().manual_seed(0))
    if device == "cuda":
        torch.cuda.synchronize()
    return out.codes, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--n-q", type=int, default=8)
    parser.add_argument("--card", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    stack = TransformerConfig(dim=args.dim, n_layers=args.layers, n_heads=args.heads)
    config = CodecLMConfig(n_q=args.n_q, card=args.card, pattern="delay", transformer=stack)
    model = CodecLM(config).to(args.device).eval()
    with torch.no_grad():
        model.heads[0].bias[config.card] = -1e4  # no EOS: every run generates all the frames
    run(model, 8, True, args.device)  # warm-up
    cached_codes, cached_s = run(model, args.frames, True, args.device)
    plain_codes, plain_s = run(model, args.frames, False, args.device)
    tokens = args.frames * args.n_q
    print(f"CodecLM delay pattern, {args.n_q} x {args.card} codes, dim {args.dim}, {args.layers} layers, "
          f"{count_parameters(model) / 1e6:.2f} M parameters, {args.frames} frames "
          f"({args.frames + args.n_q - 1} steps), device {args.device}, {torch.get_num_threads()} threads")
    print()
    print("| decoding | seconds | tokens/s |")
    print("|---|---|---|")
    print(f"| KV cache | {cached_s:.2f} | {tokens / cached_s:.0f} |")
    print(f"| full recomputation | {plain_s:.2f} | {tokens / plain_s:.0f} |")
    print()
    print(f"speed-up: {plain_s / cached_s:.1f}x; identical tokens: {torch.equal(cached_codes, plain_codes)}")


if __name__ == "__main__":
    main()
