"""LAC, the codec of VampNet's release (github.com/hugofloresgarcia/lac), as a ``CompressionModel``.

LAC is a fork of DAC: DAC's encoder (Snake activations, dilated residual units, weight-normalised strided
convs) and its factorized, L2-normalised residual VQ, with a HiFi-GAN-style decoder: transposed convs
followed by multi-receptive-field blocks (``funcodec_lite.modules.lac_blocks``). The family reuses the
`DAC` model's encoder, quantizer, ``encode`` and ``decode`` and swaps the decoder; ``encode`` gives the
codes of LAC's ``preprocess`` + ``encode`` exactly and ``decode`` the audio of
``quantizer.from_codes`` + ``decode`` (VampNet's path). Built from a release file by
``funcodec_lite.convert.lac``.

LAC's defaults: 44.1 kHz, ``encoder_dim`` 64, encoder rates (2, 4, 8, 8) (hop 512, 86.13 frames/s),
``decoder_dim`` 512 (1536 in the repository's training config), decoder rates (4, 4, 4, 2, 2, 2), codebooks of
1024 entries in 8 dimensions; VampNet's models read 14 of its codebooks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from funcodec_lite.codec.families.dac import DAC, DACConfig
from funcodec_lite.modules.lac_blocks import LACDecoder


@dataclass
class LACConfig(DACConfig):
    """The architecture of a LAC model (the keyword arguments of LAC's ``LAC`` class, same names).

    As `DACConfig`, with LAC's defaults. LAC has no ``latent_dim``: the latent has ``encoder_dim ·
    2^len(encoder_rates)`` channels. The encoder rates must be even (LAC pads its strided convs by ⌊r/2⌋
    where DAC pads ⌈r/2⌉; the same for an even r) and multiply to the decoder rates' product (LAC pads the
    input to a multiple of the latter and encodes it with the former).
    """

    decoder_dim: int = 512
    decoder_rates: tuple[int, ...] = (4, 4, 4, 2, 2, 2)

    def __post_init__(self) -> None:
        super().__post_init__()
        latent = self.encoder_dim * 2 ** len(self.encoder_rates)
        if self.latent_dim != latent:
            raise ValueError(f"LAC config: latent_dim {self.latent_dim} (LAC's latent has encoder_dim x "
                             f"2^{len(self.encoder_rates)} = {latent} channels)")
        odd = [r for r in self.encoder_rates if r % 2]
        if odd:
            raise ValueError(f"LAC config: encoder rate {odd[0]} is odd (only even encoder rates are "
                             "supported)")
        if math.prod(self.encoder_rates) != math.prod(self.decoder_rates):
            raise ValueError(f"LAC config: encoder_rates {list(self.encoder_rates)} and decoder_rates "
                             f"{list(self.decoder_rates)} give different hops")


class LAC(DAC):
    """LAC: DAC's encoder and factorized RVQ with LAC's MRF decoder, behind the codec interface.

    Shapes: ``encode`` wav [B, 1, T] → codes long [B, K, ceil(T / hop)] (the input zero-padded on the right
    to whole frames, as LAC's ``preprocess``); ``decode`` codes [B, K, N] (1 ≤ K ≤ n_q) → wav [B, 1, length]
    (default N · hop).
    """

    model_kind = "lac"
    config_class = LACConfig

    def __init__(self, config: LACConfig | None = None) -> None:
        super().__init__(config or LACConfig())

    def _build_decoder(self) -> nn.Module:
        c = self.config
        return LACDecoder(c.latent_dim, c.decoder_dim, c.decoder_rates, c.weight_norm)
