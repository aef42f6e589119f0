"""The trainer: loss falls, exact resume, checkpoints, validation outputs, and a 2-process run."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from safetensors.torch import load_file

from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.codec.training.task import Trainer
from funcodec_lite.train.checkpoint import checkpoint_dirs
from funcodec_lite.train.engine import epoch_batches

TINY = {
    "codec": {"sample_rate": 8000, "arch": "seanet", "domain": "time",
              "model": {"n_filters": 4, "ratios": [4, 2], "dimension": 8, "lstm": 0},
              "quantizer": {"dim": 8, "n_q": 4, "codebook_size": 16, "kmeans_iters": 3,
                            "quantizer_dropout": True, "dropout_choices": [1, 2, 4]}},
    "discriminator": {"kinds": ["msstft"], "msstft": {"filters": 4, "windows": [128, 256]}},
    "optim": {"lr": 1e-3},
    "data": {"segment_seconds": 0.1, "batch_size": 2, "valid_max_seconds": 0.5, "valid_utterances": 2},
    "schedule": {"max_steps": 4, "disc_start_step": 1, "log_every": 1, "valid_every": 1000,
                 "checkpoint_every": 2, "keep_last": 2, "seed": 3, "valid_n_q": [1, 4], "valid_clips": 1},
}


def _data_dir(root, name, count, seed):
    """A data dir of `count` short tonal clips at 16 kHz (the loader resamples them to 8 kHz)."""
    rng = np.random.default_rng(seed)
    directory = root / name
    (directory / "wav").mkdir(parents=True)
    lines = []
    for i in range(count):
        t = np.arange(int(16000 * rng.uniform(0.2, 0.6))) / 16000
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) + 0.01 * rng.standard_normal(t.size)
        path = directory / "wav" / f"{name}{i:03d}.wav"
        sf.write(path, wav.astype(np.float32), 16000)
        lines.append(f"{name}{i:03d} {path}")
    (directory / "wav.scp").write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return _data_dir(root, "train", 10, 0), _data_dir(root, "valid", 2, 1)


def _trainer(tmp_path, data, lr=1e-3, **schedule):
    config_data = json.loads(json.dumps(TINY))
    config_data["schedule"].update(schedule)
    config_data["optim"]["lr"] = lr
    return Trainer(TrainConfig.from_dict(config_data), data[0], data[1], tmp_path)


def _weights(exp_dir):
    latest = checkpoint_dirs(exp_dir)[-1]
    return {**load_file(str(latest / "generator.safetensors")),
            **{f"d.{k}": v for k, v in load_file(str(latest / "discriminator.safetensors")).items()}}


def test_batches_are_a_partition_shared_out_by_rank():
    one = epoch_batches(10, 2, seed=3, epoch=0, rank=0, world=1)
    rank0 = epoch_batches(10, 2, seed=3, epoch=0, rank=0, world=2)
    rank1 = epoch_batches(10, 2, seed=3, epoch=0, rank=1, world=2)
    assert sorted(sum(one, [])) == list(range(10))
    assert not set(sum(rank0, [])) & set(sum(rank1, []))
    assert epoch_batches(10, 2, 3, 1, 0, 1) != one  # a new order each epoch


def test_resume_gives_identical_weights(tmp_path, data):
    straight = _trainer(tmp_path / "straight", data)
    straight.fit(max_steps=4)
    first = _trainer(tmp_path / "resumed", data)
    first.fit(max_steps=2)
    torch.manual_seed(1234)  # a new process would not share the first run's random state
    second = _trainer(tmp_path / "resumed", data)
    second.fit(max_steps=4, resume=True)
    assert second.step == 4
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    assert [p.name for p in checkpoint_dirs(tmp_path / "straight")] == ["step-00000002", "step-00000004"]
    assert (tmp_path / "straight" / "model" / "model.safetensors").exists()


def test_loss_falls_and_validation_writes_outputs(tmp_path, data):
    trainer = _trainer(tmp_path, data, lr=5e-3, max_steps=150, disc_start_step=1000, valid_every=150,
                       checkpoint_every=1000, log_every=50)
    wav = next(trainer.batches())
    before = trainer.loss(wav, trainer.generator(wav, n_q=4).wav).total.item()
    trainer.fit()
    with torch.no_grad():
        trainer.generator.eval()
        after = trainer.loss(wav, trainer.generator(wav, n_q=4).wav).total.item()
    assert after < 0.7 * before, (before, after)
    lines = (tmp_path / "valid.jsonl").read_text().splitlines()
    result = json.loads(lines[-1])
    assert result["step"] == 150 and "nq4/mel_distance" in result and "nq1/pesq" in result
    # training time so far (the last validation comes after the last step), rounded to 1/1000 minute
    assert result["train_minutes"] > 0
    assert result["train_minutes"] == pytest.approx(trainer.train_seconds / 60, abs=1e-3)
    clips = sorted(p.suffix for p in (tmp_path / "valid" / "step-00000150").iterdir())
    assert clips.count(".wav") == 2 and clips.count(".png") == 1
    assert any((tmp_path / "tensorboard").iterdir())


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_cpu_run_keeps_ranks_identical(tmp_path, data):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(TINY))
    script = (
        "from funcodec_lite.codec.training.config import TrainConfig\n"
        "from funcodec_lite.codec.training.task import Trainer\n"
        "from safetensors.torch import save_file\n"
        f"config = TrainConfig.from_yaml({str(config)!r})\n"
        f"t = Trainer(config, {str(data[0])!r}, None, {str(tmp_path / 'exp')!r})\n"
        "t.fit(max_steps=3)\n"
        "model = t.accelerator.unwrap_model(t.generator)\n"
        "state = {k: v.contiguous() for k, v in model.state_dict().items()}\n"
        f"save_file(state, {str(tmp_path)!r} + f'/rank{{t.accelerator.process_index}}.safetensors')\n"
    )
    (tmp_path / "run.py").write_text(script)
    # `--multi_gpu` on a machine without GPUs starts a multi-CPU (gloo) run.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
               "--dynamo_backend", "no", str(tmp_path / "run.py")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], atol=1e-6, rtol=1e-5, msg=key)
    assert rank0["quantizer.layers.0.inited"].item() == 1.0  # codebooks were initialised and trained


def test_one_stft_per_signal_and_resolution(tmp_path, data):
    """A training step with the discriminators on transforms each signal once per resolution:
    the loss's 7 scales and the discriminator's 2 windows, for the real and the decoded batch."""
    from funcodec_lite.utils.profile import STFTCallCounter

    trainer = _trainer(tmp_path, data, disc_start_step=0)
    wav = next(trainer.batches())
    with STFTCallCounter() as counter:
        trainer.train_step(wav)
    assert counter.max_repeats == 1
    assert counter.total == 2 * (7 + 2)


def test_max_minutes_stops_and_checkpoints(tmp_path, data):
    trainer = _trainer(tmp_path, data, max_steps=1000, max_minutes=0.02)  # 1.2 s budget
    trainer.fit()
    assert 0 < trainer.step < 1000
    assert checkpoint_dirs(tmp_path)[-1].name == f"step-{trainer.step:08d}"


def test_set_overrides_are_typed_and_checked(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(TINY))
    overrides = ["optim.lr=2e-4", "schedule.mixed_precision=no", "data.batch_size=3"]
    config = TrainConfig.from_yaml(path, overrides)
    assert config.optim.lr == pytest.approx(2e-4)
    assert config.schedule.mixed_precision == "no"  # YAML reads a bare `no` as false
    assert config.data.batch_size == 3
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig.from_yaml(path, ["schedule.mixed_precision=fp64"])


def test_disc_every_updates_the_discriminator_on_every_kth_step_only(tmp_path, data):
    trainer = _trainer(tmp_path, data, disc_start_step=1, disc_every=2)
    batches = trainer.batches()

    def disc_state():
        return [p.detach().clone() for p in trainer.discriminator.parameters()]

    changed = []
    for _ in range(6):
        before = disc_state()
        terms = trainer.train_step(next(batches))
        trainer.step += 1
        moved = any(not torch.equal(a, b) for a, b in zip(before, disc_state()))
        changed.append(moved)
        assert moved == ("disc" in terms)
        if trainer.step > 1:
            assert "g_adv" in terms and "g_feat" in terms  # the generator trains against D every step
    assert changed == [False, True, False, True, False, True]
    with pytest.raises(ValueError, match="disc_every"):
        TrainConfig.from_dict({**TINY, "schedule": {**TINY["schedule"], "disc_every": 0}})


@pytest.mark.parametrize("name", ["tiny_freq", "tiny_time_scaled"])
def test_recipe_gradient_clip_sits_above_the_gradient_norms(tmp_path, name):
    # FunCodec's clip of 1.0 against generator norms of 8-40 rescaled every step; the recipe's clip
    # should only catch spikes
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "egs" / "speech_codec" / "conf"
    config = TrainConfig.from_yaml(root / f"{name}.yaml", [
        "data.batch_size=2", "data.segment_seconds=0.4", "data.num_workers=0", "schedule.disc_start_step=0"])
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        t = np.arange(16000) / 16000
        tone = np.sin(2 * np.pi * rng.uniform(100, 300) * t * (1 + 0.2 * t))
        wav = 0.05 * tone + 0.003 * rng.standard_normal(16000)
        sf.write(tmp_path / f"u{i}.wav", wav.astype(np.float32), 16000)
        lines.append(f"u{i} {tmp_path / f'u{i}.wav'}")
    (tmp_path / "wav.scp").write_text("\n".join(lines) + "\n")
    trainer = Trainer(config, tmp_path, None, tmp_path / "exp")
    batches = trainer.batches()
    norms = []
    for _ in range(3):
        terms = trainer.train_step(next(batches))
        trainer.step += 1
        norms.append(terms["grad_norm_g"])
    assert min(norms) > 1.0  # the old clip would have rescaled every one of these steps
    assert max(norms) < config.optim.grad_clip
