"""Tests for Kaldi data directories and the audio dataset: cropping, resampling, determinism, skipping."""

import logging
import math

import pytest
import torch
from torch.utils.data import DataLoader

from funcodec_lite.audio import save_audio
from funcodec_lite.data import (
    AudioDataset,
    DataConfig,
    DataDirError,
    SkipCounter,
    Skipped,
    Utterance,
    collate_audio,
    read_data_dir,
    read_scp,
    read_table,
    validate_data_dir,
    write_data_dir,
)


def _ramp(length: int, channels: int = 1) -> torch.Tensor:
    """Distinct sample values (multiples of 2^-15, exact in PCM_16), so a crop's offset can be recovered."""
    ramp = (torch.arange(length) % 30000 - 15000).float() / 32768
    return torch.stack([ramp * (1 - 0.5 * c) for c in range(channels)])


def _data_dir(tmp_path, lengths: dict[str, int], sr: int = 16000, channels: int = 1):
    """Writes one ramp wav per utterance and a data dir listing them; returns the data dir path."""
    utts = []
    for utt, length in lengths.items():
        path = tmp_path / f"{utt}.wav"
        save_audio(path, _ramp(length, channels), sr)
        utts.append(Utterance(utt, str(path), utt.split("-")[0]))
    write_data_dir(tmp_path / "data", utts)
    return tmp_path / "data"


def test_write_read_round_trip(tmp_path):
    utts = [Utterance("spk2-b", "/x/b.wav", "spk2"), Utterance("spk1-a", "/x/a.flac", "spk1"),
            Utterance("spk1-c", "/x/c.wav", "spk1")]
    write_data_dir(tmp_path / "d", utts, {"spk1-a": "hello  world", "spk2-b": ""})
    assert (tmp_path / "d/wav.scp").read_text() == "spk1-a /x/a.flac\nspk1-c /x/c.wav\nspk2-b /x/b.wav\n"
    assert (tmp_path / "d/spk2utt").read_text() == "spk1 spk1-a spk1-c\nspk2 spk2-b\n"
    assert (tmp_path / "d/text").read_text() == "spk1-a hello  world\nspk2-b\n"
    data = read_data_dir(tmp_path / "d")
    assert data.utterances == sorted(utts, key=lambda u: u.utt_id)
    assert data.text == {"spk1-a": "hello  world", "spk2-b": ""}
    assert data.speakers() == ["spk1", "spk2"]
    assert validate_data_dir(tmp_path / "d", check_files=False) == []


def test_relative_paths_resolve_against_root(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/wav.scp").write_text("u1 audio/u1.wav\nu2 /abs/u2.wav\n")
    data = read_data_dir(tmp_path / "d", root=tmp_path)
    assert [u.path for u in data.utterances] == [str(tmp_path / "audio/u1.wav"), "/abs/u2.wav"]
    assert [u.speaker for u in data.utterances] == ["u1", "u2"]  # no utt2spk: speaker = utterance


def test_pipes_archives_and_malformed_lines_are_refused_with_line_numbers(tmp_path):
    lines = ["a /a.wav", "b sox /b.wav -t wav - |", "c", "d /x.ark:1234", "", "e /e.wav", "a /a2.wav"]
    (tmp_path / "wav.scp").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataDirError) as info:
        read_data_dir(tmp_path)
    problems = info.value.problems
    assert len(problems) == 5
    assert problems[0].startswith("wav.scp:2: Kaldi pipe commands are not supported")
    assert problems[1] == "wav.scp:3: expected 'id path', found an id only"
    assert problems[2].startswith("wav.scp:4: Kaldi archive offsets are not supported")
    assert problems[3] == "wav.scp:5: empty line"
    assert problems[4] == "wav.scp:7: duplicate id 'a' (first on line 1)"
    assert str(tmp_path) in str(info.value)


def test_scp_lists_and_one_value_tables_follow_the_data_dir_rules(tmp_path):
    (tmp_path / "tokens.scp").write_text("b rel/b.npz\na /abs/a.npz\n")  # unsorted: allowed, returned sorted
    pairs = read_scp(tmp_path / "tokens.scp", root=tmp_path)
    assert pairs == [("a", "/abs/a.npz"), ("b", str(tmp_path / "rel/b.npz"))]
    (tmp_path / "bad.scp").write_text("a /a.wav\na /b.wav\nc\nd cat x |\n")
    with pytest.raises(DataDirError) as info:
        read_scp(tmp_path / "bad.scp")
    assert [p.split(":")[1] for p in info.value.problems] == ["2", "3", "4"]
    with pytest.raises(DataDirError, match="no such file"):
        read_scp(tmp_path / "missing.scp")
    (tmp_path / "utt2class").write_text("u2 dog\nu1 rain\n")
    assert read_table(tmp_path / "utt2class") == {"u2": "dog", "u1": "rain"}
    (tmp_path / "utt2class").write_text("u2 dog\nu1 rain storm\nu3\nu2 cat\n")
    with pytest.raises(DataDirError) as info:
        read_table(tmp_path / "utt2class")
    assert info.value.problems == ["utt2class:2: expected 'utt-id value', got u1 'rain storm'",
                                   "utt2class:3: expected 'utt-id value', got u3 ''",
                                   "utt2class:4: duplicate id 'u2' (first on line 1)"]


def test_validate_reports_order_coverage_and_missing_files(tmp_path):
    save_audio(tmp_path / "b.wav", _ramp(100), 16000)
    (tmp_path / "wav.scp").write_text(f"b {tmp_path}/b.wav\na {tmp_path}/a.wav\n")
    (tmp_path / "utt2spk").write_text("a zed\nb amy\nc amy\n")
    (tmp_path / "text").write_text("a hi\n")
    assert read_data_dir(tmp_path).utterances[0].speaker == "zed"  # usable despite the problems below
    assert validate_data_dir(tmp_path) == [
        "wav.scp:2: not sorted: 'a' after 'b' (sort with LC_ALL=C sort)",
        "utt2spk:3: utterance 'c' is not in the data directory",
        "utt2spk: speaker ids are not in utterance-id order; "
        "make each utterance id start with its speaker id",
        f"wav.scp:2: audio file '{tmp_path}/a.wav' does not exist",
    ]


def test_segments_are_read_and_cut(tmp_path):
    sr = 8000
    save_audio(tmp_path / "rec.wav", _ramp(2 * sr), sr)
    write_data_dir(tmp_path / "d", [
        Utterance("s-1", str(tmp_path / "rec.wav"), "s", 0.25, 0.75, "rec"),
        Utterance("s-2", str(tmp_path / "rec.wav"), "s", 1.5, None, "rec"),
        Utterance("s-3", str(tmp_path / "rec.wav"), "s", 3.0, 4.0, "rec"),
    ])
    segments = (tmp_path / "d/segments").read_text().splitlines()
    assert segments == ["s-1 rec 0.250 0.750", "s-2 rec 1.500 -1", "s-3 rec 3.000 4.000"]
    assert (tmp_path / "d/wav.scp").read_text() == f"rec {tmp_path}/rec.wav\n"
    config = DataConfig(sample_rate=sr, max_seconds=None)
    dataset = AudioDataset(tmp_path / "d", config, train=False)
    full = _ramp(2 * sr)
    assert torch.equal(dataset[0].wav, full[:, 2000:6000]) and dataset[0].length == 4000
    assert torch.equal(dataset[1].wav, full[:, 12000:])
    skipped = dataset[2]
    assert isinstance(skipped, Skipped)
    assert skipped.problem == "segment s-3 starts at 3 s, after the end of the recording (2.000 s)"
    (tmp_path / "d/segments").write_text("s-1 rec 0.5 0.25\ns-2 other 0 1\n")
    with pytest.raises(DataDirError) as info:
        read_data_dir(tmp_path / "d")
    assert info.value.problems == ["segments:1: bad times: start 0.5 s, end 0.25 s",
                                   "segments:2: recording 'other' is not in wav.scp"]


def test_resampling_and_channel_mixing(tmp_path):
    t = torch.arange(4000) / 8000
    tone = 0.5 * torch.sin(2 * math.pi * 440 * t)
    save_audio(tmp_path / "a.wav", torch.stack([tone, 0.5 * tone]), 8000)
    write_data_dir(tmp_path / "d", [Utterance("a", str(tmp_path / "a.wav"), "a")])
    item = AudioDataset(tmp_path / "d", DataConfig(sample_rate=16000, channels=1), train=False)[0]
    assert item.wav.shape == (1, 8000) and item.length == 8000
    spectrum = torch.fft.rfft(item.wav[0]).abs()
    assert spectrum.argmax().item() * 16000 / 8000 == pytest.approx(440, abs=2)  # 2 Hz bins
    assert item.wav[0, 2000:6000].abs().max().item() == pytest.approx(0.75 * 0.5, abs=0.01)  # mean of 1, 0.5
    stereo = AudioDataset(tmp_path / "d", DataConfig(sample_rate=8000, channels=2), train=False)[0]
    assert stereo.wav.shape == (2, 4000)
    assert torch.allclose(stereo.wav[1], 0.5 * stereo.wav[0], atol=2 ** -15)


def test_train_crops_and_padding(tmp_path):
    data = _data_dir(tmp_path, {"a-long": 12000, "b-short": 3000})
    dataset = AudioDataset(data, DataConfig(sample_rate=16000, segment_seconds=0.5))
    long, short = dataset[0], dataset[1]
    assert long.wav.shape == (1, 8000) and long.length == 8000
    offset = round(long.wav[0, 0].item() * 32768) + 15000
    assert 0 <= offset <= 4000 and torch.equal(long.wav, _ramp(12000)[:, offset : offset + 8000])
    assert short.wav.shape == (1, 8000) and short.length == 3000
    assert torch.equal(short.wav[:, :3000], _ramp(3000)) and short.wav[:, 3000:].abs().sum().item() == 0
    batch = collate_audio([long, short])
    assert batch.wav.shape == (2, 1, 8000) and batch.lengths.tolist() == [8000, 3000]
    assert batch.utt_ids == ["a-long", "b-short"] and batch.skipped == []


def test_validation_mode_keeps_whole_utterances_up_to_max_seconds(tmp_path):
    data = _data_dir(tmp_path, {"a": 5000, "b": 9000, "c": 20000})
    dataset = AudioDataset(data, DataConfig(sample_rate=16000, max_seconds=1.0), train=False)
    batch = dataset.collate([dataset[i] for i in range(3)])
    assert batch.wav.shape == (3, 1, 16000) and batch.lengths.tolist() == [5000, 9000, 16000]
    assert torch.equal(batch.wav[2], _ramp(20000)[:, :16000])
    assert batch.wav[0, :, 5000:].abs().sum().item() == 0 and torch.equal(batch.wav[1, :, :9000], _ramp(9000))


def _batches(dataset, workers: int) -> list[torch.Tensor]:
    loader = DataLoader(dataset, batch_size=3, num_workers=workers, collate_fn=dataset.collate)
    return [batch.wav for batch in loader]


def test_crops_depend_only_on_seed_epoch_and_index(tmp_path):
    data = _data_dir(tmp_path, {f"u{i}": 6000 + 1500 * i for i in range(6)})
    dataset = AudioDataset(data, DataConfig(sample_rate=16000, segment_seconds=0.25, seed=3))
    dataset.set_epoch(2)
    in_process = _batches(dataset, workers=0)
    assert [b.shape for b in in_process] == [(3, 1, 4000)] * 2
    assert all(torch.equal(a, b) for a, b in zip(in_process, _batches(dataset, workers=2)))
    reversed_order = [dataset[i].wav for i in reversed(range(6))]
    assert all(torch.equal(in_process[i // 3][i % 3], reversed_order[5 - i]) for i in range(6))
    dataset.set_epoch(3)
    other_epoch = torch.cat(_batches(dataset, workers=0))
    offsets = lambda wavs: [round(w[0, 0].item() * 32768) + 15000 for w in wavs]  # noqa: E731
    assert offsets(other_epoch) != offsets(torch.cat(in_process))
    reseeded = AudioDataset(data, DataConfig(sample_rate=16000, segment_seconds=0.25, seed=4))
    reseeded.set_epoch(2)
    assert offsets(torch.cat(_batches(reseeded, 0))) != offsets(torch.cat(in_process))


def test_unreadable_files_are_skipped_reported_and_counted(tmp_path, caplog):
    data = _data_dir(tmp_path, {"a-good": 8000, "b-corrupt": 8000, "c-empty": 8000, "d-missing": 8000})
    (tmp_path / "b-corrupt.wav").write_bytes(b"RIFF" + bytes(range(200)))
    (tmp_path / "c-empty.wav").write_bytes(b"")
    (tmp_path / "d-missing.wav").unlink()
    dataset = AudioDataset(data, DataConfig(sample_rate=16000, segment_seconds=0.25))
    with caplog.at_level(logging.WARNING, logger="funcodec_lite.data.dataset"):
        batches = list(DataLoader(dataset, batch_size=4, collate_fn=dataset.collate))
        dataset[1]  # a second failure of the same file is not logged again
    assert len(batches) == 1 and len(batches[0]) == 1 and batches[0].utt_ids == ["a-good"]
    skipped = batches[0].skipped
    assert [s.utt_id for s in skipped] == ["b-corrupt", "c-empty", "d-missing"]
    assert [s.path for s in skipped] == [str(tmp_path / f"{s.utt_id}.wav") for s in skipped]
    assert "cannot decode audio" in skipped[0].problem and skipped[1].problem == "file is empty (0 bytes)"
    assert skipped[2].problem == "no such file"
    assert len(caplog.records) == 3 and str(tmp_path / "b-corrupt.wav") in caplog.records[0].getMessage()
    counter = SkipCounter(max_fraction=0.8, min_items=4)
    assert counter.update(batches[0]) == 3 and (counter.seen, counter.skipped) == (1 + 3, 3)
    counter = SkipCounter(max_fraction=0.5, min_items=8)
    assert counter.update(batches[0]) == 3  # 3 of 4: not enough items yet to judge
    with pytest.raises(RuntimeError, match="6 of 8 items could not be loaded"):
        counter.update(batches[0])


def test_all_skipped_batch_is_empty_and_config_is_checked():
    batch = collate_audio([Skipped("a", "/a.wav", "no such file"), None], channels=2)
    assert batch.wav.shape == (0, 2, 0) and len(batch) == 0 and len(batch.skipped) == 2
    assert batch.skipped[1].problem == "dataset returned None"
    assert DataConfig(sample_rate=24000, segment_seconds=0.5).segment_samples == 12000
    with pytest.raises(ValueError):
        DataConfig(channels=0)
    with pytest.raises(ValueError):
        DataConfig(max_seconds=0)


def test_empty_data_dir_is_refused(tmp_path):
    (tmp_path / "wav.scp").write_text("")
    assert read_data_dir(tmp_path).utterances == []
    with pytest.raises(ValueError, match="lists no utterances"):
        AudioDataset(tmp_path, DataConfig())
    (tmp_path / "no-scp").mkdir()
    with pytest.raises(DataDirError, match="wav.scp: missing"):
        read_data_dir(tmp_path / "no-scp")
    with pytest.raises(DataDirError, match="no such directory"):
        read_data_dir(tmp_path / "absent")


def test_random_gain_and_dither_of_training_crops(tmp_path):
    data = _data_dir(tmp_path, {"a-long": 12000, "b-short": 3000})
    plain = AudioDataset(data, DataConfig(sample_rate=16000, segment_seconds=0.5))
    gained = AudioDataset(data, DataConfig(sample_rate=16000, segment_seconds=0.5, gain_db=(-10.0, 6.0)))
    ratios = []
    for epoch in range(8):
        plain.set_epoch(epoch)
        gained.set_epoch(epoch)
        a, b = plain[0], gained[0]
        assert a.length == b.length == 8000
        ratio = (b.wav.abs().sum() / a.wav.abs().sum()).item()
        torch.testing.assert_close(b.wav, a.wav * ratio)  # same crop, one gain for the whole crop
        ratios.append(20 * math.log10(ratio))
        assert torch.equal(gained[0].wav, b.wav)  # deterministic per (seed, epoch, index)
    assert -10.0 <= min(ratios) < max(ratios) <= 6.0 and max(ratios) - min(ratios) > 3.0
    dithered = AudioDataset(data, DataConfig(sample_rate=16000, segment_seconds=0.5, dither=1e-3))
    short = dithered[1]
    noise = short.wav[:, :3000] - _ramp(3000)
    assert 0.8e-3 < noise.pow(2).mean().sqrt().item() < 1.2e-3
    assert short.wav[:, 3000:].abs().sum().item() == 0  # padding stays zero (it is not audio)
    with pytest.raises(ValueError, match="gain_db"):
        DataConfig(gain_db=(6.0, -10.0))
