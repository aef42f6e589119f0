"""Every Python example in the README runs (documentation that cannot rot)."""

import re
from pathlib import Path

import pytest
from reference_libs import import_reference

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_example_runs(index):
    if "encodec" in EXAMPLES[index]:
        import_reference("encodec")
    exec(compile(EXAMPLES[index], f"README example {index}", "exec"), {})
