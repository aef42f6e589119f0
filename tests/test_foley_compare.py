"""``python -m funcodec_lite.recipes.dcase_foley.compare``: runs side by side from their stage-7 reports."""

from __future__ import annotations

import json

from funcodec_lite.recipes.dcase_foley.compare import main

NAMES = ["DogBark", "Rain"]


def _run(root, name, fad, matched, acc, recon, times, sample_seconds):
    exp = root / name
    (exp / "log").mkdir(parents=True)
    (exp / "generated").mkdir()
    report = {"fad": dict(zip(NAMES, fad)), "matched_is_nearest": dict(zip(NAMES, matched)),
              "classes_matched": sum(matched), "classifier_accuracy_generated": dict(zip(NAMES, acc)),
              "classifier_accuracy_generated_mean": sum(acc) / 2,
              "classifier_accuracy_reconstructed": dict(zip(NAMES, recon)), "fad_average": sum(fad) / 2,
              "noise_floor_db": {n: {"generated": -70.0, "real": -80.0} for n in NAMES}}
    (exp / "fad.json").write_text(json.dumps(report))
    (exp / "log" / "stage_times.tsv").write_text("".join(f"{s}\tstage {s}\t{t}\n" for s, t in times))
    (exp / "generated" / "timing.json").write_text(json.dumps({"sample": sample_seconds, "clips": 200}))
    return exp


def test_comparison_table_and_plot(tmp_path, capsys):
    a = _run(tmp_path, "tiny_vq", [10.0, 2.5], [True, False], [0.9, 0.4], [1.0, 0.96], [(2, 60), (6, 30)],
             50.0)
    b = _run(tmp_path, "tiny_codec", [4.0, 1.0], [True, True], [1.0, 0.8], [0.5, 1.0],
             [(2, 100), (2, 90), (7, 15)], 10.0)  # stage 2 rerun: its last time counts
    assert main([str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "comparison.md").read_text()
    assert "| DogBark | 10.00 | 4.00 |" in table and "| Rain | no | yes |" in table
    assert "| classes with their own class nearest | 1/2 | 2/2 |" in table
    assert "| min accuracy, autoencoded real | 0.96 | 0.50 |" in table
    assert "| sampling s per 100 clips | 25.0 | 5.0 |" in table
    assert "| end to end (stage times) | 1 min 30 s | 1 min 45 s |" in table
    assert "| 2 stage 2 | 60 | 90 |" in table and "| 6 stage 6 | 30 |  |" in table
    assert "| DogBark | -70.0 (-80.0) | -70.0 (-80.0) |" in table
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 1000
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "run stages 6-7" in capsys.readouterr().err
