"""Start and stop Azurite's blob service on loopback, without pytest.

Shared by the pytest fixture in ``servers/azurite.py`` and by ``benchmarks/run.py``.
Azurite comes from npm (``.ci/run`` installs ``azurite@3.35.0`` under ``.tools/azurite``:
3.35.0 is the last release that runs on Node 20; 3.36 declares Node >= 21).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from servers._proc import free_ports, http_status, stop, wait_until

NAME = "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key (published in Azurite's README).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "aiobucket-plain"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class AzuriteServer:
    endpoint: str
    """http://127.0.0.1:PORT (the account is the first path segment, as for any IP endpoint)."""
    container: str
    log: Path

    def settings(self, container: str | None = None, **extra: object) -> dict[str, object]:
        """A settings mapping for ``aiobucket.configure``."""
        return {
            "url": f"az://{container or self.container}?account={ACCOUNT}&endpoint={self.endpoint}",
            "account_key": ACCOUNT_KEY,
            **extra,
        }

    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.endpoint}/{ACCOUNT};"
        )


def azurite_binary() -> str | None:
    explicit = os.environ.get("AZURITE_BLOB")
    if explicit:
        return explicit
    local = REPO / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


def create_container(endpoint: str, name: str, ca: Path | None = None) -> None:
    """Made with the SDK (a dev dependency): the fixture's setup, not the code under test."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient(
        endpoint,
        credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY},
        **({"connection_verify": str(ca)} if ca else {}),
    )
    try:
        client.create_container(name)
    except ResourceExistsError:
        pass
    finally:
        client.close()


def start(
    base: Path, binary: str, *, tls: tuple[Path, Path] | None = None
) -> tuple[subprocess.Popen[bytes], AzuriteServer]:
    """Start Azurite on a free port under ``base``; stops it again if it fails to come up.

    With ``tls`` (certificate, key PEM files) it serves HTTPS and takes AAD bearer tokens
    (``--oauth basic``), which user-delegation SAS needs."""
    (port,) = free_ports(1)
    log = base / "azurite.log"
    secure = ["--oauth", "basic", "--cert", str(tls[0]), "--key", str(tls[1])] if tls else []
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "--blobHost", "127.0.0.1", "--blobPort", str(port),
                "--location", str(base / "data"),
                "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent", *secure,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        # Any HTTP answer (400 for a bare GET of the account) means it listens.
        ca = tls[0] if tls else None
        wait_until(lambda: http_status(f"{endpoint}/{ACCOUNT}?comp=list", ca=ca) != 0, proc, 60, NAME, log)
        create_container(f"{endpoint}/{ACCOUNT}", CONTAINER, ca)
    except BaseException:
        stop(proc)
        raise
    return proc, AzuriteServer(endpoint, CONTAINER, log)
