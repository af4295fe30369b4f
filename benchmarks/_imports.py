"""Scenario 7: import time in a fresh interpreter (after a warm-up run that compiles .pyc files)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

MODULES = {
    "aiobucket": ("", "aiobucket"),
    "aioboto3": ("", "aioboto3"),
    "obstore": ("", "obstore"),
    "aiobotocore": ("", "aiobotocore.session"),
    "s3fs": ("", "s3fs"),
    "aiobucket, asyncio already imported": ("asyncio", "aiobucket"),
    "aiobucket + its S3 provider": ("", "aiobucket, aiobucket.providers.s3"),
}
"""lib -> (imported before the clock starts, what the clock times).

The last two rows are context: an asyncio app has asyncio loaded already, and
the first S3 call imports the S3 provider (and aiobotocore) on top of ``import aiobucket``.
"""

_CODE = (
    "import time, json\n"
    "{pre}\n"
    "t = time.perf_counter()\n"
    "import {mods}\n"
    "dt = time.perf_counter() - t\n"
    "rss = next(int(ln.split()[1]) for ln in open('/proc/self/status') if ln.startswith('VmHWM:')) / 1024\n"
    "print(json.dumps({{'ms': dt * 1000, 'rss': rss}}))\n"
)


def measure(lib: str) -> dict[str, Any]:
    pre, mods = MODULES[lib]
    code = _CODE.format(pre=f"import {pre}" if pre else "", mods=mods)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "import failed")
    data = json.loads(out.stdout)
    return {"value": data["ms"], "unit": "ms", "peak_mib": data["rss"]}
