"""IAF student: composed per-sample distribution, causality, Gaussian KL, distillation, teacher handling."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from funcodec_lite import load_model_dir
from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig
from funcodec_lite.train.engine_config import LoopConfig
from funcodec_lite.utils.weights import save_model_dir
from funcodec_lite.vocoders.likelihood_training import LIKELIHOOD_LOOP, train_likelihood_vocoder
from funcodec_lite.vocoders.student import (
    PRESETS,
    StudentConfig,
    StudentVocoder,
    build_student,
    gaussian_kl,
    student_tiny,
)
from funcodec_lite.vocoders.wavenet import WaveNetConfig, WaveNetVocoder, wavenet_tiny_gaussian


def _student(distribution: str = "gaussian", seed: int = 0, randomize: bool = True) -> StudentVocoder:
    """Hop 4, 16 mel bands, three flows of 3 layers; output layers randomized (flows are not identities)."""
    torch.manual_seed(seed)
    config = StudentConfig(num_mels=16, upsample_scales=[2, 2], distribution=distribution,
                           flow_layers=[3, 3, 3], residual_channels=8, gate_channels=16, skip_channels=8,
                           spectral_weight=0.0)
    student = StudentVocoder(config).double()
    if randomize:
        for flow in student.flows:
            nn.init.normal_(flow.out[-1].weight, std=0.6)
            nn.init.normal_(flow.out[-1].bias, std=0.3)
    return student


def _teacher(output: str = "gaussian", seed: int = 1) -> WaveNetVocoder:
    """A teacher with structure: its output layer randomized (means and scales vary with the past and mel)."""
    torch.manual_seed(seed)
    config = WaveNetConfig(num_mels=16, upsample_scales=[2, 2], output=output, mol_components=2,
                           residual_channels=8, gate_channels=16, skip_channels=16, layers_per_cycle=3,
                           dilation_cycles=2)
    teacher = WaveNetVocoder(config).double()
    nn.init.normal_(teacher.head[-1].weight, std=0.4)
    with torch.no_grad():
        teacher.head[-1].bias.copy_(torch.linspace(-1.5, -0.5, teacher.head[-1].bias.numel()))
    return teacher


def test_composed_distribution_equals_pushing_z_through_the_flows():
    student = _student()
    mel = torch.randn(2, 16, 10, dtype=torch.float64)
    z = torch.randn(2, 1, 40, dtype=torch.float64)
    x, mean, log_scale = student.transform(z, mel)
    # the composition by hand: x_i = x_{i-1} * exp(log_s_i) + mu_i, flow after flow
    cond, pushed, scales = student.upsampler(mel), z, []
    for flow in student.flows:
        shift, flow_log_scale = flow(pushed, cond)
        pushed = pushed * flow_log_scale.exp() + shift
        scales.append(flow_log_scale)
    torch.testing.assert_close(x, pushed, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_scale, sum(scales), rtol=0, atol=1e-12)
    torch.testing.assert_close(x, z * log_scale.exp() + mean, rtol=0, atol=1e-12)
    assert log_scale.std() > 0.05 and mean.std() > 0.05  # the flows are not identities
    # given z_<t the sample t is mean_t + scale_t * z_t: changing z_20 moves x_20 by scale_20 * dz only
    changed = z.clone()
    changed[..., 20] += 0.7
    x2, mean2, log_scale2 = student.transform(changed, mel)
    torch.testing.assert_close(mean2[..., :21], mean[..., :21], rtol=0, atol=1e-12)
    torch.testing.assert_close(log_scale2[..., :21], log_scale[..., :21], rtol=0, atol=1e-12)
    torch.testing.assert_close(x2[..., :20], x[..., :20], rtol=0, atol=1e-12)
    torch.testing.assert_close(x2[..., 20] - x[..., 20], 0.7 * log_scale[..., 20].exp(), rtol=0, atol=1e-12)
    assert (mean2[..., 21:] - mean[..., 21:]).abs().max() > 1e-4


def test_synthesis_is_one_seeded_pass():
    student = _student()
    mel = torch.randn(1, 16, 6, dtype=torch.float64)
    a = student.synthesize(mel, generator=torch.Generator().manual_seed(2))
    z = torch.randn(1, 1, 24, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert a.shape == (1, 1, 24)
    torch.testing.assert_close(a, student.transform(z, mel)[0].clamp(-1, 1), rtol=0, atol=0)
    cold = student.synthesize(mel, temperature=0.0)  # zero noise: the composed means of z = 0
    torch.testing.assert_close(cold, student.transform(torch.zeros_like(z), mel)[0].clamp(-1, 1))


def test_gaussian_kl_matches_torch():
    generator = torch.Generator().manual_seed(0)
    mq, mp = torch.randn(2, 50, generator=generator, dtype=torch.float64).unbind(0)
    lq, lp = (0.8 * torch.randn(2, 50, generator=generator, dtype=torch.float64)).unbind(0)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mq, lq.exp()),
                                                 torch.distributions.Normal(mp, lp.exp()))
    torch.testing.assert_close(gaussian_kl(mq, lq, mp, lp), expected, rtol=1e-12, atol=1e-12)
    assert gaussian_kl(mq, lq, mq, lq).abs().max() == 0


def test_monte_carlo_kl_of_a_logistic_student():
    """With the teacher equal to the student's composed logistic, the KL estimate is 0 up to Monte Carlo
    noise; with the teacher's scales doubled it is KL(Logistic(0, 1) || Logistic(0, 2)) (quadrature)."""
    student = _student("logistic")
    teacher = _teacher("mol")
    student.attach_teacher(teacher)
    student.config.mc_samples = 400
    mel = torch.randn(1, 16, 4, dtype=torch.float64)
    z = student.noise((1, 1, 16), mel, torch.Generator().manual_seed(0))
    x, mean, log_scale = student.transform(z, mel)
    for log_ratio, expected in ((0.0, 0.0), (math.log(2.0), None)):
        params = torch.cat([torch.zeros_like(mean), torch.full_like(mean, -20.0),  # one live component
                            mean, mean, log_scale + log_ratio, log_scale + log_ratio], dim=1)
        student._teacher_params = lambda x, mel, params=params: params  # the teacher, replaced
        torch.manual_seed(1)
        kl = student.distillation_kl(mean, log_scale, x, mel)["kl"].item()
        if expected is not None:
            assert abs(kl - expected) < 0.02
        else:  # KL(Logistic(0, 1) || Logistic(0, 2)) by quadrature
            grid = torch.linspace(-40, 40, 400001, dtype=torch.float64)
            log_q = -grid - 2 * torch.nn.functional.softplus(-grid)
            log_p = -grid / 2 - math.log(2) - 2 * torch.nn.functional.softplus(-grid / 2)
            exact = torch.trapezoid(log_q.exp() * (log_q - log_p), grid).item()
            assert 0.2 < exact < 0.4 and abs(kl - exact) < 0.03


def test_teacher_is_frozen_and_outside_the_state_dict():
    student, teacher = _student(), _teacher()
    teacher.train()
    with pytest.raises(RuntimeError, match="attach_teacher"):
        student.training_loss(torch.randn(1, 16, 2, dtype=torch.float64),
                              torch.randn(1, 1, 8, dtype=torch.float64))
    keys = set(student.state_dict())
    student.attach_teacher(teacher)
    assert set(student.state_dict()) == keys and not any("teacher" in k for k in keys)
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in StudentVocoder(
        student.config).parameters()) + 1  # the teacher's weights are not the student's
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    student.train()
    assert not teacher.training
    terms = student.training_loss(torch.randn(2, 16, 4, dtype=torch.float64),
                                  0.3 * torch.randn(2, 1, 16, dtype=torch.float64))
    terms["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    with pytest.raises(ValueError, match="from a 'mol' teacher"):
        _student("logistic").attach_teacher(teacher)


@pytest.mark.parametrize("distribution", ["gaussian", "logistic"])
def test_distillation_lowers_the_kl(distribution):
    teacher = _teacher("gaussian" if distribution == "gaussian" else "mol")
    student = _student(distribution, randomize=False)
    student.attach_teacher(teacher)
    mel = torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    wav = torch.zeros(2, 1, 64, dtype=torch.float64)

    def kl() -> float:
        torch.manual_seed(100)
        with torch.no_grad():
            return sum(student.training_loss(mel, wav)["kl"].item() for _ in range(4)) / 4

    before = kl()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(40):
        loss = student.training_loss(mel, wav)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = kl()
    assert before > 0.3, before
    assert after < 0.5 * before, (before, after)


def test_preset_sizes():
    counts = {}
    for name, make in PRESETS.items():
        config = make()
        assert config.hop_length == 256 and config.num_mels == 80
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in StudentVocoder(config).parameters())
    assert counts == {"clarinet": 2_286_028, "parallel_wavenet": 2_293_832, "tiny": 44_068}


def test_engine_training_and_model_dir_round_trip(tmp_path):
    """The tiny student distils the tiny Gaussian teacher through the engine (teacher from a model directory);
    the exported directory holds the student alone and synthesizes the same audio for a seed."""
    torch.manual_seed(0)
    teacher_dir = tmp_path / "teacher"
    save_model_dir(teacher_dir, WaveNetVocoder(wavenet_tiny_gaussian()))
    mel_config = FoleyMelConfig(num_samples=None)
    t = torch.arange(4 * mel_config.hop_length) / mel_config.sample_rate
    wavs = 0.5 * torch.sin(2 * math.pi * torch.tensor([220.0, 440.0])[:, None] * t)
    mels = FoleyMel(mel_config)(wavs)
    loop = LoopConfig.from_dict({"steps": 3, "batch_size": 2, "log_every": 1, "checkpoint_every": 1000},
                                LIKELIHOOD_LOOP)
    model = train_likelihood_vocoder(lambda: build_student(student_tiny(), teacher_dir), mels, wavs, loop,
                                     tmp_path / "exp", segment_frames=2)
    loaded = load_model_dir(tmp_path / "exp" / "model", kind="student")
    assert type(loaded) is StudentVocoder and loaded.config == model.config and not loaded._teacher
    outputs = [m.synthesize(mels[:1], generator=torch.Generator().manual_seed(3)) for m in (model, loaded)]
    assert outputs[0].shape == (1, 1, 1024) and torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], model.synthesize(mels[:1], generator=torch.Generator().manual_seed(4)))
