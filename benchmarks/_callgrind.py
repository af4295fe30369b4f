"""What the instruction-count scripts share (``gcs_read_instructions.py``,
``azure_instructions.py``): a canned server run from the script in its own process, and
callgrind's instruction total for one client run of the script.

Only the client process is counted, in user space (the kernel's share of a socket call is
not); ``PYTHONHASHSEED`` is fixed so that two runs differ by their operations alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def instructions(script: str, args: list[str], src: str | None) -> int:
    """Instructions of ``python script *args`` under callgrind (its total), with ``src`` first
    on the path if given."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if src:
        env["PYTHONPATH"] = src
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, script, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total in: {out.stderr[-500:]}")
    return int(found.group(1))


@contextmanager
def canned_server(script: str, probe_path: str, what: str) -> Iterator[str]:
    """``python script --serve PORT`` on a free loopback port until the block ends; yields its
    root URL once ``probe_path`` answers 200."""
    from servers._proc import free_ports, http_status, wait_until

    (port,) = free_ports(1)
    root = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="canned-")) / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, script, "--serve", str(port)], stdout=out, stderr=out, stdin=subprocess.DEVNULL
        )
    try:
        wait_until(lambda: http_status(root + probe_path) == 200, server, 30, what, log)
        yield root
    finally:
        server.terminate()
        server.wait(10)
