"""Mel-spectrogram to waveform vocoders (HiFi-GAN)."""
