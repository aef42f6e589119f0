"""The shipped default model against its card (docs/models.md), on speech of voices it never saw."""

import shutil
import subprocess

import pytest
import torch

from funcodec_lite.audio import load_audio
from funcodec_lite.codec.loading import load_model
from funcodec_lite.metrics import average_scores, score_pair

SENTENCES = ["The quiet river carried seven paper boats past the old mill.",
             "Please bring the blue umbrella to the station before noon."]
VOICES = ["en-gb+f5", "en-us+klatt2"]  # speakers gb_f5 and us_klatt2 of the card's test split
CARD_PESQ_6KBPS, CARD_STOI_6KBPS = 1.713, 0.872  # docs/models.md, n_q = 12, 294 test utterances


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("speech")
    clips = []
    for i, (voice, text) in enumerate((v, t) for v in VOICES for t in SENTENCES):
        path = root / f"{i}.wav"
        subprocess.run([espeak, "-v", voice, "-w", str(path), text], check=True, capture_output=True)
        wav, _ = load_audio(path, sample_rate=16000, channels=1)
        clips.append(wav / wav.abs().max() * 0.5)
    return clips


def test_default_model_matches_its_card_on_unseen_voices(speech):
    codec = load_model("default")
    scores = {}
    with torch.no_grad():
        for n_q in (1, 12):
            pairs = []
            for wav in speech:
                decoded = codec.decode(codec.encode(wav[None], n_q=n_q), length=wav.shape[-1])[0]
                pairs.append(score_pair(wav, decoded.clamp(-1, 1), 16000))
            scores[n_q] = average_scores(pairs)
    # the card's figures on its 154 test utterances, less a margin for 4 clips of other sentences
    # (these 4 clips measured PESQ 1.786 / STOI 0.892 at n_q = 12 when the model was shipped)
    assert scores[12].stoi > CARD_STOI_6KBPS - 0.05, scores
    assert scores[12].pesq > CARD_PESQ_6KBPS - 0.25, scores
    # more codebooks, better audio
    assert scores[12].stoi > scores[1].stoi and scores[12].mel_distance < scores[1].mel_distance, scores
