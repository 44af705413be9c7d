"""The progress line (wheelhouse/progress.py): only on a terminal or when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
from downloadtools import downloader
from indexserver import IndexServer
from wheelmaker import make_wheel

pytestmark = pytest.mark.usefixtures("download_env")


def test_progress_only_when_asked_or_on_a_tty(
    index_server: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheels = [make_wheel(index_server.root, f"pkg{i}", "1.0") for i in range(3)]
    arts = [index_server.artifact(w) for w in wheels]
    with downloader(tmp_path / "c1", progress=None) as dl:
        dl.get_many(arts)
    assert capsys.readouterr().err == ""  # stderr is not a TTY under pytest
    with downloader(tmp_path / "c2", progress=True) as dl:
        dl.get_many(arts)
    err = capsys.readouterr().err
    assert "3/3 files" in err and err.endswith("\n")
