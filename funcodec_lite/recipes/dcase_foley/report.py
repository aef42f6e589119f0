"""Stage 8 of the Foley recipe: spectrogram plots per class, a bar chart of the scores, ``report.html``.

Everything lands under ``exp/<run>/``: ``plots/<folder>.png`` (real and generated log-mels of one class side
by side, with time and frequency axes), ``plots/scores.png`` (per-class FAD and accuracy) and ``report.html``,
a self-contained listening page that links only relative paths: the generated clips where stage 6 wrote
them and copies of a few real clips under ``report/real/``.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from funcodec_lite.audio.io import load_audio
from funcodec_lite.audio.mel_frontend import FoleyMel, hz_to_mel_slaney, mel_to_hz_slaney, recipe_front_end
from funcodec_lite.foley.data import output_folder, read_foley_data_dir
from funcodec_lite.recipes.dcase_foley.evaluation import generated_files
from funcodec_lite.recipes.dcase_foley.judging import heard_as_text
from funcodec_lite.recipes.dcase_foley.run import FoleyRun
from funcodec_lite.utils.atomic import atomic_path

EXAMPLES = 3  # real and generated clips per class on the page and in the plots
FREQ_TICKS_HZ = (100, 500, 1000, 2000, 4000, 8000)


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def make(**kwargs):
        figure = Figure(**kwargs)
        FigureCanvasAgg(figure)
        return figure

    return make


def _save(figure, path: Path, dpi: int = 80) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)


def band_ticks(mel: FoleyMel) -> tuple[list[float], list[str]]:
    """Positions (mel band index) and labels of `FREQ_TICKS_HZ` inside the front end's range."""
    cfg = mel.config
    fmax = cfg.fmax if cfg.fmax is not None else cfg.sample_rate / 2
    lo, hi = (float(hz_to_mel_slaney(torch.tensor(float(f)))) for f in (cfg.fmin, fmax))
    centres = mel_to_hz_slaney(torch.linspace(lo, hi, cfg.n_mels + 2)[1:-1])
    positions, labels = [], []
    for hz in FREQ_TICKS_HZ:
        if centres[0] <= hz <= centres[-1]:
            positions.append(float(np.interp(hz, centres.numpy(), np.arange(cfg.n_mels))))
            labels.append(f"{hz // 1000}k" if hz >= 1000 else str(hz))
    return positions, labels


def plot_class(path: Path, name: str, real: torch.Tensor, generated: torch.Tensor, mel: FoleyMel) -> None:
    """One row of real log-mels [R, n_mels, F] then one of generated ones [G, n_mels, F], shared scale."""
    make = _figure()
    columns = max(len(real), len(generated))
    figure = make(figsize=(3.2 * columns, 5.0), layout="constrained")
    axes = figure.subplots(2, columns, squeeze=False)
    seconds = mel.config.hop_length * real.shape[-1] / mel.config.sample_rate
    ticks, labels = band_ticks(mel)
    image = None
    for row, (kind, mels) in enumerate((("real", real), ("generated", generated))):
        for col in range(columns):
            ax = axes[row][col]
            if col >= len(mels):
                ax.axis("off")
                continue
            image = ax.imshow(mels[col].numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-11.5,
                              vmax=2.0, extent=(0.0, seconds, -0.5, mels.shape[1] - 0.5))
            ax.set_title(f"{name}: {kind} {col + 1}", fontsize=9)
            ax.set_yticks(ticks, labels, fontsize=7)
            ax.tick_params(axis="x", labelsize=7)
            ax.set_xlabel("time (s)", fontsize=8)
            if col == 0:
                ax.set_ylabel("frequency (Hz)", fontsize=8)
    figure.colorbar(image, ax=axes.ravel().tolist(), label="ln mel", shrink=0.8)
    _save(figure, path)


def plot_scores(path: Path, report: dict, names: list[str], title: str) -> None:
    """Per-class FAD (left) and classifier accuracy on generated and autoencoded clips (right)."""
    make = _figure()
    figure = make(figsize=(11.0, 3.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    x = np.arange(len(names))
    left.bar(x, [report["fad"][n] for n in names], color="tab:purple")
    left.set_ylabel("FAD (lower is better)")
    width = 0.4
    right.bar(x - width / 2, [report["classifier_accuracy_generated"][n] for n in names], width,
              label="generated")
    right.bar(x + width / 2, [report["classifier_accuracy_reconstructed"][n] for n in names], width,
              label="autoencoded real")
    right.set_ylim(0, 1.05)
    right.set_ylabel("classifier accuracy")
    right.legend(fontsize=8, loc="lower right")
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    figure.suptitle(title, fontsize=10)
    _save(figure, path)


def stage_plot(run: FoleyRun) -> None:
    """8: the plots and ``report.html`` of a run (after stage 7, whose ``fad.json`` it reads)."""
    report_path = run.exp / "fad.json"
    if not report_path.is_file():
        raise FileNotFoundError(f"{report_path}: missing, run stage 7 first")
    report = json.loads(report_path.read_text())
    reference = run.load_features(report["reference"])
    names = reference.class_names
    files = generated_files(run.exp, names)
    mel = recipe_front_end()
    real_paths = {c.utt_id: Path(c.path) for c in read_foley_data_dir(run.data / report["reference"])}
    examples: dict[str, dict[str, list[str]]] = {}
    for label, name in enumerate(names):
        utts = [u for u, y in zip(reference.utt_ids, reference.labels.tolist()) if y == label][:EXAMPLES]
        real_copies = []
        for utt in utts:  # copies, so the page links only paths inside exp/<run>/
            target = run.exp / "report" / "real" / output_folder(name) / f"{utt}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(real_paths[utt], target)
            real_copies.append(target)
        fake = files[name][:EXAMPLES]
        plot_class(run.exp / "plots" / f"{output_folder(name)}.png", name, _mels(real_copies, mel),
                   _mels(fake, mel), mel)
        examples[name] = {"real": [_relative(p, run.exp) for p in real_copies],
                          "generated": [_relative(p, run.exp) for p in fake]}
    plot_scores(run.exp / "plots" / "scores.png", report, names, run.exp.name)
    write_report_html(run.exp / "report.html", run.exp.name, report, names, examples)
    print(f"wrote {run.exp / 'plots'} and {run.exp / 'report.html'}")


def _mels(paths: list[Path], mel: FoleyMel) -> torch.Tensor:
    wavs = torch.stack([load_audio(p, mel.config.sample_rate, channels=1)[0][0] for p in paths])
    return mel(wavs)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _judge_summary(judge: dict | None, classes: int) -> str:
    """The page's line on the independent waveform judge (empty for a report without one)."""
    if not judge:
        return ""
    return (f"<p>Independent waveform judge (MFCC and spectral statistics, fitted on real clips; "
            f"{judge['accuracy_real_heldout']:.2f} on real held-out clips): mean accuracy on generated clips "
            f"{judge['accuracy_generated_mean']:.2f}, own class nearest {judge['classes_matched']}/{classes},"
            " "
            f"average FAD in its space {judge['fad_average']:.2f}.</p>")


def write_report_html(path: Path, title: str, report: dict, names: list[str],
                      examples: dict[str, dict[str, list[str]]]) -> None:
    """The listening page: per class its figures, audio players for real and generated clips, its plot."""
    esc = html.escape
    floors, judge = report.get("noise_floor_db", {}), report.get("waveform_judge")
    rows = []
    for name in names:
        floor = floors.get(name, {})
        figures = (f"FAD {report['fad'][name]:.2f} · nearest real class is its own: "
                   f"{'yes' if report['matched_is_nearest'][name] else 'no'} · accuracy generated "
                   f"{report['classifier_accuracy_generated'][name]:.2f}, autoencoded real "
                   f"{report['classifier_accuracy_reconstructed'][name]:.2f}")
        if floor:
            figures += f" · noise floor {floor['generated']:.1f} dBFS (real {floor['real']:.1f})"
        if judge:
            gen, real = judge["levels"][name]["generated"], judge["levels"][name]["real"]
            heard = heard_as_text(judge, name)
            figures += (f" · waveform judge accuracy {judge['accuracy_generated'][name]:.2f}"
                        f"{f' (heard as {heard})' if heard else ''}, its FAD "
                        f"{judge['fad'][name]:.2f} · loudness {gen['lufs_median']:.1f} LUFS "
                        f"(real {real['lufs_median']:.1f}), peak {gen['peak_db_median']:.1f} dBFS "
                        f"(real {real['peak_db_median']:.1f})")
        players = "".join(
            f'<figure><figcaption>{kind} {k + 1}</figcaption><audio controls preload="none" '
            f'src="{esc(src)}"></audio></figure>'
            for kind in ("real", "generated") for k, src in enumerate(examples[name][kind]))
        image = f"plots/{output_folder(name)}.png"
        rows.append(f'<section><h2>{esc(name)}</h2><p>{esc(figures)}</p><div class="clips">{players}</div>'
                    f'<img src="{esc(image)}" alt="{esc(name)}: real and generated log-mel spectrograms">'
                    "</section>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}: Foley report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}
.clips{{display:flex;flex-wrap:wrap;gap:8px}}
figure{{margin:0}} figcaption{{font-size:12px}} img{{max-width:100%}}</style></head>
<body><h1>{esc(title)}</h1>
<p>{esc(report['embedding'])}; reference: real {esc(report['reference'])} clips. Classes with their own class
nearest: {report['classes_matched']}/{len(names)}; mean classifier accuracy on generated clips
{report['classifier_accuracy_generated_mean']:.2f}; average FAD {report['fad_average']:.2f}.</p>
{_judge_summary(judge, len(names))}
<img src="plots/scores.png" alt="per-class FAD and accuracy">
{''.join(rows)}
</body></html>
"""
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
