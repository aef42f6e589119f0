"""Tests for the DCASE Foley mel VQ-VAE and Lee's RVQ-VAE variant."""


import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from funcodec_lite.foley.training import vqvae_error
from funcodec_lite.foley.vqvae import MelVQVAE, MelVQVAEConfig
from funcodec_lite.foley.vqvae_layers import ResBlock2d

SMALL = {"channel": 16, "n_res_channel": 8, "embed_dim": 8, "codebook_size": 32}


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _toy_mels(batch: int, seed: int = 0, n_mels: int = 80, n_frames: int = 344) -> torch.Tensor:
    """Smooth log-mel-like images in [-11.5, 0]: a few decaying tonal ridges plus noise, [B, 1, H, W]."""
    gen = torch.Generator().manual_seed(seed)
    f = torch.arange(n_mels, dtype=torch.float32)[:, None]
    t = torch.arange(n_frames, dtype=torch.float32)[None, :]
    mels = []
    for _ in range(batch):
        centre = torch.randint(5, n_mels - 5, (3,), generator=gen).float()
        onset = torch.randint(0, n_frames // 2, (3,), generator=gen).float()
        level = torch.full((n_mels, n_frames), -10.0)
        for c, o in zip(centre, onset):
            envelope = torch.exp(-(t - o).clamp(min=0) / 60.0) * (t >= o)
            level = level + 8.0 * torch.exp(-((f - c) ** 2) / 18.0) * envelope
        mels.append(level + 0.3 * torch.randn(n_mels, n_frames, generator=gen))
    return torch.stack(mels)[:, None].clamp(-11.5, 0.0)


def _model(config: MelVQVAEConfig, seed: int = 0) -> MelVQVAE:
    torch.manual_seed(seed)
    return MelVQVAE(config)


@torch.no_grad()
def _fit_codebooks(model: MelVQVAE, mel: torch.Tensor) -> None:
    """k-means codebooks on the model's own latent residuals (random codebooks use only a few codes)."""
    residual = model.encode_latent(mel).flatten(2).transpose(1, 2).reshape(-1, model.config.embed_dim)
    for layer in model.quantizer.layers:
        layer.initialise(residual, torch.Generator().manual_seed(0))
        residual = residual - layer.embed[torch.cdist(residual, layer.embed).argmin(-1)]


def test_baseline_parameter_counts_match_the_dcase_code():
    model = _model(MelVQVAEConfig())
    assert _count(model) == 2_207_297
    assert _count(model.encoder) == 1_910_784
    assert _count(model.decoder) == 288_257
    assert _count(model.pre_quant) == 8_256
    assert model.quantizer.layers[0].embed.shape == (512, 64)  # a buffer, trained by EMA
    assert model.quantizer.layers[0].decay == 0.99


@pytest.mark.parametrize(
    ("config", "code_map"),
    [
        (MelVQVAEConfig(), (20, 86)),
        (MelVQVAEConfig.rvq(), (40, 43)),
        (MelVQVAEConfig.rvq(strides=(2, 4)), (40, 43)),
        (MelVQVAEConfig(**SMALL), (20, 86)),
        (MelVQVAEConfig.rvq(strides=(4, 2), **SMALL), (40, 43)),
        (MelVQVAEConfig.rvq(strides=(2, 4), **SMALL), (40, 43)),
        (MelVQVAEConfig.rvq(strides=(2, 2, 2), **SMALL), (40, 43)),
        (MelVQVAEConfig.rvq(strides=(4,), n_q=2, **SMALL), (40, 86)),
        (MelVQVAEConfig(strides=(2, 2), time_strides=(4, 2), **SMALL), (20, 43)),
        (MelVQVAEConfig.rvq(strides=(2, 2), time_strides=(2, 4), n_q=2, **SMALL), (40, 43)),
    ],
)
def test_shapes_of_every_configuration(config, code_map):
    model = _model(config).eval()
    mel = _toy_mels(1)
    _fit_codebooks(model, _toy_mels(2, seed=3))
    with torch.no_grad():
        out = model(mel)
        codes = model.encode(mel[:, 0])  # [B, H, W] input works too
    assert config.code_map_shape == model.code_map_shape == code_map
    assert out.mel.shape == (1, 1, 80, 344)
    assert out.codes.shape == codes.shape == (1, *code_map)
    assert codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < config.codebook_size
    assert torch.equal(out.codes, codes)
    # brute force (float64): at latent position (y, x), layer q's code, stored at row q·h + y, column x
    # of the stacked code map, is a nearest codeword to what the previous layers' codewords leave
    with torch.no_grad():
        z = model.encode_latent(mel)[0].double()  # [D, h, w]
    dim, h, w = z.shape
    summed = torch.zeros(h * w, dim, dtype=torch.float64)
    for q, layer in enumerate(model.quantizer.layers):
        book, chosen = layer.embed.double(), codes[0, q * h : (q + 1) * h].reshape(-1)
        dist = torch.cdist(z.reshape(dim, -1).T - summed, book)  # [h·w, K]
        gap = dist.gather(1, chosen[:, None])[:, 0] - dist.min(dim=1).values
        # float32 search: a near-tie may round to the other codeword (5 of 1720 for the baseline)
        assert (gap == 0).float().mean().item() > 0.99 and gap.max().item() < 1e-3, q
        summed = summed + book[chosen]
    assert codes.unique().numel() > 0.25 * min(config.codebook_size, h * w)  # codes well spread
    # decoding the code map is the decoder applied to the summed codewords
    with torch.no_grad():
        by_hand = model.decode_latent(summed.T.reshape(1, dim, h, w).float())
    torch.testing.assert_close(model.decode_codes(codes), by_hand, rtol=1e-5, atol=1e-5)
    assert by_hand.shape == (1, 1, 80, 344)


def test_time_strides_set_the_time_kernels_and_default_to_the_strides():
    both = MelVQVAE(MelVQVAEConfig(strides=(2, 2), time_strides=(4, 2), **SMALL))
    convs = [m for m in both.encoder.branches[0] if isinstance(m, torch.nn.Conv2d)][:2]
    # branch kernel 4 at stride 2: (4, 8) where time strides by 4, as a stride-4 conv of the same branch
    assert [c.kernel_size for c in convs] == [(4, 8), (4, 4)] and convs[0].stride == (2, 4)
    same = MelVQVAEConfig(strides=(4, 2), time_strides=(4, 2), **SMALL)
    assert same.latent_shape == MelVQVAEConfig(strides=(4, 2), **SMALL).latent_shape == (10, 43)
    data = MelVQVAEConfig(strides=(2, 2), time_strides=(4, 2)).to_dict()
    assert MelVQVAEConfig.from_dict(data).time_strides == (4, 2)
    with pytest.raises(ValueError, match="one time stride per stride"):
        MelVQVAEConfig(strides=(2, 2), time_strides=(4,))


def test_rvq_preset_is_lees_design():
    cfg = MelVQVAEConfig.rvq()
    assert (cfg.quantizer, cfg.n_q, cfg.total_stride, cfg.latent_shape) == ("rvq", 4, 8, (10, 43))
    assert cfg.n_res_block == 1  # "3 conv2d + 1 residual block" per branch
    assert cfg.code_map_shape[0] * cfg.code_map_shape[1] == 20 * 86  # same prior length as the baseline


@pytest.mark.parametrize("config", [MelVQVAEConfig(**SMALL), MelVQVAEConfig.rvq(**SMALL)])
def test_encode_then_decode_codes_equals_the_forward_reconstruction(config):
    model = _model(config, seed=1)
    model.train()
    model(_toy_mels(2, seed=1))  # one EMA step so the codebooks are not the random init
    model.eval()
    mel = _toy_mels(2, seed=2)
    codes = model.encode(mel)
    decoded = model.decode_codes(codes)
    with torch.no_grad():
        out = model(mel)
    assert torch.equal(out.codes, codes)
    assert torch.equal(out.mel, decoded)
    out_grad = model(mel)  # with autograd the straight-through sum rounds differently
    torch.testing.assert_close(out_grad.mel, decoded, rtol=1e-5, atol=1e-5)


def test_code_map_stacks_the_levels_along_frequency():
    model = _model(MelVQVAEConfig.rvq(**SMALL), seed=3).eval()
    mel = _toy_mels(2, seed=3)
    code_map = model.encode(mel)
    levels = model.quantizer.encode(model.encode_latent(mel).flatten(2))  # [B, 4, 10 * 43]
    for i in range(4):
        assert torch.equal(code_map[:, 10 * i : 10 * (i + 1)], levels[:, i].reshape(2, 10, 43))
    assert torch.equal(model.unstack_codes(code_map), levels)
    with pytest.raises(ValueError, match="code map"):
        model.decode_codes(code_map[:, :20])


def test_vq_commitment_is_the_baselines_and_codebooks_move_only_in_training():
    model = _model(MelVQVAEConfig(**SMALL), seed=4)
    mel = _toy_mels(2, seed=4)
    embed = model.quantizer.layers[0].embed.clone()
    model.eval()
    with torch.no_grad():
        out = model(mel)
    assert torch.equal(model.quantizer.layers[0].embed, embed)
    z = model.encode_latent(mel).detach()
    quantized = model.quantizer.layers[0].decode(out.codes.flatten(1)).transpose(1, 2).reshape(z.shape)
    assert out.commit_loss.item() == pytest.approx((z - quantized).pow(2).mean().item(), rel=1e-6)
    model.train()
    model(mel)
    moved = (model.quantizer.layers[0].embed - embed).abs().amax(1)
    used = torch.unique(out.codes)
    # EMA with decay 0.99: every codeword shrinks towards its batch mean (unused ones towards 0).
    assert bool((moved[used] > 0).all())
    assert int((moved > 0).sum()) == 32


def test_resblock_equals_the_baselines_in_place_relu_block():
    torch.manual_seed(5)
    ours = ResBlock2d(16, 8)

    class InPlaceBlock(nn.Module):  # the baseline's layout: ReLU(inplace) first, then out += input
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.ReLU(inplace=True), ours.conv1, nn.ReLU(inplace=True), ours.conv2)

        def forward(self, x):
            out = self.conv(x)
            out += x
            return out

    x = torch.randn(2, 16, 6, 10, generator=torch.Generator().manual_seed(5))
    expected = InPlaceBlock()(x.clone())
    torch.testing.assert_close(ours(x), expected, rtol=0, atol=0)
    assert not torch.allclose(expected, x + ours.conv2(torch.relu(ours.conv1(torch.relu(x)))))


@pytest.mark.parametrize("config", [MelVQVAEConfig(**SMALL), MelVQVAEConfig.rvq(strides=(2, 4), **SMALL)])
def test_a_few_training_steps_reduce_the_loss(config):
    config = MelVQVAEConfig.from_dict({**config.to_dict(), "n_mels": 32, "n_frames": 64})  # fast images
    model = _model(config, seed=6).train()
    mel = _toy_mels(4, seed=6, n_mels=32, n_frames=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses, recons = [], []
    for _ in range(40):
        loss = model.loss(mel)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        losses.append(loss.total.item())
        recons.append(loss.recon.item())
    assert recons[0] > 50.0  # the untrained decoder outputs ~0 for mels around -9
    assert losses[-1] < 0.3 * losses[0]
    assert recons[-1] < 0.2 * recons[0]
    assert model.encoder.branches[0][0].weight.grad.abs().sum() > 0  # straight-through to the encoder


def test_save_and_load_round_trip(tmp_path):
    config = MelVQVAEConfig.rvq(strides=(2, 4), **SMALL)
    model = _model(config, seed=7).train()
    model(_toy_mels(2, seed=7))
    model.eval()
    model.save_pretrained(tmp_path / "vqvae")
    files = sorted(p.name for p in (tmp_path / "vqvae").iterdir())
    assert files == ["config.yaml", "model.safetensors", "provenance.json"]
    saved = yaml.safe_load((tmp_path / "vqvae" / "config.yaml").read_text())
    assert saved["kind"] == "mel_vqvae" and saved["strides"] == [2, 4]
    assert saved["quantizer"] == "rvq" and saved["n_q"] == 4
    assert "quantizer.layers.3.embed" in load_file(str(tmp_path / "vqvae" / "model.safetensors"))
    loaded = MelVQVAE.from_pretrained(tmp_path / "vqvae")
    assert loaded.config == config and not loaded.training
    mel = _toy_mels(3, seed=8)
    assert torch.equal(loaded.encode(mel), model.encode(mel))
    codes = model.encode(mel)
    with torch.no_grad():
        assert torch.equal(loaded.decode_codes(codes), model.decode_codes(codes))


def test_invalid_configurations_are_rejected():
    with pytest.raises(ValueError, match="n_q must be 1"):
        MelVQVAEConfig(n_q=4)
    with pytest.raises(ValueError, match="divisible"):
        MelVQVAEConfig.rvq(strides=(4, 4))  # 344 / 16 is not whole
    with pytest.raises(ValueError, match="quantizer"):
        MelVQVAEConfig(quantizer="fsq")
    with pytest.raises(ValueError, match="unknown"):
        MelVQVAEConfig.from_dict({"strides": [2, 2], "beta": 0.25})
    with pytest.raises(ValueError, match="expected mel"):
        MelVQVAE(MelVQVAEConfig(**SMALL))(torch.zeros(1, 1, 80, 340))


def test_vqvae_error_reports_each_rvq_level_on_its_own():
    config = MelVQVAEConfig.from_dict(
        {**MelVQVAEConfig.rvq(strides=(2, 4), n_q=2, **SMALL).to_dict(), "n_mels": 32, "n_frames": 64}
    )
    model = _model(config, seed=9).eval()
    h, w = config.latent_shape
    gen = torch.Generator().manual_seed(9)
    # level 0 uses codes {0, 1} only, level 1 codes 0-4: a pooled histogram would report 5 codes for both
    fixed = torch.cat(
        [torch.randint(0, 2, (5, h, w), generator=gen), torch.randint(0, 5, (5, h, w), generator=gen)], dim=1
    )
    mels = _toy_mels(5, seed=9, n_mels=32, n_frames=64)[:, 0]
    mels[:, 0, 0] = torch.arange(5.0)  # each clip's index, read back by the stand-in encoder
    model.encode = lambda mel: fixed[mel[:, 0, 0, 0].long()]

    report = vqvae_error(model, mels, batch_size=2)

    assert report["codes_used"] == [2, 5]
    for level, perplexity in enumerate(report["perplexity"]):
        _, counts = np.unique(fixed[:, level * h : (level + 1) * h].numpy(), return_counts=True)
        p = counts / counts.sum()
        assert perplexity == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-6)
    assert 1.0 < report["perplexity"][0] <= 2.0 < report["perplexity"][1] <= 5.0
    with torch.no_grad():
        expected = ((model.decode_codes(fixed)[:, 0] - mels) ** 2).mean()
    assert report["mse"] == pytest.approx(float(expected), rel=1e-5)
