"""Codec families converted from released checkpoints (DAC, Mimi, SNAC, ...), each a ``CompressionModel``."""
