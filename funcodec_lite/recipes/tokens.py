"""The token stage of the speech-codec and TTS recipes: data dirs through the dataset tokenization job.

Both recipes call `stage_tokens`, which runs `funcodec_lite.jobs.tokenize.tokenize_scp` (the job behind
``codec tokenize``) on each data dir's ``wav.scp`` in this one process, with its rule for existing token
files: a file of this model is kept (a rerun resumes), a file of another model is redone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from funcodec_lite.codec.loading import load_model, model_id
from funcodec_lite.jobs.tokenize import Shard, TokenizeSummary, tokenize_scp


def stage_tokens(model: str | Path, targets: Sequence[tuple[Path, Path]], n_q: int | None = None,
                 device: str = "cpu") -> list[TokenizeSummary]:
    """Writes ``out/<utt>.npz`` for every utterance of each ``(data dir, out dir)`` pair.

    Args:
        model: codec model directory ("default": the shipped model).
        targets: ``(data dir, token dir)`` pairs; ``data dir/wav.scp`` is read.
        n_q: codebooks to keep (None: all of the model's).
        device: where the codec runs.

    Returns:
        one summary per pair; one line per pair is printed.

    Raises:
        ValueError: ``n_q`` outside 1..the model's codebooks (checked before any audio is read), or a
            model directory that cannot be loaded.
    """
    codec = load_model(model, device=device)
    if n_q is not None and not 1 <= n_q <= codec.n_q:
        raise ValueError(f"--n-q must be in 1..{codec.n_q}, got {n_q}")
    print(f"tokenize: model {model_id(codec)}: {n_q or codec.n_q} codebooks of {codec.codebook_size} at "
          f"{codec.frame_rate:g} frames/s")
    summaries = []
    for data, out in targets:
        summary = tokenize_scp(codec, Path(data) / "wav.scp", out, n_q=n_q, shard=Shard(0, 1), progress=False)
        print(f"tokenize: {out}: {summary.ok} written ({summary.redone} redone), {summary.skipped} kept, "
              f"{len(summary.failed)} failed; log {summary.log}")
        summaries.append(summary)
    return summaries
