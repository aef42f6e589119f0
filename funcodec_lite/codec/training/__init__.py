"""The codec's training task on the engine: its YAML config, the GAN task, validation, fine-tuning."""
