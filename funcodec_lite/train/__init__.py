"""Training: checkpoints, the accelerate-based GAN trainer, validation."""
