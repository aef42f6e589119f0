"""Masked (MaskGIT) sampling at 12/24/36 steps vs autoregressive sampling with a KV cache, 10 s of tokens.

Both models have the same transformer (width, depth, heads) over the same codebooks, so the same parameter
count up to their embedding tables and heads; random weights (the speed does not depend on them). The
masked model fills 500 frames x 4 codebooks from a full mask in one window; the AR model (delay pattern,
KV cache) generates the same 500 frames x 4 codebooks. One process, one after the other.

Usage (from the repository root):
    OMP_NUM_THREADS=2 python tools/bench/bench_masked.py [--frames 500] [--n-q 4] [--dim 256] [--layers 6]
"""

from __future__ import annotations

import argparse
import time

import torch

from funcodec_lite.lm.codec_lm import CodecLM, CodecLMConfig
from funcodec_lite.lm.generate import SamplingConfig, generate
from funcodec_lite.lm.masked import MaskedLM, MaskedLMConfig
from funcodec_lite.lm.maskgit import MaskGITConfig, maskgit_generate
from funcodec_lite.lm.transformer import TransformerConfig
from funcodec_lite.utils.profile import count_parameters


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--n-q", type=int, default=4)
    parser.add_argument("--card", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    stack = dict(dim=args.dim, n_layers=args.layers, n_heads=args.heads)
    masked = MaskedLM(MaskedLMConfig(n_q=args.n_q, card=args.card,
                                     transformer=TransformerConfig(causal=False, **stack))).eval()
    ar = CodecLM(CodecLMConfig(n_q=args.n_q, card=args.card, pattern="delay",
                               transformer=TransformerConfig(**stack))).eval()
    with torch.no_grad():
        ar.heads[0].bias[args.card] = -1e4  # no EOS: all the frames
    codes = torch.zeros(1, args.n_q, args.frames, dtype=torch.long)
    mask = torch.ones_like(codes, dtype=torch.bool)
    rows = []
    for steps in (12, 24, 36):
        seconds = timed(lambda s=steps: maskgit_generate(masked, codes, mask, MaskGITConfig(steps=s),
                                                         generator=torch.Generator().manual_seed(0)))
        rows.append((f"masked, {steps} steps", count_parameters(masked), steps, seconds))
    seconds = timed(lambda: generate(ar, 1, args.frames, SamplingConfig(top_k=250),
                                     generator=torch.Generator().manual_seed(0)))
    rows.append(("autoregressive (delay, KV cache)", count_parameters(ar), args.frames + args.n_q - 1,
                 seconds))
    print(f"{args.frames} frames x {args.n_q} codebooks of {args.card}, dim {args.dim}, {args.layers} "
          f"layers, {args.heads} heads, {torch.get_num_threads()} threads\n")
    print("| sampler | parameters | model calls | seconds | x the AR time |")
    print("|---|---|---|---|---|")
    for name, params, calls, seconds in rows:
        print(f"| {name} | {params / 1e6:.2f} M | {calls} | {seconds:.2f} | {seconds / rows[-1][3]:.2f} |")


if __name__ == "__main__":
    main()
