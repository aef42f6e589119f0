"""Shared test settings: small models run fastest (and steadiest on a shared machine) on one thread."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Session-wide, so module-scoped fixtures (built before function fixtures) get it too."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
