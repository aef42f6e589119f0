"""Learning curves of the tiny codec configs side by side: held-out quality against steps and CPU-minutes.

Each variant is a recipe config (``egs/speech_codec/conf/<name>.yaml``) plus optional overrides. The
benchmark trains every variant with ``codec train`` for the same wall-clock budget, one thread per
run and ``--jobs`` runs at a time, validating every ``--valid-every`` steps on the held-out speakers
of ``--valid`` (PESQ-wb, STOI, mel distance at every n_q of the config's ``valid_n_q``; the trainer
writes them to ``valid.jsonl`` with the training minutes so far, validation time excluded). Then it
draws one PNG (mel distance, PESQ and STOI at ``--n-q`` against training minutes, one line per
variant) and prints a markdown table of each variant's last validation.

With one thread per run, training minutes are CPU-minutes. Runs resume: rerunning with the same
``--out`` continues each variant to the new budget (``schedule.max_minutes`` counts per launch), and
``--plot-only`` redraws from what is there.

Usage (from the repository root):
    python tools/bench/bench_convergence.py --train DATA/train --valid DATA/dev --out exp/convergence \\
        --minutes 20 --variants tiny_freq,tiny_time,tiny_time_scaled,tiny_time_istft [--jobs 2]
        [--set schedule.disc_start_step=1500 ...] [--plot-only] [--table-n-q 1,2,4,8]
    or, with overrides that hold commas, one ``--variant SPEC`` per variant.
A variant may carry its own overrides: ``name:key=value;key=value`` (its label is ``name`` unless one
of them is ``label=...``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "egs" / "speech_codec" / "conf"
METRICS = ("mel_distance", "pesq", "stoi")


@dataclass
class Variant:
    """One curve: a recipe config, its overrides and its label."""

    config: str
    label: str
    overrides: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """``name`` or ``name:key=value;key=value`` (``label=...`` names the curve)."""
        name, _, rest = spec.partition(":")
        overrides = [item for item in rest.split(";") if item]
        label = name
        for item in list(overrides):
            if item.startswith("label="):
                label = item.split("=", 1)[1]
                overrides.remove(item)
        return cls(name, label, overrides)


def launch(variant: Variant, args: argparse.Namespace) -> subprocess.Popen:
    """Starts ``codec train`` for one variant in the background (one thread), logging to its exp dir."""
    exp = args.out / variant.label
    (exp / "log").mkdir(parents=True, exist_ok=True)
    config = CONF / f"{variant.config}.yaml"
    command = [sys.executable, "-m", "funcodec_lite.cli", "train", "--config", str(config),
               "--train", str(args.train), "--valid", str(args.valid), "--exp-dir", str(exp)]
    if (exp / "checkpoints").is_dir():
        command.append("--resume")
    settings = [f"schedule.max_minutes={args.minutes}", f"schedule.valid_every={args.valid_every}",
                "data.num_workers=0", *args.set, *variant.overrides]
    for item in settings:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = open(exp / "log" / "train.log", "a", encoding="utf-8")  # noqa: SIM115 - closed by the OS at exit
    print("launch:", " ".join(command[1:]), flush=True)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def run_all(variants: list[Variant], args: argparse.Namespace) -> None:
    """Runs the variants, ``args.jobs`` at a time; raises if one fails."""
    pending, running = list(variants), []
    while pending or running:
        while pending and len(running) < args.jobs:
            variant = pending.pop(0)
            running.append((variant, launch(variant, args)))
        time.sleep(5)
        for variant, process in list(running):
            if process.poll() is not None:
                running.remove((variant, process))
                if process.returncode:
                    raise SystemExit(f"{variant.label}: codec train exited with {process.returncode}; "
                                     f"see {args.out / variant.label / 'log' / 'train.log'}")


def curve(exp: Path) -> list[dict]:
    """The validation records of one run (``valid.jsonl``), in step order."""
    path = exp / "valid.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted({r["step"]: r for r in records}.values(), key=lambda r: r["step"])


def plot(curves: dict[str, list[dict]], n_q: int, path: Path) -> None:
    """Mel distance, PESQ and STOI at ``n_q`` against training minutes, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 3.6))
    for label, records in curves.items():
        for axis, metric in zip(axes, METRICS):
            points = [(r["train_minutes"], r[f"nq{n_q}/{metric}"]) for r in records
                      if f"nq{n_q}/{metric}" in r and "train_minutes" in r]
            if points:
                axis.plot(*zip(*points), marker="o", markersize=3, label=label)
    for axis, metric in zip(axes, METRICS):
        axis.set_xlabel("training CPU-minutes (1 thread)")
        axis.set_title(f"{metric.replace('_', ' ')} at n_q = {n_q} (held-out speakers)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(curves: dict[str, list[dict]], n_qs: list[int]) -> str:
    """Markdown: per variant, steps, minutes and the last validation's metrics at each n_q."""
    head = "| variant | steps | CPU-min | " + " | ".join(f"n_q={n} PESQ / STOI / mel" for n in n_qs) + " |"
    lines = [head, "|" + "---|" * (3 + len(n_qs))]
    for label, records in curves.items():
        if not records:
            lines.append(f"| {label} | — | — | " + " | ".join("—" for _ in n_qs) + " |")
            continue
        last = records[-1]
        cells = []
        for n in n_qs:
            if f"nq{n}/pesq" in last:
                cells.append(f"{last[f'nq{n}/pesq']:.2f} / {last[f'nq{n}/stoi']:.3f} / "
                             f"{last[f'nq{n}/mel_distance']:.3f}")
            else:
                cells.append("—")
        lines.append(f"| {label} | {last['step']} | {last.get('train_minutes', float('nan')):.1f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve_table(curves: dict[str, list[dict]], n_q: int) -> str:
    """Markdown: every validation of every variant at ``n_q`` (the learning curves as numbers)."""
    lines = [f"| variant | step | CPU-min | PESQ | STOI | mel distance (n_q={n_q}) |", "|" + "---|" * 6]
    for label, records in curves.items():
        for r in records:
            if f"nq{n_q}/pesq" in r:
                lines.append(f"| {label} | {r['step']} | {r.get('train_minutes', float('nan')):.1f} | "
                             f"{r[f'nq{n_q}/pesq']:.2f} | {r[f'nq{n_q}/stoi']:.3f} | "
                             f"{r[f'nq{n_q}/mel_distance']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="Kaldi data dir to train on")
    parser.add_argument("--valid", type=Path, required=True, help="Kaldi data dir of held-out speakers")
    parser.add_argument("--out", type=Path, default=Path("exp/convergence"))
    parser.add_argument("--variants", default="tiny_freq,tiny_time,tiny_time_scaled,tiny_time_istft")
    parser.add_argument("--variant", action="append", default=[], metavar="SPEC",
                        help="one more variant, `name:key=value;key=value` (values may hold commas); "
                             "with --variant only these run, --variants is ignored")
    parser.add_argument("--table-n-q", default="1,2,4,8", help="codebook counts of the summary table")
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per variant")
    parser.add_argument("--valid-every", type=int, default=250)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--n-q", type=int, default=8, help="codebooks of the plotted curves")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every variant")
    parser.add_argument("--plot-only", action="store_true", help="redraw from the runs already in --out")
    args = parser.parse_args()
    specs = args.variant or [spec for spec in args.variants.split(",") if spec]
    variants = [Variant.parse(spec) for spec in specs]
    if not args.plot_only:
        run_all(variants, args)
    curves = {v.label: curve(args.out / v.label) for v in variants}
    plot(curves, args.n_q, args.out / "convergence.png")
    print(table(curves, [int(n) for n in args.table_n_q.split(",")]))
    print()
    print(curve_table(curves, args.n_q))
    print(f"\nplot: {args.out / 'convergence.png'}")


if __name__ == "__main__":
    main()
