"""The README's first command: the quickstart runs on the default local backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def test_quickstart_runs_on_the_default_local_backend(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", str(QUICKSTART)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "uploaded  users/42.jpg: 300000 bytes, image/jpeg" in out
    assert "listed    users/42.jpg (300000 bytes)" in out
    assert "downloaded 300000 bytes; first bytes 00010203" in out
    assert "metadata={'user': '42'} exists=True" in out
    assert "again: ObjectNotFound" in out
    # It really used the local default: the bucket's directory exists under the cwd.
    assert (tmp_path / ".aiobucket" / "profile-pictures" / "index.sqlite3").exists()
