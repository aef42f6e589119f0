"""Stage 3 of the speech codec recipe: decode the test set's tokens at several n_q and score them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from funcodec_lite.codec.loading import load_model
from funcodec_lite.jobs.evaluate import evaluate_tokens, results_table


def stage_evaluate(model: Path, data: Path, tokens: Path, n_qs: Sequence[int], out: Path) -> str:
    """Decodes the token files of ``tokens`` (stage 2's) with the first n codebooks for each n of ``n_qs``
    (those above the model's are left out), scores them against the audio of ``data`` (PESQ, STOI, ESTOI,
    mel distance, SI-SNR) and writes the table to ``out`` (markdown); returns its text.

    Raises:
        TokenFileError: a token file that is corrupt or was made by another model.
    """
    codec = load_model(model)
    results = evaluate_tokens(codec, data, tokens, [n for n in n_qs if n <= codec.n_q])
    table = results_table(results, codec.bandwidth)
    text = (f"# {Path(model).parent.name}: {data}\n\n"
            f"{codec.sample_rate} Hz, {codec.frame_rate:g} frames/s, codebooks of {codec.codebook_size}.\n\n"
            f"{table}")
    Path(out).write_text(text, encoding="utf-8")
    return text
