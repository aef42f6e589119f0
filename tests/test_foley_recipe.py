"""The Foley recipe runs every stage on a tiny toy set and writes challenge-format clips and a FAD table."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

from funcodec_lite.foley.generation import CHALLENGE_FOLDERS
from funcodec_lite.foley.training import extract_code_maps
from funcodec_lite.foley.vqvae import MelVQVAE

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

    # stage 7: a finite FAD for every class, its 7 x 7 matrix and classifier accuracies in [0, 1]
    report = json.loads((exp / "fad.json").read_text())
    assert len(report["fad"]) == 7 and all(np.isfinite(v) for v in report["fad"].values())
    assert np.array(report["fad_matrix"]).shape == (7, 7)
    assert 0 <= report["classifier_accuracy_generated_mean"] <= 1
    assert "NOT comparable" in report["embedding"]
    assert "| **average** |" in (exp / "fad.md").read_text()

    # stage 3: the saved code maps are the autoencoder's codes of the stage-1 features
    features = np.load(recipe / "exp" / "features" / "valid.npz", allow_pickle=False)["mels"]
    model = MelVQVAE.from_pretrained(exp / "vqvae" / "model")
    codes = np.load(exp / "codes" / "valid.npz", allow_pickle=False)["codes"]
    assert codes.shape == (len(features), 10, 43)
    np.testing.assert_array_equal(extract_code_maps(model, torch.from_numpy(features)).numpy(), codes)

    # stage 8 and the bookkeeping: plot, stage times, and every model saved as safetensors
    assert (exp / "plots" / "generated_mels.png").stat().st_size > 1000
    times = (exp / "log" / "stage_times.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in times] == [str(n) for n in range(9)]
    for model_dir in (
        exp / "vqvae" / "model",
        exp / "prior" / "model",
        *(recipe / "exp").glob("vocoder_tiny_*/model"),
        recipe / "exp" / "classifier" / "model",
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
