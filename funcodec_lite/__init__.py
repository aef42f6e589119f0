"""funcodec_lite: neural audio codecs (SEANet, FreqCodec) with residual vector quantisation."""

import importlib
import os

import torch
from torch import nn

from funcodec_lite.codec import Codec, CodecConfig, CodecOutput, list_presets
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.kinds import CODEC_KINDS, CodecKindError, codec_class
from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.utils import weights
from funcodec_lite.utils.config import ConfigError
from funcodec_lite.vocoders import VOCODERS

__version__ = "0.1.0"
__all__ = ["Codec", "CodecConfig", "CodecOutput", "CompressionModel", "ConfigError", "MODEL_KINDS",
           "list_presets", "load_model_dir", "model_class", "Tokenizer", "__version__"]

# Every model kind of the toolkit -> the module that defines its class. The entry point sits above every
# model package, so it may name them; the model-directory format (`funcodec_lite.utils.weights`) names none.
# The codec kinds (our Codec and the converted families) come from the codec layer's registry; a family
# whose module is not in this installation is skipped until a directory of its kind is loaded.
MODEL_KINDS: dict[str, str] = {
    **CODEC_KINDS,
    "codec_lm": "funcodec_lite.lm.codec_lm",
    "nar_lm": "funcodec_lite.lm.nar",
    "multiscale_lm": "funcodec_lite.lm.multiscale",
    "masked_lm": "funcodec_lite.lm.masked",
    "vampnet_lm": "funcodec_lite.lm.vampnet",
    "pixelsnail": "funcodec_lite.lm.pixelsnail",
    "mel_vqvae": "funcodec_lite.foley.vqvae",
    "foley_classifier": "funcodec_lite.foley.classifier",
    "foley_generator": "funcodec_lite.foley.generator",
    **{kind: module for kind, (module, _) in VOCODERS.items()},
}


def model_class(kind: str) -> type:
    """The model class of any kind of `MODEL_KINDS` (every kind's module is imported: a model such as the
    Foley generator nests models of other kinds)."""
    if kind not in MODEL_KINDS and kind not in CODEC_KINDS:
        raise weights.ModelDirError(f"unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    if kind in CODEC_KINDS:
        codec_class(kind)  # one line when the family is not installed or fails to import
    for name, module in {**MODEL_KINDS, **CODEC_KINDS}.items():
        if name not in CODEC_KINDS:
            importlib.import_module(module)
        elif name != kind:
            try:
                codec_class(name)
            except CodecKindError:  # another codec family, absent here: no model nests one
                continue
    return weights.model_class(kind)


def load_model_dir(directory: str | os.PathLike, kind: str | None = None,
                   map_location: str | torch.device = "cpu") -> nn.Module:
    """The model saved in ``directory``, of whatever kind it holds, in eval mode, weights loaded strictly.

    Args:
        directory: a model directory (``config.yaml`` with its ``kind``, ``model.safetensors``).
        kind: the kind expected (None: whatever it holds).
        map_location: the device of the weights.

    Raises:
        ModelDirError: missing or corrupt files, an unknown kind, a directory of another kind, or weights that
            do not fit the config; the message is one line that names the directory.
    """
    found, _ = weights.read_model_config(directory)
    model_class(found)  # imports every kind
    return weights.load_model_dir(directory, kind, map_location)
