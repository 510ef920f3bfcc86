import os

import pytest

from cl_core.durable_files import replace_atomically, write_durably


def test_replace_atomically_creates_then_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "CURRENT"
    replace_atomically(target, "a\n")
    replace_atomically(target, "b\n")
    assert target.read_text() == "b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["CURRENT"]


def test_a_failed_replace_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "LATEST"
    write_durably(target, "old\n")

    def refuse(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        replace_atomically(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["LATEST"]
