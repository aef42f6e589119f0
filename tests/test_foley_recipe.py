"""The Foley recipe runs every stage on a tiny toy set and writes challenge-format clips and a FAD table."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from funcodec_lite.audio.mel_frontend import FoleyMel
from funcodec_lite.foley.data import CHALLENGE_FOLDERS, FoleyFeatures
from funcodec_lite.foley.vqvae import MelVQVAE
from funcodec_lite.recipes.dcase_foley.evaluation import load_or_train_classifier
from funcodec_lite.recipes.dcase_foley.run import FoleyRun

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "dcase_foley"

MICRO = {
    "vqvae": {
        "quantizer": "vq",
        "strides": [4, 2],
        "codebook_size": 16,
        "embed_dim": 8,
        "channel": 8,
        "n_res_block": 1,
        "n_res_channel": 4,
        "kmeans_init": True,
    },
    "vqvae_train": {"steps": 3, "batch_size": 4, "lr": 1e-3, "log_every": 1},
    "prior": {"channel": 8, "n_block": 1, "n_res_block": 1, "res_channel": 8, "n_head": 2, "class_dim": 8},
    "prior_train": {"steps": 3, "batch_size": 4, "lr": 1e-3, "log_every": 1},
    "vocoder": "tiny",
    "vocoder_train": {"steps": 2, "batch_size": 2, "segment_frames": 16, "log_every": 1},
    "vocoder_loss": {
        "discriminator": {
            "kinds": ["mpd", "msd"],
            "mpd": {"periods": [2, 3], "channels": [4, 4, 4, 4, 4]},
            "msd": {"scales": 1, "channels": [4, 4, 4, 4, 4, 4, 4], "groups": [1, 1, 1, 1, 1, 1, 1]},
        }
    },
    "classifier": {"embed_dim": 4, "epochs": 2, "channels": [4, 8]},
    "generate": {"clips_per_class": 3, "batch_size": 3},
}


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of two embedding sets [N, D]; Tr sqrt(S1 S2) from the eigenvalues of
    S1^1/2 S2 S1^1/2 (symmetric, so it stays exact for the singular covariances of a few clips)."""
    s1, s2 = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    values, vectors = np.linalg.eigh(s1)
    root = (vectors * np.sqrt(values.clip(0))) @ vectors.T
    cross = np.sqrt(np.linalg.eigvalsh(root @ s2 @ root).clip(0)).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)


def _page_links(page: str) -> list[str]:
    """The src/href values of an HTML page (parsed, not pattern-matched)."""
    from html.parser import HTMLParser

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.links: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.links += [value for key, value in attrs if key in ("src", "href") and value]

    parser = Links()
    parser.feed(page)
    return parser.links


def test_recipe_all_stages_on_toy_data(tmp_path):
    recipe = tmp_path / "dcase_foley"
    shutil.copytree(RECIPE, recipe, ignore=shutil.ignore_patterns("data", "exp", "toy"))
    (recipe / "conf" / "micro.yaml").write_text(yaml.safe_dump(MICRO))
    env = {**os.environ, "FUNCODEC_ROOT": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        "bash",
        "run.sh",
        "--config",
        "conf/micro.yaml",
        "--toy-clips",
        "3",
        "--toy-eval-clips",
        "3",
        "--nj",
        "1",
    ]
    result = subprocess.run(command, cwd=recipe, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    exp = recipe / "exp" / "micro"

    # stage 6: the challenge's layout and format, exactly 88,200 samples of 16-bit 22,050 Hz mono
    for folder in CHALLENGE_FOLDERS.values():
        clips = sorted((exp / "generated" / folder).glob("*.wav"))
        assert len(clips) == 3
        info = sf.info(clips[0])
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (22050, 1, 88200, "PCM_16")

    # stage 7: fad.json's FAD matrix, recomputed independently from the saved classifier's embeddings of
    # the real eval clips and of the generated wavs (Fréchet distance through eigenvalues, not sqrtm)
    report = json.loads((exp / "fad.json").read_text())
    assert "NOT comparable" in report["embedding"] and report["reference"] == "eval"
    assert "reference_note" not in report
    classifiers = list((recipe / "exp").glob("classifier_*"))
    assert len(classifiers) == 1 and re.fullmatch(r"classifier_[0-9a-f]{8}", classifiers[0].name)
    features = {s: FoleyFeatures.load(recipe / "exp" / "features" / f"{s}.npz") for s in ("train", "eval")}
    names = features["train"].class_names
    run = FoleyRun(config_path=recipe / "conf" / "micro.yaml", exp=exp, features=recipe / "exp" / "features",
                   classifier_override=classifiers[0])
    classifier = load_or_train_classifier(run, features["train"])  # the saved one (it exists), as stage 7
    real, fake, generated_mels = {}, {}, {}
    mel, eval_set = FoleyMel(), features["eval"]
    with torch.no_grad():
        for i, name in enumerate(names):
            real[name] = classifier.embed(eval_set.mels[eval_set.labels == i]).double().numpy()
            paths = sorted((exp / "generated" / CHALLENGE_FOLDERS[name]).glob("*.wav"))
            wavs = torch.stack([torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in paths])
            generated_mels[name] = mel(wavs)
            fake[name] = classifier.embed(generated_mels[name]).double().numpy()
    expected = np.array([[_frechet(fake[g], real[r]) for r in names] for g in names])
    np.testing.assert_allclose(report["fad_matrix"], expected, rtol=1e-6, atol=1e-9)
    assert [report["fad"][n] for n in names] == pytest.approx(np.diag(expected).tolist(), rel=1e-6, abs=1e-9)
    assert report["fad_average"] == pytest.approx(np.diag(expected).mean(), rel=1e-6)
    assert report["classes_matched"] == sum(
        expected[i, i] < np.delete(expected[i], i).min() for i in range(len(names))
    )
    # the accuracies are the classifier's arg-max hits on the generated and the real eval clips
    with torch.no_grad():
        hits = {n: (classifier(generated_mels[n]).argmax(1) == i).float().mean().item()
                for i, n in enumerate(names)}
        held_out = (classifier(eval_set.mels).argmax(1) == eval_set.labels).float().mean().item()
    assert report["classifier_accuracy_generated"] == pytest.approx(hits, abs=1e-6)
    assert report["classifier_accuracy_real_heldout"] == pytest.approx(held_out, abs=1e-6)
    # fad.md shows fad.json's numbers, row by row
    rows = [line.split(" | ") for line in (exp / "fad.md").read_text().splitlines() if line.startswith("| ")]
    by_class = {row[0][2:]: row for row in rows if row[0][2:] in names and len(row) == 6}
    assert sorted(by_class) == sorted(names)
    for name, row in by_class.items():
        assert float(row[1]) == pytest.approx(report["fad"][name], abs=5e-4)
        assert float(row[3]) == pytest.approx(report["classifier_accuracy_generated"][name], abs=5e-3)
    matrix_rows = [row for row in rows if row[0][2:] in names and len(row) == len(names) + 1]
    table = np.array([[float(v.strip(" |")) for v in row[1:]] for row in matrix_rows])
    np.testing.assert_allclose(table, report["fad_matrix"], atol=5e-3)
    average = next(row for row in rows if row[0] == "| **average**")
    assert float(average[1].strip("*")) == pytest.approx(report["fad_average"], abs=5e-4)

    # stage 3: the saved code maps hold, at every position, the codeword nearest to the encoder's latent
    # (a brute-force search over the codebook, not the quantizer's own encode)
    valid_mels = FoleyFeatures.load(recipe / "exp" / "features" / "valid.npz").mels
    model = MelVQVAE.from_pretrained(exp / "vqvae" / "model")
    codes = torch.from_numpy(np.load(exp / "codes" / "valid.npz", allow_pickle=False)["codes"]).long()
    assert codes.shape == (len(valid_mels), 10, 43)
    with torch.no_grad():
        latent = model.encode_latent(valid_mels[:, None]).permute(0, 2, 3, 1).reshape(-1, 8).double()
    distances = torch.cdist(latent, model.quantizer.layers[0].embed.double()) ** 2  # [positions, codes]
    chosen = distances.gather(1, codes.reshape(-1, 1))[:, 0]
    assert (chosen - distances.min(dim=1).values).max() <= 1e-4 * (1 + distances.min())
    assert codes.unique().numel() > 1  # not one code everywhere

    # the noise floors: the 10th percentile of |x| per clip, median per class, in dBFS, recomputed here
    for name in names:
        paths = sorted((exp / "generated" / CHALLENGE_FOLDERS[name]).glob("*.wav"))
        wavs = np.stack([sf.read(p, dtype="float32")[0] for p in paths])
        expected_floor = 20 * np.log10(max(np.median(np.percentile(np.abs(wavs), 10, axis=1)), 1e-7))
        assert report["noise_floor_db"][name]["generated"] == pytest.approx(expected_floor, abs=0.05)
        assert float(by_class[name][5].split(" / ")[0]) == pytest.approx(expected_floor, abs=0.05)

    # stage 8: a plot per class, the score chart, and a page whose every link exists inside exp/micro
    for folder in CHALLENGE_FOLDERS.values():
        assert (exp / "plots" / f"{folder}.png").stat().st_size > 1000
    assert (exp / "plots" / "scores.png").stat().st_size > 1000
    links = _page_links((exp / "report.html").read_text())
    audio = [link for link in links if link.endswith(".wav")]
    assert len(audio) == 2 * 3 * len(names) and len([x for x in links if x.endswith(".png")]) == 8
    for link in links:
        assert not link.startswith(("/", "http")) and ".." not in link
        assert (exp / link).is_file(), link
    # bookkeeping: stage times, and every model saved as safetensors
    times = (exp / "log" / "stage_times.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in times] == [str(n) for n in range(9)]
    for model_dir in (
        exp / "vqvae" / "model",
        exp / "prior" / "model",
        *(recipe / "exp").glob("vocoder_tiny_*/model"),
        classifiers[0] / "model",
        exp / "generator",
    ):
        assert (model_dir / "model.safetensors").is_file()
    assert len(list((recipe / "exp").glob("vocoder_*"))) == 1

    # a stage reruns alone; bad input is one line on stderr and exit code 2
    again = subprocess.run(
        ["bash", "run.sh", "--config", "conf/micro.yaml", "--stage", "8"],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    bad = subprocess.run(
        [
            "bash",
            "run.sh",
            "--config",
            "conf/micro.yaml",
            "--stage",
            "0",
            "--stop-stage",
            "0",
            "--dev-root",
            str(tmp_path / "missing"),
        ],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = bad.stdout + bad.stderr  # run.sh tees each stage's output into its log
    assert bad.returncode != 0 and "not a directory" in output and "Traceback" not in output
