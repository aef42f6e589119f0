"""Classical speech codecs (codec2, Opus, Speex) and our codec models side by side on the same recordings.

Usage: python tools/bench/bench_classical.py [--data egs/speech_codec/data/real_speech]
           [--model DIR ...] [--n-q 1,2,4,8] [--codec2-modes 700C,1200,1600,2400,3200] [--opus-kbps 6,8,12]
           [--speex-quality 2,4,8] [--metrics classic,dnsmos,spk] [--out-dir exp/bench_classical]
           [--max-utts N]

The data directory is a Kaldi one (``wav.scp``); ``tools/make_real_speech_set.py`` makes the default one
from human recordings shipped in Debian and PyPI packages. Every system encodes and decodes every utterance
at 16 kHz; its output is time-aligned to the reference (by the lag that `classical_codecs.find_delay` finds
within +-100 ms: the peak of the amplitude envelopes' cross-correlation, refined on the waveform; per
utterance, as Speex at low quality delays some files by 14 ms and others not at all; the table gives the
median, the JSON the range), written to ``OUT/hyp/<system>/<utt>.wav`` and scored
by ``codec eval``'s own function (`funcodec_lite.jobs.evaluate.score_files`), so every score that job
reports becomes a column here. Bit rates are measured: payload bits over seconds of audio (codec2: its
headerless bit file, whose frames are padded to whole bytes; Opus and Speex: the Ogg packets that carry
audio; our models: n_q x log2(codebook size) x frame rate). The Debian tools come from
``apt-get install codec2 opus-tools speex`` (or ``bash tools/setup.sh --bench``); a codec whose tools are
missing is skipped with a note. Writes ``OUT/bench_classical.md`` and ``OUT/bench_classical.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classical_codecs import align, find_delay, make_codecs, run_codec, tools_missing  # noqa: E402

from funcodec_lite.audio.io import load_audio, resample, save_audio  # noqa: E402
from funcodec_lite.data.kaldi import read_scp  # noqa: E402
from funcodec_lite.jobs.evaluate import score_files  # noqa: E402
from funcodec_lite.metrics import MissingExtraError, Scorer  # noqa: E402

RATE = 16000
ROOT = Path(__file__).resolve().parents[2]
Coder = Callable[[torch.Tensor], tuple[torch.Tensor, float]]  # wav [T] at RATE -> (decoded [T'], bits)


@dataclass
class Row:
    """One system's line of the table: means over the utterances (NaN-aware), the median delay."""

    system: str
    nominal_kbps: float | None
    kbps: float | None
    delay_ms: float
    delay_range_ms: tuple[float, float]
    scores: dict[str, float] = field(default_factory=dict)
    utterances: int = 0
    failed: int = 0


def neural_coders(model_dir: str, n_qs: list[int]) -> list[tuple[str, float, Coder]]:
    """(name, kbps, coder) for our codec model in ``model_dir`` at each n_q (encoded once at the largest)."""
    from funcodec_lite import Codec

    codec = Codec.from_pretrained(model_dir).eval()
    label = Path(model_dir).name if Path(model_dir).name != "default" else "default model"
    cache: dict[int, torch.Tensor] = {}

    def make(n_q: int) -> Coder:
        @torch.no_grad()
        def code(wav: torch.Tensor) -> tuple[torch.Tensor, float]:
            x = resample(wav, RATE, codec.sample_rate)[None, None].expand(1, codec.channels, -1)
            key = id(wav)
            if key not in cache:
                cache[key] = codec.encode(x, n_q=max(n for n in n_qs if n <= codec.n_q))
            codes = cache[key]
            y = codec.decode(codes[:, :n_q], length=x.shape[-1]).clamp(-1, 1).mean(dim=1)[0]
            bits = codes.shape[-1] * n_q * math.log2(codec.codebook_size)
            return resample(y, codec.sample_rate, RATE), bits
        return code

    bits_per_s = math.log2(codec.codebook_size) * codec.frame_rate
    return [(f"{label} n_q {n}", n * bits_per_s / 1000, make(n)) for n in n_qs if n <= codec.n_q]


def run_system(name: str, coder: Coder, utts: list[tuple[str, Path, torch.Tensor]], out: Path,
               scorer: Scorer, max_lag: int = RATE // 10) -> tuple[dict[str, dict | None], float, list[int]]:
    """Codes every utterance, aligns it to its reference, writes and scores the output.

    Args:
        name: the system's row label (its outputs go to ``out/hyp/<name>/``).
        coder: wav [T] at 16 kHz -> (decoded [T'] at 16 kHz, payload bits).
        utts: (utterance id, reference file, reference audio [T] at 16 kHz).
        out: output folder.
        scorer: ``codec eval``'s metrics (`funcodec_lite.metrics.Scorer`).
        max_lag: the delay search range in samples (either sign).

    Returns:
        (per-utterance scores or None where scoring failed, payload bits in all, each utterance's delay in
        samples).
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    scores: dict[str, dict | None] = {}
    lags, bits = [], 0.0
    for utt, path, wav in utts:
        y, b = coder(wav)
        bits += b
        lags.append(find_delay(wav, y, max_lag))
        hyp = out / "hyp" / slug / f"{utt}.wav"
        hyp.parent.mkdir(parents=True, exist_ok=True)
        save_audio(hyp, align(y, lags[-1], wav.numel()), RATE, subtype="FLOAT")
        result = score_files(utt, path, hyp, scorer)
        scores[utt] = None if result.scores is None else {k: float(v) for k, v in dict(result.scores).items()}
    return scores, bits, lags


def summarize(name: str, nominal: float | None, bits: float | None, seconds: float, lags: list[int],
              scores: dict[str, dict | None]) -> Row:
    """The table row: NaN-aware means of each score over the utterances that could be scored, the median
    delay and its range."""
    ok = [s for s in scores.values() if s is not None]
    keys = list(ok[0]) if ok else []
    means = {}
    for k in keys:
        finite = [s[k] for s in ok if not math.isnan(s[k])]
        means[k] = math.fsum(finite) / len(finite) if finite else math.nan
    kbps = None if bits is None else bits / seconds / 1000
    ms = [1000 * lag / RATE for lag in lags]
    return Row(name, nominal, kbps, statistics.median(ms), (min(ms), max(ms)), means, len(ok),
               len(scores) - len(ok))


def markdown(rows: list[Row]) -> str:
    """One table: system, bit rates, delay, then every score the eval job reported."""
    keys = list(dict.fromkeys(k for r in rows for k in r.scores))

    def num(v: float | None, fmt: str) -> str:
        return "—" if v is None or math.isnan(v) else format(v, fmt)

    head = ["system", "kbps (nominal)", "kbps (measured)", "delay (ms)", *keys, "utts"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.system, num(r.nominal_kbps, ".2f"), num(r.kbps, ".2f"), f"{r.delay_ms:.1f}"]
        cells += [num(r.scores.get(k), ".2f" if "snr" in k else ".3f") for k in keys]
        cells.append(f"{r.utterances}" + (f" ({r.failed} failed)" if r.failed else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _finite(value: object) -> object:
    """``value`` with every NaN float replaced by None, recursively (strict JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _items(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "egs/speech_codec/data/real_speech")
    parser.add_argument("--model", action="append", default=None,
                        help="codec model directory (repeatable; default: the shipped default model)")
    parser.add_argument("--n-q", default="1,2,4,8", help="codebook counts for the models")
    parser.add_argument("--codec2-modes", default="700C,1200,1600,2400,3200")
    parser.add_argument("--opus-kbps", default="6,8,12", help="opusenc --bitrate targets (VBR)")
    parser.add_argument("--speex-quality", default="2,4,8", help="speexenc --wideband --quality values")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "exp/bench_classical")
    parser.add_argument("--metrics", default="classic",
                        help="codec eval's metric groups, e.g. classic,dnsmos,spk (default: classic)")
    parser.add_argument("--max-utts", type=int, default=None)
    args = parser.parse_args(argv)
    scp = args.data / "wav.scp"
    if not scp.is_file():
        print(f"bench_classical: {scp} not found (make it: python tools/make_real_speech_set.py)",
              file=sys.stderr)
        return 2
    try:
        n_qs = _ints(args.n_q)
        scorer = Scorer(args.metrics)
        utts = []
        for utt, path in read_scp(scp)[: args.max_utts]:
            wav, _ = load_audio(path, sample_rate=RATE, channels=1)
            utts.append((utt, Path(path), wav[0]))
        systems: list[tuple[str, float | None, Coder | None]] = [("original recordings", None, None)]
        for c in make_codecs(_items(args.codec2_modes), _items(args.opus_kbps), _items(args.speex_quality)):
            missing = tools_missing(c.tool)
            if missing:
                print(f"bench_classical: skipping {c.name}: {', '.join(missing)} not installed",
                      file=sys.stderr)
                continue
            systems.append((c.name, c.nominal_kbps, lambda w, c=c: run_codec(c, w, RATE)))
        for model in args.model or [str(ROOT / "funcodec_lite/codec/pretrained/default")]:
            systems += neural_coders(model, n_qs)
    except (OSError, ValueError, KeyError, MissingExtraError) as err:
        print(f"bench_classical: {err}", file=sys.stderr)
        return 2
    seconds = sum(w.numel() for _, _, w in utts) / RATE
    rows, per_utt = [], {}
    for name, nominal, coder in systems:
        start = time.perf_counter()
        identity: Coder = lambda w: (w, math.nan)  # noqa: E731
        scores, bits, lags = run_system(name, coder or identity, utts, args.out_dir, scorer)
        rows.append(summarize(name, nominal, None if coder is None else bits, seconds, lags, scores))
        per_utt[name] = scores
        print(f"{name:26s} {time.perf_counter() - start:6.1f} s", file=sys.stderr)
    table = markdown(rows)
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "bench_classical.md").write_text(
        f"{len(utts)} utterances, {seconds:.1f} s from {args.data}; {machine}\n\n{table}")
    report = {"data": str(args.data), "utterances": len(utts), "seconds": seconds, "machine": machine,
              "rows": [asdict(r) for r in rows], "per_utterance": per_utt}
    (args.out_dir / "bench_classical.json").write_text(json.dumps(_finite(report), indent=1) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
