"""Task sequences: UniAudio's flat layout by hand, exact round trips, collate padding, the `.npz` example
sets, prompt pairing, and stages 0-2 of the TTS recipe on a tiny corpus with a tiny codec."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tiny_models import save_codec

from funcodec_lite.data.phonemes import PhonemeVocabulary, read_phonemes
from funcodec_lite.inference.tokens import TokenFile, load_tokens, save_tokens
from funcodec_lite.lm.examples import ExampleSet, build_tts_examples, choose_prompts, read_prompts
from funcodec_lite.lm.sequence import SPECIAL_TOKENS, TaskExample, TaskVocabulary, collate_examples

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "tts_lm"
VOCAB = TaskVocabulary(num_phonemes=10, num_codebooks=2, codebook_size=4, num_classes=3)


def _codes(k: int, t: int, card: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, card, (k, t), generator=torch.Generator().manual_seed(seed))


def _same(a: TaskExample, b: TaskExample) -> bool:
    def eq(x, y):
        if x is None or y is None:
            return x is None and y is None
        return x.dtype == y.dtype == torch.long and torch.equal(x, y)
    return (a.task, a.label) == (b.task, b.label) and eq(a.phonemes, b.phonemes) and eq(a.prompt, b.prompt) \
        and eq(a.target, b.target)


EXAMPLES = [
    TaskExample(task="tts", phonemes=torch.tensor([5, 0, 9]), prompt=_codes(2, 3, seed=1),
                target=_codes(2, 4)),
    TaskExample(task="tts", phonemes=torch.tensor([1, 2]), target=_codes(2, 5, seed=2)),
    TaskExample(task="lm", prompt=_codes(2, 2, seed=3), target=_codes(2, 1, seed=4)),
    TaskExample(task="lm", target=torch.zeros(2, 0, dtype=torch.long)),
    TaskExample(task="class_to_audio", label=2, target=_codes(2, 3, seed=5)),
    TaskExample(task="tts", phonemes=torch.zeros(0, dtype=torch.long),
                prompt=torch.zeros(2, 0, dtype=torch.long), target=_codes(2, 2, seed=6), label=0),
]


def test_flat_layout_by_hand():
    assert (VOCAB.phoneme_offset, VOCAB.class_offset, VOCAB.audio_offset, VOCAB.size) == (64, 74, 77, 85)
    s = {name: i for i, name in enumerate(SPECIAL_TOKENS)}
    example = TaskExample(task="tts", phonemes=torch.tensor([3, 4]), prompt=torch.tensor([[1], [2]]),
                          target=torch.tensor([[0, 3], [1, 2]]))
    flat = VOCAB.to_flat(example)
    # audio id = code + k * card + audio_offset, frame-major: f0c0 f0c1 f1c0 f1c1
    assert flat.tolist() == [s["<start>"], len(SPECIAL_TOKENS) + 0,
                             s["<phone_start>"], 67, 68, s["<phone_end>"],
                             s["<prompt_start>"], 78, 83, s["<prompt_end>"],
                             s["<audio_start>"], 77, 82, 80, 83, s["<audio_end>"], s["<end>"]]
    assert flat.dtype == torch.long
    mask = VOCAB.target_mask(flat)
    assert mask.nonzero().flatten().tolist() == [11, 12, 13, 14]
    # UniAudio repeats every non-acoustic token K times: each frame of K positions holds one thing
    repeated = TaskVocabulary(10, 2, 4, num_classes=3, non_acoustic_repeat=2).to_flat(example)
    assert repeated[:6].tolist() == [1, 1, 11, 11, 3, 3] and len(repeated) == 2 * len(flat) - 6
    assert len(repeated) % 2 == 0


@pytest.mark.parametrize("repeat", [1, 2, 3])
def test_flat_round_trip_is_exact(repeat):
    vocab = TaskVocabulary(10, 2, 4, num_classes=3, non_acoustic_repeat=repeat)
    for example in EXAMPLES:
        flat = vocab.to_flat(example)
        assert _same(vocab.from_flat(flat), example)
        padded = torch.cat([flat, torch.zeros(5, dtype=torch.long)])  # a padded row of a batch
        assert _same(vocab.from_flat(padded.tolist()), example)
        assert int(flat.max()) < vocab.size and int(flat.min()) >= 0


def test_from_flat_and_to_flat_refuse_bad_input():
    flat = VOCAB.to_flat(EXAMPLES[0])
    for bad, problem in ((flat[:-1], "expected <end>"), (torch.cat([flat, flat[:1]]), "only '<pad>'"),
                         (flat[1:], "expected <start>"), (flat.flip(0), "expected <start>")):
        with pytest.raises(ValueError, match=problem):
            VOCAB.from_flat(bad)
    swapped = flat.clone()
    swapped[[11, 12]] = swapped[[12, 11]]  # codebook 1 before codebook 0 in a frame
    with pytest.raises(ValueError, match="out of place"):
        VOCAB.from_flat(swapped)
    with pytest.raises(ValueError, match="expected 2 copies"):
        TaskVocabulary(10, 2, 4, non_acoustic_repeat=2).from_flat(torch.tensor([1, 1, 11, 12]))
    for bad_example, problem in ((TaskExample(task="asr", target=_codes(2, 1)), "unknown task"),
                                 (TaskExample(task="lm", target=_codes(3, 1)), r"shape \[2, T\]"),
                                 (TaskExample(task="lm", target=_codes(2, 1) + 4), "in 0..3"),
                                 (TaskExample(task="tts", phonemes=torch.tensor([10]), target=_codes(2, 1)),
                                  "phonemes"),
                                 (TaskExample(task="lm", label=3, target=_codes(2, 1)), "label")):
        with pytest.raises(ValueError, match=problem):
            VOCAB.to_flat(bad_example)


def test_layout_json_round_trip(tmp_path):
    VOCAB.save(tmp_path / "layout.json")
    assert TaskVocabulary.load(tmp_path / "layout.json") == VOCAB
    assert json.loads((tmp_path / "layout.json").read_text())["tasks"] == ["tts", "lm", "class_to_audio"]


def test_collate_pads_and_counts():
    batch = collate_examples(EXAMPLES, phoneme_pad=0, code_pad=-1)
    assert batch.phonemes.shape == (6, 3) and batch.phoneme_lengths.tolist() == [3, 2, 0, 0, 0, 0]
    assert batch.phonemes[1].tolist() == [1, 2, 0]
    assert batch.prompt.shape == (6, 2, 3) and batch.prompt_lengths.tolist() == [3, 0, 2, 0, 0, 0]
    assert batch.codes.shape == (6, 2, 5) and batch.code_lengths.tolist() == [4, 5, 1, 0, 3, 2]
    assert batch.labels.tolist() == [-1, -1, -1, -1, 2, 0] and batch.tasks[4] == "class_to_audio"
    for i, example in enumerate(EXAMPLES):
        t = example.target.shape[1]
        assert torch.equal(batch.codes[i, :, :t], example.target) and (batch.codes[i, :, t:] == -1).all()
    assert (batch.prompt[2, :, 2:] == -1).all() and batch.codes.dtype == torch.long
    codes, frames, prompt_frames = batch.with_prompt(code_pad=-1)
    assert codes.shape == (6, 2, 7) and frames.tolist() == [7, 5, 3, 0, 3, 2]
    assert torch.equal(codes[0], torch.cat([EXAMPLES[0].prompt, EXAMPLES[0].target], dim=1))
    assert prompt_frames.tolist() == [3, 0, 2, 0, 0, 0] and (codes[2, :, 3:] == -1).all()
    with pytest.raises(ValueError, match="same number of codebooks"):
        collate_examples([EXAMPLES[0], TaskExample(task="lm", target=_codes(3, 2))])


def test_example_set_npz_round_trip(tmp_path):
    named = [TaskExample(**{**e.__dict__, "utt_id": f"u{i}", "prompt_id": "" if e.prompt is None else "p"})
             for i, e in enumerate(EXAMPLES)]
    ExampleSet(named, codebook_size=4, frame_rate=50.0, model_id="abc").save(tmp_path / "train.npz")
    with np.load(tmp_path / "train.npz", allow_pickle=False) as archive:  # plain arrays, no pickle
        assert archive["targets"].dtype == np.int16 and archive["targets"].shape == (2, 15)
        assert archive["prompt_lengths"].tolist() == [3, -1, 2, -1, -1, 0]
    loaded = ExampleSet.load(tmp_path / "train.npz")
    assert (loaded.codebook_size, loaded.frame_rate, loaded.model_id) == (4, 50.0, "abc")
    assert loaded.num_codebooks == 2
    assert all(_same(a, b) for a, b in zip(loaded.examples, named)) and len(loaded) == len(named)
    assert [e.utt_id for e in loaded.examples] == [f"u{i}" for i in range(6)]
    assert [e.prompt_id for e in loaded.examples] == ["p", "", "p", "", "", "p"]
    ExampleSet([], codebook_size=4).save(tmp_path / "empty.npz")
    assert len(ExampleSet.load(tmp_path / "empty.npz")) == 0
    np.savez(tmp_path / "object.npz", kind=np.array([{"a": 1}], dtype=object))
    (tmp_path / "text.npz").write_text("hello")
    arrays = dict(np.load(tmp_path / "train.npz"))
    np.savez(tmp_path / "short.npz", **{**arrays, "target_lengths": arrays["target_lengths"] + 1})
    for name, problem in (("object.npz", "not a file of task examples"), ("text.npz", "not a file of task"),
                          ("short.npz", "target_lengths add up to 21, targets has 15"),
                          ("missing.npz", "not a file of task examples")):
        with pytest.raises(ValueError, match=problem) as err:
            ExampleSet.load(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)


def test_prompts_are_other_utterances_of_the_speaker():
    utt2spk = {f"a-{i}": "a" for i in range(5)} | {"b-0": "b", "b-1": "b", "c-0": "c"}
    prompts = choose_prompts(utt2spk, seed=0)
    assert prompts["c-0"] is None and prompts["b-0"] == "b-1" and prompts["b-1"] == "b-0"
    assert all(p != u and p.split("-")[0] == u.split("-")[0] for u, p in prompts.items() if p)
    assert choose_prompts(utt2spk, seed=0) == prompts  # deterministic
    assert choose_prompts({u: s for u, s in utt2spk.items() if s == "a"}, 0) == \
        {u: p for u, p in prompts.items() if u.startswith("a")}  # independent of other speakers
    others = [choose_prompts(utt2spk, seed)["a-0"] for seed in range(20)]
    assert len(set(others)) == 4


def test_build_tts_examples_crops_the_prompt(tmp_path):
    for i, frames in enumerate((120, 200, 30)):
        codes = np.full((1, 2, frames), i, dtype=np.int16)
        save_tokens(tmp_path / f"s-{i}.npz", TokenFile(codes, 16000, frames * 320, 1, 50.0, 8, "m1"))
    vocab = PhonemeVocabulary.build([["k", "æ", "t"]])
    phonemes = {"s-0": ["k", "æ", "t"], "s-1": ["t", "ʒ"], "s-2": []}
    prompts = {"s-0": "s-1", "s-1": "s-2", "s-2": None}
    examples = build_tts_examples(phonemes, vocab, tmp_path, prompts, prompt_seconds=3.0)
    first, second, third = examples.examples
    assert first.prompt.shape == (2, 150) and (first.prompt == 1).all() and first.prompt_id == "s-1"
    assert second.prompt.shape == (2, 30) and third.prompt is None and third.prompt_id == ""
    assert first.target.shape == (2, 120) and second.phonemes.tolist() == [vocab.symbols.index("t"), 3]
    assert (examples.codebook_size, examples.frame_rate, examples.model_id) == (8, 50.0, "m1")
    save_tokens(tmp_path / "s-2.npz", TokenFile(np.zeros((1, 2, 5), np.int16), 16000, 1600, 1, 50.0, 8, "m2"))
    with pytest.raises(ValueError, match="retokenize"):
        build_tts_examples(phonemes, vocab, tmp_path, prompts)
    with pytest.raises(ValueError, match="1 token file"):
        build_tts_examples(phonemes, vocab, tmp_path, {"s-0": "s-9"})


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_tts_recipe_stages_0_to_2(tmp_path):
    recipe = tmp_path / "tts_lm"
    shutil.copytree(RECIPE, recipe, ignore=shutil.ignore_patterns("data", "exp", "wavs"))
    codec = save_codec(tmp_path / "codec")
    env = {**os.environ, "FUNCODEC_ROOT": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = ["bash", "run.sh", "--num-utts", "12", "--num-voices", "3", "--codec", str(codec),
               "--prompt-seconds", "0.5", "--n-q", "2", "--stop-stage", "2"]
    done = subprocess.run(command, cwd=recipe, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    vocab = PhonemeVocabulary.load(recipe / "exp" / "vocab.json")
    layout = TaskVocabulary.load(recipe / "exp" / "examples" / "layout.json")
    assert (layout.num_phonemes, layout.num_codebooks, layout.codebook_size) == (len(vocab), 2, 32)
    for split in ("train", "dev", "test"):
        data = recipe / "data" / split
        utts = [line.split()[0] for line in (data / "wav.scp").read_text().splitlines()]
        speaker = dict(line.split() for line in (data / "utt2spk").read_text().splitlines())
        phonemes = read_phonemes(data / "phonemes")
        assert sorted(phonemes) == sorted(utts) and len(utts) == 4
        assert all("|" in phonemes[u] for u in utts)  # word boundaries
        prompts = read_prompts(recipe / "exp" / "examples" / f"{split}.utt2prompt")
        assert all(p != u and speaker[p] == speaker[u] for u, p in prompts.items())
        examples = ExampleSet.load(recipe / "exp" / "examples" / f"{split}.npz")
        assert [e.utt_id for e in examples.examples] == sorted(utts)
        for example in examples.examples:
            tokens = load_tokens(recipe / "exp" / "tokens" / split / f"{example.utt_id}.npz")
            assert np.array_equal(example.target.numpy(), tokens.codes[0]) and tokens.n_q == 2
            assert example.prompt.shape == (2, 500) and example.prompt_id == prompts[example.utt_id]
            assert torch.equal(example.phonemes, vocab.encode(phonemes[example.utt_id]))
            assert layout.from_flat(layout.to_flat(example)).target.equal(example.target)
        if split == "train":
            assert all(t in vocab for u in utts for t in phonemes[u])
    for log in ("data", "phonemize", "tokenize", "pack"):
        assert (recipe / "exp" / "log" / f"{log}.log").is_file()
    # stage 2 again: the token files of this model are kept, the examples rebuilt the same
    before = (recipe / "exp" / "examples" / "train.npz").read_bytes()
    again = subprocess.run(["bash", "run.sh", "--stage", "2", "--stop-stage", "2", "--codec", str(codec),
                            "--prompt-seconds", "0.5", "--n-q", "2"], cwd=recipe, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 written (0 redone), 4 kept" in again.stdout
    assert (recipe / "exp" / "examples" / "train.npz").read_bytes() == before
    # stages 3-6 with micro models: train AR and NAR, synthesize the test sentences, evaluate
    for name, kind, n_q, causal in (("ar", "codec_lm", 1, True), ("nar", "nar_lm", 2, False)):
        model = {"kind": kind, "transformer": {"dim": 16, "n_layers": 1, "n_heads": 2, "causal": causal}}
        if kind == "codec_lm":
            model["pattern"] = "parallel"
        (recipe / "conf" / f"{name}_micro.yaml").write_text(yaml.safe_dump({
            "model": model, "train": {"steps": 6, "batch_size": 2, "log_every": 3, "checkpoint_every": 3},
            "data": {"n_q": n_q, "segment_frames": 0, "valid_every": 6}}))
    rest = subprocess.run(["bash", "run.sh", "--stage", "3", "--codec", str(codec), "--ar-config",
                           "conf/ar_micro.yaml", "--nar-config", "conf/nar_micro.yaml"], cwd=recipe, env=env,
                          capture_output=True, text=True, timeout=300)
    assert rest.returncode == 0, rest.stdout[-2000:] + rest.stderr[-2000:]
    results = json.loads((recipe / "exp" / "eval" / "results.json").read_text())
    assert set(results["nll"]) == set(results["unigram_nll"]) == {"cb0", "cb1"}
    scp = (recipe / "data" / "test" / "wav.scp").read_text().splitlines()
    test_utts = sorted(line.split()[0] for line in scp)
    synthesized = sorted(p.stem for p in (recipe / "exp" / "synth").glob("*.wav"))
    assert set(synthesized) <= set(test_utts) and synthesized
    assert sorted(results["utterances"]) == synthesized
    assert all(row["mcd_db"] > 0 and row["duration_ratio"] > 0 for row in results["utterances"].values())
    assert list(results["voices"]) == sorted({u.rsplit("-", 1)[0] for u in synthesized})
    assert len(list((recipe / "exp" / "eval").glob("*.png"))) == min(2, len(synthesized))
    assert "below the baseline" in (recipe / "exp" / "eval" / "results.md").read_text()
