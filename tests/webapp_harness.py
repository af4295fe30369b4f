"""Run an example web app as a real server process, and look at it from outside.

The server is ``python examples/<app>.py --port 0`` (the same command a reader
runs), with its bucket configured through AIOBUCKET_CONFIG to a ``file://``
directory the test can inspect: the object index, the in-progress ``tmp/``
files, and which of the server's file descriptors point into the bucket.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PART_SIZE = 8 * 1024 * 1024
_LISTENING = re.compile(r"running on http://127\.0\.0\.1:(\d+)", re.IGNORECASE)


async def eventually(condition: Callable[[], bool], what: str, attempts: int = 600) -> None:
    """Wait for ``condition`` by polling a bounded number of times (never by the clock)."""
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


class AppServer:
    """``examples/<app>.py`` serving the profile-pictures bucket from ``root``."""

    def __init__(self, app: str, workdir: Path) -> None:
        self.app = app
        self.root = workdir / "store"
        self.log_path = workdir / f"{app}.log"
        config = workdir / "aiobucket.toml"
        config.write_text(
            f'[buckets.profile-pictures]\nurl = "{self.root.as_uri()}"\npart_size = {PART_SIZE}\n'
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "AIOBUCKET_CONFIG": str(config),
            "PYTHONUNBUFFERED": "1",
        }
        if "PYTHONPATH" in os.environ:  # a worktree's sources ahead of the installed package
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-W", "always::ResourceWarning", str(EXAMPLES / f"{app}.py"), "--port", "0"],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.port = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self) -> None:
        for _ in range(1200):  # bounded: the server prints its URL once it listens
            if m := _LISTENING.search(self.log()):
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.app} did not start (exit {self.proc.poll()}):\n{self.log()}")

    def url(self, user_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/profile-picture/{user_id}"

    def stop(self) -> int:
        """SIGTERM (a graceful shutdown, which runs the app's cleanup), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    # -- looking from outside ------------------------------------------------

    def vm_hwm(self) -> int:
        """The server's peak resident set size so far, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc status")

    def open_files_under(self, path: Path) -> list[str]:
        """Files under ``path`` the server process holds open."""
        found = []
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(fd_dir / fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith(str(path) + os.sep):
                found.append(target)
        return found

    def tmp_files(self) -> list[str]:
        tmp = self.root / "tmp"
        return sorted(os.listdir(tmp)) if tmp.exists() else []

    def blob_files(self) -> list[str]:
        blobs = self.root / "blobs"
        return sorted(str(p.relative_to(blobs)) for p in blobs.rglob("*") if p.is_file())
