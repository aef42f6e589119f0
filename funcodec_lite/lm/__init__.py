"""Priors over codec tokens: a class-conditional PixelSNAIL over 2-D code maps and its samplers."""

from .examples import ExampleSet, build_tts_examples, choose_prompts
from .multiscale import MultiScaleConfig, MultiScaleLM, generate_multiscale
from .patterns import Pattern, Stage, make_pattern
from .pixelsnail import PixelSNAIL, PixelSNAILConfig, PriorLoss
from .pixelsnail_layers import StepCache
from .pixelsnail_sampling import incremental_logits, sample_incremental, sample_naive
from .sequence import TaskBatch, TaskExample, TaskVocabulary, collate_examples

__all__ = [
    "PixelSNAIL",
    "PixelSNAILConfig",
    "PriorLoss",
    "StepCache",
    "incremental_logits",
    "sample_incremental",
    "sample_naive",
    "Pattern",
    "Stage",
    "make_pattern",
    "MultiScaleConfig",
    "MultiScaleLM",
    "generate_multiscale",
    "ExampleSet",
    "build_tts_examples",
    "choose_prompts",
    "TaskBatch",
    "TaskExample",
    "TaskVocabulary",
    "collate_examples",
]
