"""Speaker similarity: cosine of Resemblyzer d-vectors (the GE2E voice encoder shipped in `resemblyzer`).

The encoder is resemblyzer's 3-layer LSTM; its weights are read from the package's ``pretrained.pt`` with
``torch.load(weights_only=True)`` (tensors only, nothing unpickled) into a module of our own. An utterance is
embedded exactly as ``VoiceEncoder().embed_utterance(preprocess_wav(wav))`` does it (volume normalised to
-30 dBFS, long silences cut by WebRTC VAD, 1.6 s partials at 1.3 per second, the L2-normed mean of their
embeddings), except that the partials of several utterances share one LSTM batch.
"""

from __future__ import annotations

import importlib.metadata
import math
import sys
import types
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..audio.io import resample
from ..utils.torch_files import read_torch_file, state_dict_in
from .extras import require

SPEAKER_RATE = 16000
N_MELS, HIDDEN, EMBEDDING, LAYERS = 40, 256, 256, 3


def import_resemblyzer() -> types.ModuleType:
    """Imports `resemblyzer`; its dependency `webrtcvad` 2.0.10 reads its own version through
    ``pkg_resources``, which setuptools no longer ships, so a stand-in answering that one question is
    present during the import only (a real ``pkg_resources`` is used where there is one).

    Raises:
        MissingExtraError: `resemblyzer` (or `librosa`, `webrtcvad`) is not installed.
    """
    if sys.modules.get("resemblyzer") is not None:
        return sys.modules["resemblyzer"]
    stand_in = None
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            stand_in = types.ModuleType("pkg_resources")
            stand_in.get_distribution = lambda name: types.SimpleNamespace(  # type: ignore[attr-defined]
                version=importlib.metadata.version(name))
            sys.modules["pkg_resources"] = stand_in
    try:
        with warnings.catch_warnings():  # it imports scipy.ndimage.morphology, a deprecated namespace
            warnings.simplefilter("ignore", DeprecationWarning)
            return require("speaker similarity", ["resemblyzer"])[0]
    finally:
        if stand_in is not None and sys.modules.get("pkg_resources") is stand_in:
            del sys.modules["pkg_resources"]


class SpeakerEncoder(nn.Module):
    """Resemblyzer's voice encoder: LSTM over 40-band mel frames, linear, ReLU, L2 norm.

    Args:
        state: the ``lstm.*`` and ``linear.*`` tensors of resemblyzer's checkpoint (random weights if None).
    """

    def __init__(self, state: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, EMBEDDING)
        if state is not None:
            self.load_state_dict(state, strict=True)
        self.eval()

    @classmethod
    def from_resemblyzer(cls, weights: str | Path | None = None) -> SpeakerEncoder:
        """The encoder with the weights shipped in `resemblyzer` (or a checkpoint of the same layout).

        Raises:
            MissingExtraError: `resemblyzer` is not installed.
        """
        if weights is None:
            weights = Path(import_resemblyzer().__file__).parent / "pretrained.pt"
        state = state_dict_in(read_torch_file(weights), ("model_state",), weights)
        return cls({k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))})

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Embeddings of partial utterances.

        Args:
            mels (torch.Tensor): mel spectrograms of shape [B, frames, 40].

        Returns:
            torch.Tensor: L2-normed, non-negative embeddings of shape [B, 256].
        """
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True)


class SpeakerSimilarity:
    """Utterance embeddings and their cosine similarity; the encoder is loaded once and reused.

    Args:
        batch_partials: at most this many 1.6 s partials per LSTM call.

    Raises:
        MissingExtraError: `resemblyzer` is not installed.
    """

    def __init__(self, batch_partials: int = 64) -> None:
        self.resemblyzer = import_resemblyzer()
        self.encoder = SpeakerEncoder.from_resemblyzer()
        self.batch_partials = max(1, batch_partials)

    def _partials(self, wav: np.ndarray) -> np.ndarray:
        """Mel spectrograms of the partials of one preprocessed utterance: [P, 160, 40]."""
        voice_encoder = self.resemblyzer.VoiceEncoder
        wav_slices, mel_slices = voice_encoder.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
        if wav_slices[-1].stop >= len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)), "constant")
        mel = self.resemblyzer.wav_to_mel_spectrogram(wav)
        return np.array([mel[s] for s in mel_slices])

    def embed_many(self, wavs: Sequence[torch.Tensor | np.ndarray], sample_rate: int,
                   preprocess: bool = True) -> np.ndarray:
        """Utterance embeddings.

        Args:
            wavs: utterances of shape [T] at ``sample_rate`` (resampled to 16 kHz here).
            sample_rate: rate of every utterance in Hz.
            preprocess: apply resemblyzer's ``preprocess_wav`` (volume and silence) first, as its docs do.

        Returns:
            np.ndarray: float32 embeddings of shape [N, 256]; a row of NaN for a silent, empty or non-finite
            utterance (or one in which no voice is left to embed).
        """
        partials, usable = [], []
        for wav in wavs:
            x = torch.as_tensor(wav).detach().to("cpu", torch.float32).reshape(-1)
            ok = x.numel() > 0 and bool(torch.isfinite(x).all()) and bool(x.abs().max() > 1e-6)
            if ok and sample_rate != SPEAKER_RATE:
                x = resample(x, sample_rate, SPEAKER_RATE)
            clip = x.numpy()
            if ok and preprocess:
                clip = self.resemblyzer.preprocess_wav(clip)
                ok = clip.size > 0
            partials.append(self._partials(clip) if ok else np.zeros((0, 160, N_MELS), np.float32))
            usable.append(ok)
        stacked = torch.from_numpy(np.concatenate(partials)) if partials else torch.zeros(0, 160, N_MELS)
        with torch.no_grad():
            chunks = [self.encoder(stacked[i:i + self.batch_partials]).numpy()
                      for i in range(0, len(stacked), self.batch_partials)]
        embedded = np.concatenate(chunks) if chunks else np.zeros((0, EMBEDDING), np.float32)
        out = np.full((len(partials), EMBEDDING), np.nan, np.float32)
        start = 0
        for i, p in enumerate(partials):
            if usable[i]:
                raw = embedded[start:start + len(p)].mean(axis=0)
                out[i] = raw / np.linalg.norm(raw, 2)
            start += len(p)
        return out

    def similarity_many(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
                        sample_rate: int) -> list[float]:
        """Cosine similarity of each (reference, hypothesis) pair's embeddings (1: same voice print).

        Args:
            pairs: (ref [T], hyp [T]) utterances at ``sample_rate``.
            sample_rate: their rate in Hz.

        Returns:
            One similarity in [0, 1] per pair (the embeddings are non-negative); NaN where either side has
            no embedding.
        """
        embeddings = self.embed_many([w for pair in pairs for w in pair], sample_rate)
        scores = []
        for ref, hyp in zip(embeddings[0::2], embeddings[1::2]):
            value = float(np.dot(ref.astype(np.float64), hyp.astype(np.float64)))
            scores.append(value if math.isfinite(value) else math.nan)
        return scores

    def similarity(self, ref: torch.Tensor, hyp: torch.Tensor, sample_rate: int) -> float:
        """Cosine similarity of two utterances' embeddings.

        Args:
            ref (torch.Tensor): reference of shape [T].
            hyp (torch.Tensor): hypothesis of shape [T] (any length).
            sample_rate: rate of both in Hz.
        """
        return self.similarity_many([(ref, hyp)], sample_rate)[0]
