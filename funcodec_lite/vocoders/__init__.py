"""Mel-spectrogram to waveform vocoders: HiFi-GAN, WaveNet, WaveGlow, FloWaveNet, a distilled flow student and
Griffin-Lim. Each maps log-mels [B, num_mels, F] to audio [B, 1, F · hop] with ``synthesize(mel, temperature,
generator)`` and is saved as a model directory of its own kind."""

# model-dir kind -> (module, class), imported on first use (`vocoders.training.vocoder_class`)
VOCODERS: dict[str, tuple[str, str]] = {
    "hifigan": ("funcodec_lite.vocoders.hifigan", "HiFiGANGenerator"),
    "wavenet": ("funcodec_lite.vocoders.wavenet", "WaveNetVocoder"),
    "waveglow": ("funcodec_lite.vocoders.waveglow", "WaveGlow"),
    "flowavenet": ("funcodec_lite.vocoders.flowavenet", "FloWaveNet"),
    "student": ("funcodec_lite.vocoders.student", "StudentVocoder"),
    "griffinlim": ("funcodec_lite.vocoders.griffinlim", "GriffinLimVocoder"),
}
VOCODER_KINDS = tuple(VOCODERS)
