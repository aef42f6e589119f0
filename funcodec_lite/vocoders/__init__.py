"""Mel-spectrogram to waveform vocoders: HiFi-GAN, WaveNet, WaveGlow, FloWaveNet, a distilled flow student and
Griffin-Lim. Each maps log-mels [B, num_mels, F] to audio [B, 1, F · hop] with ``synthesize(mel, temperature,
generator)`` and is saved as a model directory of its own kind."""

VOCODER_KINDS = ("hifigan", "wavenet", "waveglow", "flowavenet", "student", "griffinlim")  # model-dir kinds
