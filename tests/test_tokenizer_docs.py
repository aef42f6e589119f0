"""Every Python example in docs/tokenizer.md runs (against a tiny model standing in for the default one)."""

import re
from pathlib import Path

import pytest
from tiny_models import save_codec, tiny_config

from funcodec_lite.codec.loading import DEFAULT_MODEL_ENV

DOC = Path(__file__).resolve().parents[1] / "docs" / "tokenizer.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def default_model(tmp_path_factory):
    return save_codec(tmp_path_factory.mktemp("default") / "model", tiny_config(sample_rate=16000))


def test_doc_has_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_doc_example_runs(index, default_model, monkeypatch, capsys):
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(default_model))
    exec(compile(EXAMPLES[index], f"docs/tokenizer.md example {index}", "exec"), {"__name__": "doc_example"})
    capsys.readouterr()
