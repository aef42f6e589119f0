"""Tests for the Fréchet Audio Distance: closed-form distances, the evaluator-style VGGish and its loader."""


import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from scipy import linalg
from scipy.io import wavfile

from funcodec_lite.audio.io import AudioError, save_audio
from funcodec_lite.metrics.fad import fad_matrix, fad_per_class, frechet_distance, gaussian_stats
from funcodec_lite.metrics.vggish import (
    VGGish,
    VGGishFrontEndConfig,
    embed_wav_files,
    frame_windows,
    load_vggish_weights,
    normalize_peak,
    read_wav_for_fad,
    vggish_mel_matrix,
)

# The torchvggish (vggish-10086976.pth) layout: parameter name -> shape.
PORT_SHAPES = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}


def _spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def _trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """Tr sqrt(A B) for symmetric positive definite A, B: the eigenvalues of A^1/2 B A^1/2."""
    w, v = np.linalg.eigh(a)
    half = v @ np.diag(np.sqrt(w)) @ v.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(half @ b @ half), 0, None)).sum())


# ------------------------------------------------------------------------------------------ distance
def test_gaussian_stats_uses_the_unbiased_covariance():
    mu, sigma = gaussian_stats(np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 5.0]]))
    np.testing.assert_allclose(mu, [1.0, 3.0])
    np.testing.assert_allclose(sigma, [[1.0, 2.0], [2.0, 4.0]])  # N - 1 = 2; biased would be 2/3 of this
    assert gaussian_stats(torch.ones(4, 3))[1].shape == (3, 3)
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_stats(np.zeros((1, 3)))


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(16), _spd(rng, 16)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    mu2 = mu + rng.standard_normal(16)
    assert frechet_distance(mu, sigma, mu2, sigma) == pytest.approx(float(np.sum((mu - mu2) ** 2)), abs=1e-8)
    a, b = rng.uniform(0.1, 3.0, 16), rng.uniform(0.1, 3.0, 16)
    expected = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu - mu2) ** 2))
    assert frechet_distance(mu, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    s1, s2 = _spd(rng, 16), _spd(rng, 16)  # general case: against the symmetric eigenvalue formula
    expected = float(np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(s1, s2))
    assert frechet_distance(mu, s1, mu, s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu, s1, mu, s2) == pytest.approx(frechet_distance(mu, s2, mu, s1), rel=1e-9)


def test_singular_product_is_retried_with_a_diagonal_offset():
    real = np.array([[1, 0, -1, 1], [-1, 1, 0, 1], [0, 0, 0, 1]], dtype=float)  # rank-deficient covariances
    fake = np.array([[1, 0, -1, 0], [1, 1, 1, 1]], dtype=float)
    (mu1, s1), (mu2, s2) = gaussian_stats(real), gaussian_stats(fake)
    with np.errstate(all="ignore"), pytest.warns(linalg.LinAlgWarning):
        assert not np.isfinite(linalg.sqrtm(s1 @ s2)).all()  # the case really defeats a plain sqrtm
    with pytest.warns(RuntimeWarning, match="retrying with 1e-07"):
        fad = frechet_distance(mu1, s1, mu2, s2)
    eps = 1e-7 * np.eye(4)
    mean_term = float(np.sum((mu1 - mu2) ** 2))
    offset = mean_term + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(s1 + eps, s2 + eps)
    assert fad == pytest.approx(offset, abs=1e-9)
    exact = mean_term + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.trace(s1 @ s2))  # s1 s2 has rank 1
    assert fad == pytest.approx(exact, abs=5e-3) and np.isfinite(fad)


def test_large_imaginary_part_and_bad_shapes_raise():
    mu = np.zeros(3)
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(mu, np.eye(3), mu, -np.eye(3))  # not a covariance: sqrt(-I) = iI
    with pytest.raises(ValueError, match="need mu"):
        frechet_distance(mu, np.eye(3), np.zeros(4), np.eye(4))


def test_fad_per_class_and_class_matrix():
    rng = np.random.default_rng(1)
    centres = {"dog": 0.0, "rain": 3.0, "gun": 6.0}
    real = {c: rng.standard_normal((400, 8)) + m for c, m in centres.items()}
    gen = {c: rng.standard_normal((300, 8)) * 1.1 + m + 0.2 for c, m in centres.items()}
    per_class = fad_per_class(real, gen)
    assert list(per_class) == ["dog", "rain", "gun"]
    assert all(0.2 < v < 1.0 for v in per_class.values())  # 8 * 0.2^2 = 0.32 plus a small covariance term
    matrix = fad_matrix(real, gen)
    assert matrix.values.shape == (3, 3)
    assert matrix.get("rain", "rain") == pytest.approx(per_class["rain"], rel=1e-12)
    assert matrix.get("dog", "gun") == pytest.approx(frechet_distance(*gaussian_stats(real["gun"]),
                                                                      *gaussian_stats(gen["dog"])))
    assert matrix.get("dog", "gun") > 8 * 5.0**2  # means 6 apart (minus the 0.2 offset) in 8 dimensions
    assert matrix.matched_is_nearest() == {"dog": True, "rain": True, "gun": True}
    swapped = fad_matrix(real, {"dog": gen["rain"], "rain": gen["dog"]})
    assert swapped.matched_is_nearest() == {"dog": False, "rain": False}
    assert swapped.nearest_real() == {"dog": "rain", "rain": "dog"}
    with pytest.raises(ValueError, match="no real embeddings"):
        fad_per_class(real, {"sneeze": gen["dog"]})


# ------------------------------------------------------------------------------- evaluator front-end
def test_framing_gives_ten_windows_per_clip_and_ignores_the_last_200_samples():
    clip = torch.arange(88200, dtype=torch.float64)
    windows = frame_windows(clip)
    assert windows.shape == (10, 16000)
    assert windows[:, 0].tolist() == [8000.0 * i for i in range(10)]
    assert windows[-1, -1].item() == 87999.0  # samples 88000..88199 are never used
    assert frame_windows(torch.zeros(2, 16000)).shape == (2, 1, 16000)
    with pytest.raises(ValueError, match="at least 16000"):
        frame_windows(torch.zeros(15999))


def test_peak_normalisation_uses_the_positive_peak_with_a_floor_of_0_1():
    x = torch.tensor([[0.2, -0.8, 0.4], [0.01, -0.02, 0.005]])
    out = normalize_peak(x)
    torch.testing.assert_close(out[0], torch.tensor([0.5, -2.0, 1.0]))  # divided by 0.4, not by 0.8
    torch.testing.assert_close(out[1], x[1] * 10)  # a quiet clip is boosted at most 10x
    assert normalize_peak(torch.zeros(1, 4)).abs().sum().item() == 0.0


def _reference_log_mel(window: np.ndarray) -> np.ndarray:
    """Direct numpy statement of the evaluator's log-mel (loops, no shared code with the module)."""
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([window[s:s + 400] * hann for s in range(0, 16000 - 400 + 1, 160)])
    assert frames.shape[0] == 98
    spec = np.abs(np.fft.rfft(frames, 512))
    hz = np.arange(257) * 8000.0 / 256

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    fb = np.zeros((257, 64))
    for band in range(64):
        lo, mid, hi = edges[band:band + 3]
        for k in range(1, 257):
            m = mel(hz[k])
            fb[k, band] = max(0.0, min((m - lo) / (mid - lo), (hi - m) / (hi - mid)))
    return np.log(spec @ fb + 0.01)[:96]


def test_front_end_matches_a_direct_statement_of_the_evaluator():
    rng = np.random.default_rng(2)
    t = np.arange(16000) / 16000
    window = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(16000)
    model = VGGish()
    examples = model.front_end(torch.from_numpy(window)[None])
    assert examples.shape == (1, 96, 64) and examples.dtype == torch.float32
    np.testing.assert_allclose(examples[0].numpy(), _reference_log_mel(window), atol=1e-5)
    fb = vggish_mel_matrix(VGGishFrontEndConfig())
    assert fb.shape == (257, 64) and fb[0].abs().sum() == 0 and (fb.amax(0) > 0.3).all()


# ------------------------------------------------------------------------------------- model + loader
@pytest.fixture(scope="module")
def vggish():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return VGGish().eval()


def test_state_dict_has_the_torchvggish_layout(vggish):
    assert {k: tuple(v.shape) for k, v in vggish.state_dict().items()} == PORT_SHAPES


def test_loader_round_trips_pth_and_safetensors(vggish, tmp_path):
    state = vggish.state_dict()
    torch.save({**state, "pproc.pca_matrix": torch.eye(128)}, tmp_path / "vggish.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "vggish.safetensors"))
    examples = torch.randn(3, 96, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = vggish(examples)
        for name in ("vggish.pth", "vggish.safetensors"):
            loaded = load_vggish_weights(tmp_path / name)
            assert not loaded.training
            torch.testing.assert_close(loaded(examples), expected, rtol=0, atol=0)
    assert expected.shape == (3, 128) and (expected < 0).any()  # pre-activation: no final ReLU


def test_loader_rejects_wrong_keys_shapes_and_pickled_objects(tmp_path):
    state = {k: torch.zeros(shape) for k, shape in PORT_SHAPES.items() if not k.startswith("embeddings.0")}
    state["embeddings.0.weight"] = torch.zeros(1)  # the one big tensor: keep the files small
    state["embeddings.0.bias"] = torch.zeros(4096)
    torch.save({k: v for k, v in state.items() if k != "embeddings.4.bias"}, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing keys \['embeddings.4.bias'\], unexpected keys \[\]"):
        load_vggish_weights(tmp_path / "missing.pth")
    torch.save({**state, "features.15.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"missing keys \[\], unexpected keys \['features.15.weight'\]"):
        load_vggish_weights(tmp_path / "extra.pth")
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"shape: embeddings.0.weight: \(1,\) \(want \(4096, 12288\)\)$"):
        load_vggish_weights(tmp_path / "shape.pth")
    torch.save({"model": state}, tmp_path / "nested.pth")
    with pytest.raises(ValueError, match="expected a state dict of tensors"):
        load_vggish_weights(tmp_path / "nested.pth")
    torch.save({"features.0.bias": torch.zeros(64), "hook": pytest.approx(1.0)}, tmp_path / "object.pth")
    with pytest.raises(ValueError, match="object.pth: holds objects that are not loaded for safety"):
        load_vggish_weights(tmp_path / "object.pth")


def test_clip_embedding_follows_the_evaluator(vggish, tmp_path):
    rng = np.random.default_rng(4)
    clip = torch.from_numpy(0.3 * rng.standard_normal(88200))
    emb = vggish.embed_clips(clip[None], batch_windows=4)
    assert emb.shape == (1, 10, 128)
    windows = normalize_peak(clip)[:16000 + 8000 * 9].unfold(0, 16000, 8000)
    with torch.no_grad():
        torch.testing.assert_close(emb[0], vggish(vggish.front_end(windows)))
    torch.testing.assert_close(vggish.clip_windows(clip), windows, rtol=0, atol=0)
    changed = clip.clone()
    changed[-200:] = 0.0  # below the peak and outside every window
    torch.testing.assert_close(vggish.clip_windows(changed), windows, rtol=0, atol=0)
    torch.testing.assert_close(vggish.clip_windows(32768 * clip), windows)  # the scale does not matter


@pytest.mark.filterwarnings("ignore:Chunk \\(non-data\\) not understood")  # a float file's PEAK chunk
def test_wav_files_are_read_like_scipy_and_embedded_in_order(vggish, tmp_path):
    rng = np.random.default_rng(5)
    clips = [torch.from_numpy(rng.uniform(-0.5, 0.5, 24000)).float() for _ in range(2)]
    for i, clip in enumerate(clips):
        save_audio(tmp_path / f"{i}.wav", clip, 22050)
    # the evaluator's reader: scipy.io.wavfile.read, the rate ignored (22,050 Hz is not resampled)
    for subtype in ("PCM_16", "PCM_24", "FLOAT"):
        save_audio(tmp_path / f"{subtype}.wav", 0.05 * clips[0], 22050, subtype=subtype)  # quiet: below 0.1
        rate, raw = wavfile.read(tmp_path / f"{subtype}.wav")
        samples = read_wav_for_fad(tmp_path / f"{subtype}.wav")
        assert rate == 22050 and samples.shape == (24000,) and samples.dtype == torch.float64
        np.testing.assert_array_equal(samples.numpy(), raw.astype(np.float64))
    assert read_wav_for_fad(tmp_path / "PCM_16.wav").abs().max().item() > 800  # raw int16 values
    files = embed_wav_files(vggish, [tmp_path / "1.wav", tmp_path / "0.wav"])
    assert files.shape == (4, 128) and files.dtype == np.float64  # 2 windows per 24,000-sample file
    first = vggish.embed_clips(torch.from_numpy(wavfile.read(tmp_path / "1.wav")[1].astype(np.float64))[None])
    np.testing.assert_allclose(files[:2], first[0].double().numpy(), rtol=1e-5, atol=1e-6)
    save_audio(tmp_path / "stereo.wav", torch.stack(clips), 22050)
    with pytest.raises(AudioError, match="expected mono"):
        read_wav_for_fad(tmp_path / "stereo.wav")
    with pytest.raises(AudioError, match="no such file"):
        embed_wav_files(vggish, [tmp_path / "missing.wav"])
