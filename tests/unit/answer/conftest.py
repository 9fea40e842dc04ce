"""The rendered answer file the validator and CLI tests break one thing in."""

from __future__ import annotations

import pytest

from winarm.answer.render import render
from winarm.answer.settings import AnswerSettings


@pytest.fixture(scope="module")
def base() -> str:
    """Windows 11 (with its LabConfig bypasses), drivers in specialize: every optional part present."""
    return render(AnswerSettings())
