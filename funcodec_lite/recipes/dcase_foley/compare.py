"""Foley runs side by side: ``python -m funcodec_lite.recipes.dcase_foley.compare exp/tiny_vq ... --out DIR``.

Reads each run's stage-7 report (``fad.json``), stage times (``log/stage_times.tsv``) and generation timing
(``generated/timing.json``) and writes ``comparison.md`` (per-class FAD, own-class-nearest, classifier
accuracy on generated and on autoencoded real clips, noise floors, the waveform judge's accuracy, median
loudness and peak, stage times, sampling seconds per 100 clips) and ``comparison.png`` (per-class FAD and
accuracy, one bar per run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from funcodec_lite.utils.atomic import atomic_path


def load_run(exp: Path) -> dict:
    """A run's figures: its fad.json, stage times {stage: (title, seconds)} and generation timing."""
    report_path = exp / "fad.json"
    if not report_path.is_file():
        raise FileNotFoundError(f"{report_path}: missing, run stages 6-7 of {exp.name} first")
    times: dict[str, tuple[str, float]] = {}
    tsv = exp / "log" / "stage_times.tsv"
    if tsv.is_file():
        for line in tsv.read_text().splitlines():
            stage, title, seconds = line.split("\t")
            times[stage] = (title, float(seconds))  # a rerun stage: its last time
    timing_path = exp / "generated" / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    return {"name": exp.name, "report": json.loads(report_path.read_text()), "times": times, "timing": timing}


def comparison_table(runs: list[dict]) -> str:
    """Markdown: one block per measure, a row per class, a column per run."""
    names = list(runs[0]["report"]["fad"])
    header = "| class | " + " | ".join(r["name"] for r in runs) + " |"
    rule = "|---" * (len(runs) + 1) + "|"

    def block(title: str, cell) -> list[str]:
        rows = [f"**{title}**", "", header, rule]
        for name in names:
            rows.append(f"| {name} | " + " | ".join(cell(r, name) for r in runs) + " |")
        return rows + [""]

    lines = [*block("FAD (the recipe's classifier embedding; lower is better)",
                    lambda r, n: f"{r['report']['fad'][n]:.2f}"),
             *block("nearest real class is its own",
                    lambda r, n: "yes" if r["report"]["matched_is_nearest"][n] else "no"),
             *block("classifier accuracy on generated clips",
                    lambda r, n: f"{r['report']['classifier_accuracy_generated'][n]:.2f}"),
             *block("classifier accuracy on autoencoded real clips",
                    lambda r, n: f"{r['report']['classifier_accuracy_reconstructed'][n]:.2f}"),
             *block("noise floor of generated clips, dBFS (real clips in brackets)",
                    lambda r, n: _floor(r["report"], n)),
             *block("waveform judge accuracy on generated clips (independent features)",
                    lambda r, n: _judge(r["report"], lambda j: f"{j['accuracy_generated'][n]:.2f}")),
             *block("median loudness of generated clips, LUFS (real clips in brackets)",
                    lambda r, n: _judge(r["report"], lambda j: _level(j, n, "lufs"))),
             *block("median peak of generated clips, dBFS (real clips in brackets)",
                    lambda r, n: _judge(r["report"], lambda j: _level(j, n, "peak_db")))]
    lines += ["**summary**", "", "| | " + " | ".join(r["name"] for r in runs) + " |", "|---" * (len(runs) + 1)
              + "|"]
    summary = {
        "classes with their own class nearest": lambda r: f"{r['report']['classes_matched']}/{len(names)}",
        "mean accuracy, generated": lambda r: f"{r['report']['classifier_accuracy_generated_mean']:.2f}",
        "min accuracy, autoencoded real":
            lambda r: f"{min(r['report']['classifier_accuracy_reconstructed'].values()):.2f}",
        "average FAD": lambda r: f"{r['report']['fad_average']:.2f}",
        "waveform judge: mean accuracy, generated":
            lambda r: _judge(r["report"], lambda j: f"{j['accuracy_generated_mean']:.2f}"),
        "sampling s per 100 clips": lambda r: _per_100(r["timing"]),
        "end to end (stage times)": lambda r: _minutes(sum(s for _, s in r["times"].values())),
    }
    for label, cell in summary.items():
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in runs) + " |")
    stages = sorted({s for r in runs for s in r["times"]}, key=int)
    lines += ["", "**stage times** (s)", "", "| stage | " + " | ".join(r["name"] for r in runs) + " |",
              "|---" * (len(runs) + 1) + "|"]
    for stage in stages:
        title = next(r["times"][stage][0] for r in runs if stage in r["times"])
        cells = [f"{r['times'][stage][1]:.0f}" if stage in r["times"] else "" for r in runs]
        lines.append(f"| {stage} {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _floor(report: dict, name: str) -> str:
    floor = report.get("noise_floor_db", {}).get(name)
    return f"{floor['generated']:.1f} ({floor['real']:.1f})" if floor else ""


def _judge(report: dict, cell) -> str:
    """``cell(waveform judge section)``, or empty for a report from before stage 7 had the judge."""
    judge = report.get("waveform_judge")
    return cell(judge) if judge else ""


def _level(judge: dict, name: str, key: str) -> str:
    levels = judge["levels"][name]
    return f"{levels['generated'][key + '_median']:.1f} ({levels['real'][key + '_median']:.1f})"


def _per_100(timing: dict) -> str:
    if not timing.get("clips") or "sample" not in timing:
        return ""
    return f"{100 * timing['sample'] / timing['clips']:.1f}"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def plot_comparison(path: Path, runs: list[dict]) -> None:
    """Per-class FAD (top) and accuracy on generated clips (bottom), one bar per run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(runs[0]["report"]["fad"])
    figure = Figure(figsize=(11.0, 6.0), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    x, width = np.arange(len(names)), 0.8 / len(runs)
    for k, run in enumerate(runs):
        offset = (k - (len(runs) - 1) / 2) * width
        top.bar(x + offset, [run["report"]["fad"][n] for n in names], width, label=run["name"])
        bottom.bar(x + offset, [run["report"]["classifier_accuracy_generated"][n] for n in names], width)
    top.set_ylabel("FAD (lower is better)")
    top.set_yscale("log")
    top.legend(fontsize=8)
    bottom.set_ylabel("accuracy on generated clips")
    bottom.set_ylim(0, 1.05)
    bottom.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=80)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funcodec_lite.recipes.dcase_foley.compare",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="exp/<run> directories")
    parser.add_argument("--out", type=Path, default=Path("exp"), help="where comparison.md/.png go")
    args = parser.parse_args(argv)
    try:
        runs = [load_run(exp) for exp in args.runs]
    except (FileNotFoundError, ValueError) as error:
        print(f"compare: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    table = comparison_table(runs)
    with atomic_path(args.out / "comparison.md") as tmp:
        tmp.write_text(table)
    plot_comparison(args.out / "comparison.png", runs)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
