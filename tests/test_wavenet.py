"""WaveNet vocoder: incremental = naive sampling, causality, output likelihoods, training, model dirs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from funcodec_lite import load_model_dir
from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig
from funcodec_lite.train.engine_config import LoopConfig
from funcodec_lite.utils.weights import read_provenance
from funcodec_lite.vocoders.likelihood_training import LIKELIHOOD_LOOP, train_likelihood_vocoder
from funcodec_lite.vocoders.wavenet import PRESETS, WaveNetConfig, WaveNetVocoder, wavenet_tiny
from funcodec_lite.vocoders.wavenet_layers import MelUpsampler, WaveNetStack
from funcodec_lite.vocoders.wavenet_outputs import (
    discretized_logistic_log_prob,
    gaussian_log_prob,
    mol_log_density,
    mol_log_prob,
    mulaw_decode,
    mulaw_encode,
)
from funcodec_lite.vocoders.wavenet_sampling import incremental_sample, naive_sample


def _small(output: str) -> WaveNetConfig:
    """Hop 4, 16 mel bands, 3 cycles of dilations 1, 2, 4 (receptive field 22 samples)."""
    return WaveNetConfig(num_mels=16, upsample_scales=[2, 2], output=output, mulaw_bits=6, mol_components=3,
                         residual_channels=8, gate_channels=16, skip_channels=16, layers_per_cycle=3,
                         dilation_cycles=3)


def _model(output: str, seed: int = 0) -> WaveNetVocoder:
    torch.manual_seed(seed)
    return WaveNetVocoder(_small(output)).double().eval()


@pytest.mark.parametrize("output", ["mulaw", "mol", "gaussian"])
def test_incremental_sampler_equals_naive(output):
    model = _model(output)
    assert model.receptive_field == 22
    mel = torch.randn(2, 16, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fast = incremental_sample(model, mel, 1.0, torch.Generator().manual_seed(5))
    slow = naive_sample(model, mel, 1.0, torch.Generator().manual_seed(5))
    assert fast.shape == (2, 48)  # longer than the receptive field: the queues wrap around
    if output == "mulaw":
        assert fast.dtype == torch.long and torch.equal(fast, slow)
        assert len(fast.unique()) > 10
    else:
        torch.testing.assert_close(fast, slow, rtol=0, atol=1e-12)
        assert fast.std() > 0.05
    other = incremental_sample(model, mel, 1.0, torch.Generator().manual_seed(6))
    assert not torch.equal(fast, other)
    audio = model.synthesize(mel, generator=torch.Generator().manual_seed(5))
    assert audio.shape == (2, 1, 48)
    expected = mulaw_decode(fast, 6, torch.float64) if output == "mulaw" else fast
    assert torch.equal(audio[:, 0], expected)


def test_stack_step_matches_forward_and_noncausal_is_centered():
    torch.manual_seed(0)
    stack = WaveNetStack(1, 8, 16, 8, 4, 3, [1, 2, 4, 1], causal=True).double()
    x, cond = torch.randn(2, 1, 30, dtype=torch.float64), torch.randn(2, 4, 30, dtype=torch.float64)
    whole = stack(x, cond)
    queues, proj, steps = stack.init_queues(x), stack.cond_projections(cond), []
    for t in range(30):
        out, queues = stack.step(x[..., t:t + 1], queues, [p[..., t:t + 1] for p in proj])
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, dim=-1), whole, rtol=0, atol=1e-12)
    # centered padding: output 15 depends on inputs 15 - 8 ... 15 + 8 (receptive field 17)
    centered = WaveNetStack(1, 8, 16, 8, 4, 3, [1, 2, 4, 1], causal=False).double()
    assert centered.receptive_field == 17
    xg = x.clone().requires_grad_(True)
    centered(xg, cond)[..., 15].sum().backward()
    seen = (xg.grad[0, 0] != 0).nonzero().flatten()
    assert (seen.min().item(), seen.max().item()) == (7, 23)


def test_upsampler_lengths():
    for scales, hop in ([4, 4, 4, 4], 256), ([3, 5], 15), ([8, 8, 4], 256):
        upsampler = MelUpsampler(80, scales, depthwise=True)
        assert upsampler.hop_length == hop
        assert upsampler(torch.randn(2, 80, 3)).shape == (2, 80, 3 * hop)
    assert sum(p.numel() for p in MelUpsampler(80, [4, 4, 4, 4]).parameters()) == 4 * (80 * 80 * 8 + 80)


@pytest.mark.parametrize("output", ["mulaw", "gaussian"])
def test_prediction_at_t_sees_only_earlier_samples(output):
    model = _model(output)
    mel = torch.randn(1, 16, 10, dtype=torch.float64)
    if output == "mulaw":  # perturbation: change sample 20, the parameters before 21 stay the same
        targets = torch.randint(0, 64, (1, 40), generator=torch.Generator().manual_seed(0))
        changed = targets.clone()
        changed[0, 20] = (targets[0, 20] + 7) % 64
        a, b = model.forward_params(targets, mel), model.forward_params(changed, mel)
        assert torch.equal(a[..., :21], b[..., :21])
        assert (a[..., 21] - b[..., 21]).abs().max() > 1e-6
        return
    targets = (0.3 * torch.randn(1, 40, dtype=torch.float64)).requires_grad_(True)
    model.forward_params(targets, mel)[..., 30].sum().backward()
    seen = (targets.grad[0] != 0).nonzero().flatten()
    # the prediction of sample 30 sees samples 30 - 22 ... 29: never itself, never later ones
    assert (seen.min().item(), seen.max().item()) == (30 - model.receptive_field, 29)


def test_mulaw_round_trip():
    x = torch.linspace(-1, 1, 20001, dtype=torch.float64)
    for bits in (8, 10):
        mu = 2**bits - 1
        classes = mulaw_encode(x, bits)
        assert classes.min() == 0 and classes.max() == mu
        error = (mulaw_decode(classes, bits, torch.float64) - x).abs()
        # half a class in the companded domain, times the largest slope of the expansion
        bound = 1 / mu * (1 + mu) * math.log1p(mu) / mu
        assert error.max() <= bound and error.max() > 0.5 * bound
        assert error[10000 - 5:10000 + 6].max() < 1e-4  # μ-law is finest near zero
        every = torch.arange(mu + 1)
        assert torch.equal(mulaw_encode(mulaw_decode(every, bits, torch.float64), bits), every)


def test_discretized_mixture_is_a_distribution():
    generator = torch.Generator().manual_seed(0)
    classes, components = 16, 3
    params = torch.cat([torch.randn(4, components, 1, generator=generator, dtype=torch.float64),
                        0.8 * torch.randn(4, components, 1, generator=generator, dtype=torch.float64),
                        torch.empty(4, components, 1, dtype=torch.float64).uniform_(-2.5, -0.5,
                                                                                    generator=generator)], 1)
    bins = torch.linspace(-1, 1, classes, dtype=torch.float64)
    log_p = mol_log_prob(params.expand(-1, -1, classes), bins.expand(4, classes), classes, -7.0)
    torch.testing.assert_close(log_p.exp().sum(dim=1), torch.ones(4, dtype=torch.float64), rtol=0,
                               atol=1e-5)
    # an inner bin is the integral of the logistic density over it (trapezoid, 20,001 points)
    mean, log_scale = torch.tensor(0.1, dtype=torch.float64), torch.tensor(-1.5, dtype=torch.float64)
    centre, half = bins[9], 1 / (classes - 1)
    grid = torch.linspace(centre - half, centre + half, 20001, dtype=torch.float64)
    u = (grid - mean) / log_scale.exp()
    density = torch.exp(-u) / (log_scale.exp() * (1 + torch.exp(-u)) ** 2)
    integral = torch.trapezoid(density, grid)
    log_bin = discretized_logistic_log_prob(centre, mean, log_scale, classes)
    assert abs(log_bin.exp().item() - integral.item()) < 1e-9
    # the continuous mixture density integrates to 1 and matches the 65,536-level bins / bin width
    grid = torch.linspace(-30, 30, 200001, dtype=torch.float64)
    density = mol_log_density(params[:1].expand(-1, -1, grid.numel()), grid[None], -7.0).exp()
    assert abs(torch.trapezoid(density[0], grid).item() - 1) < 1e-6
    inner = torch.linspace(-0.9, 0.9, 7, dtype=torch.float64)[None]
    p7 = params[:1].expand(-1, -1, 7)
    gap = mol_log_prob(p7, inner, 65536, -7.0) - math.log(2 / 65535) - mol_log_density(p7, inner, -7.0)
    assert gap.abs().max() < 1e-6


def test_gaussian_log_prob_and_mulaw_loss():
    params = torch.tensor([[[0.2, -0.5], [-1.0, -3.0]]], dtype=torch.float64)  # means, log-scales
    x = torch.tensor([[0.5, -0.45]], dtype=torch.float64)
    expected = torch.distributions.Normal(params[:, 0], params[:, 1].exp()).log_prob(x)
    torch.testing.assert_close(gaussian_log_prob(params, x, -7.0), expected)
    assert gaussian_log_prob(params, x, -2.0)[0, 1] < expected[0, 1]  # the bound on the log-scale
    model = _model("mulaw")
    mel, wav = torch.randn(2, 16, 8, dtype=torch.float64), 0.5 * torch.randn(2, 1, 32, dtype=torch.float64)
    targets = model.targets(wav)
    log_p = torch.log_softmax(model.forward_params(targets, mel), dim=1)
    manual = -log_p.gather(1, targets[:, None]).mean()
    terms = model.training_loss(mel, wav)
    torch.testing.assert_close(terms["loss"], manual)
    assert 3.5 < terms["loss"].item() < 4.7  # about ln 64 = 4.16 nats at initialisation


def test_preset_sizes():
    counts = {}
    for name, make in PRESETS.items():
        config = make()
        assert config.hop_length == 256 and config.num_mels == 80
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in WaveNetVocoder(config).parameters())
    assert counts == {"base": 3_788_126, "tiny": 60_544, "tiny_gaussian": 48_082, "tiny_mol": 48_412}


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="output must be one of"):
        WaveNetConfig(output="laplace")
    model = _model("gaussian")
    with pytest.raises(ValueError, match=r"expected mel \[B, 16, F\]"):
        model.synthesize(torch.randn(1, 8, 2, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------------
# Training through the engine, and the model directory it exports


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny μ-law WaveNet after 40 steps on 4 sines of 2,048 samples; its losses and exp dir."""
    frames, mel_config = 8, FoleyMelConfig(num_samples=None)
    t = torch.arange(frames * mel_config.hop_length) / mel_config.sample_rate
    wavs = 0.5 * torch.sin(2 * math.pi * torch.tensor([220.0, 330.0, 440.0, 660.0])[:, None] * t)
    mels = FoleyMel(mel_config)(wavs)
    loop = LoopConfig.from_dict({"steps": 40, "batch_size": 4, "lr": 3e-3, "log_every": 5,
                                 "checkpoint_every": 1000}, LIKELIHOOD_LOOP)
    exp_dir = tmp_path_factory.mktemp("wavenet")
    model = train_likelihood_vocoder(lambda: WaveNetVocoder(wavenet_tiny()), mels, wavs, loop, exp_dir,
                                     segment_frames=2)
    losses = [json.loads(line)["loss"] for line in (exp_dir / "train.jsonl").read_text().splitlines()]
    return model, losses, exp_dir, mels


def test_likelihood_training_lowers_the_nll(trained):
    _, losses, _, _ = trained
    assert len(losses) == 8
    assert 5.0 < losses[0] < 5.9  # about ln 256 = 5.55 nats per sample at the start
    assert losses[-1] < min(losses[0] - 1.0, 4.5), losses  # nats per sample, in 40 steps


def test_model_dir_round_trip(trained):
    model, _, exp_dir, mels = trained
    loaded = load_model_dir(exp_dir / "model", kind="wavenet")
    assert type(loaded) is WaveNetVocoder and loaded.config == model.config
    assert read_provenance(exp_dir / "model")["steps"] == 40
    mel = mels[:1, :, :1]  # one frame: 256 samples
    outputs = [m.synthesize(mel, generator=torch.Generator().manual_seed(3)) for m in (model, loaded)]
    assert outputs[0].shape == (1, 1, 256) and torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], model.synthesize(mel, generator=torch.Generator().manual_seed(4)))
    assert outputs[0].abs().max() <= 1.0
