"""The one training engine (`engine.py`), its loop config (`engine_config.py`), checkpoints and logging."""
