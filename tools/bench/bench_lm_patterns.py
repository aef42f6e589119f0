"""Codebook patterns side by side at (about) equal parameters: delay, flatten, VALL-E AR + NAR, multi-scale.

Each model trains on the engine for the same number of steps on the same token crops, then reports its
training step time, its held-out NLL per codebook (nats per code) and the time to sample 10 s (500 frames)
with its KV cache. VALL-E is two models (the AR stage over codebook 0 and the NAR stage over 1..K-1), each
half as deep, so the pair has the parameters of one; the multi-scale model splits its layers between the
global and the local stack the same way.

Usage (from the repository root, on token directories made by `codec tokenize`, e.g. the TTS recipe's):
    OMP_NUM_THREADS=2 python tools/bench/bench_lm_patterns.py --tokens egs/tts_lm/exp/tokens/train \
        --valid-tokens egs/tts_lm/exp/tokens/dev [--steps 300] [--n-q 8] [--dim 256] [--layers 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from funcodec_lite.lm.data import ExampleDataset, heldout_batches, token_examples
from funcodec_lite.lm.generate import SamplingConfig, generate
from funcodec_lite.lm.multiscale import generate_multiscale
from funcodec_lite.lm.training import LMTask, LMTrainConfig, heldout_nll
from funcodec_lite.train.engine import Engine
from funcodec_lite.utils.profile import count_parameters


def stack(dim: int, layers: int, heads: int, causal: bool = True) -> dict:
    return {"dim": dim, "n_layers": layers, "n_heads": heads, "causal": causal}


def models(dim: int, layers: int, heads: int) -> dict[str, list[dict]]:
    """Model sections per pattern (VALL-E: two models)."""
    half = max(1, layers // 2)
    return {
        "delay": [{"kind": "codec_lm", "pattern": "delay", "transformer": stack(dim, layers, heads)}],
        "flatten": [{"kind": "codec_lm", "pattern": "flatten", "transformer": stack(dim, layers, heads)}],
        "valle_ar_nar": [{"kind": "codec_lm", "pattern": "parallel", "transformer": stack(dim, half, heads)},
                         {"kind": "nar_lm", "transformer": stack(dim, layers - half, heads, causal=False)}],
        "multiscale": [{"kind": "multiscale_lm", "global_transformer": stack(dim, layers - half, heads),
                        "local_transformer": stack(dim, half, heads)}],
    }


def train(section: dict, n_q: int, card: int, train_set, valid, steps: int, batch: int) -> tuple:
    config = LMTrainConfig.from_dict({"model": section, "train": {"steps": steps, "batch_size": batch,
                                                                 "lr": 1e-3, "log_every": max(1, steps)}})
    task = LMTask(config, {"n_q": n_q, "card": card}, train_set, valid)
    engine = Engine(task, dataclasses.replace(config.train, checkpoint_every=0), None)  # in memory: no files
    engine.fit()
    model = engine.unwrap("model").model.eval()
    return model, engine.train_seconds / max(1, engine.step), heldout_nll(model, valid)


def sample_seconds(models_: list, frames: int) -> float:
    """Seconds to sample ``frames`` frames with the KV cache (VALL-E: the AR stage, then K-1 NAR passes)."""
    config = SamplingConfig(top_k=250)
    generator = torch.Generator().manual_seed(0)
    first = models_[0]
    with torch.no_grad():
        first.heads[0].bias[first.config.card] = -1e4  # no EOS: every model makes all the frames
    start = time.perf_counter()
    if first.model_kind == "multiscale_lm":
        generate_multiscale(first, 1, frames, config, generator=generator)
    else:
        out = generate(first, 1, frames, config, generator=generator)
        if len(models_) > 1:
            nar = models_[1]
            codes = torch.zeros(1, nar.config.n_q, frames, dtype=torch.long)
            codes[:, 0] = out.codes[:, 0]
            nar.fill(codes, torch.tensor([frames]), torch.tensor([0]))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--valid-tokens", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--segment-frames", type=int, default=100)
    parser.add_argument("--n-q", type=int, default=8)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--sample-frames", type=int, default=500)
    parser.add_argument("--patterns", default="delay,flatten,valle_ar_nar,multiscale")
    args = parser.parse_args()
    train_examples, info, _ = token_examples(args.tokens, args.n_q)
    valid_examples, _, _ = token_examples(args.valid_tokens, args.n_q, model_id=info.model_id)
    train_set = ExampleDataset(train_examples, args.segment_frames)
    valid = heldout_batches(valid_examples, args.batch_size, args.segment_frames, limit=64)
    print(f"{len(train_examples)} training / {len(valid_examples)} held-out utterances, {args.n_q} "
          f"codebooks of {info.codebook_size}, {args.steps} steps of {args.batch_size} x "
          f"{args.segment_frames} frames, {torch.get_num_threads()} threads\n", flush=True)
    header = " | ".join(f"NLL cb{k}" for k in range(args.n_q))
    print(f"| pattern | parameters | step (s) | {header} | mean NLL "
          f"| sample {args.sample_frames} frames (s) |")
    print("|---" * (args.n_q + 5) + "|", flush=True)
    for name in args.patterns.split(","):  # each row as soon as it is measured
        trained, step_s, nll = [], [], {}
        for section in models(args.dim, args.layers, args.heads)[name]:
            torch.manual_seed(0)
            model, seconds, scores = train(section, args.n_q, info.codebook_size, train_set, valid,
                                           args.steps, args.batch_size)
            trained.append(model)
            step_s.append(seconds)
            nll.update({k: v for k, v in scores.items() if k.startswith("nll/cb")})
        params = sum(count_parameters(m) for m in trained)
        sample_s = sample_seconds(trained, args.sample_frames)
        cells = " | ".join(f"{nll.get(f'nll/cb{k}', float('nan')):.3f}" for k in range(args.n_q))
        mean = sum(nll.values()) / max(1, len(nll))
        row = f"| {name} | {params / 1e6:.2f} M | {sum(step_s):.3f} | {cells} | {mean:.3f} | {sample_s:.1f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
