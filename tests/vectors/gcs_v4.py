"""Google's V4 signing vectors (``gcs/v4_signatures.json``) as inputs to our signer.

A vector names its URL the way Google's clients choose it (path style on
``storage.{universe}``, a client endpoint, an emulator, a bucket-bound hostname or
virtual-hosted style); :func:`url_case` turns that into the base URL and path our
``v4_request`` takes, and :func:`policy_case` a POST policy into ``policy_document``'s
arguments. What is compared is all Google's: canonical request, string to sign, URL,
policy text and signature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiobucket.providers.gcs._sign import object_path

HERE = Path(__file__).parent / "gcs"
DATA: dict[str, Any] = json.loads((HERE / "v4_signatures.json").read_text())
ACCOUNT: dict[str, str] = json.loads((HERE / "test_service_account.not-a-test.json").read_text())


def when(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class UrlCase:
    vector: dict[str, Any]
    base_url: str
    path: str

    @property
    def id(self) -> str:
        return str(self.vector["description"])


def url_case(t: dict[str, Any]) -> UrlCase:
    scheme = t.get("scheme", "https")
    host = f"storage.{t.get('universeDomain', 'googleapis.com')}"
    base = f"{scheme}://{host}"
    if "emulatorHostname" in t:
        base = t["emulatorHostname"]
    if "clientEndpoint" in t:
        ep = t["clientEndpoint"]
        base = ep if "://" in ep else f"{scheme}://{ep}"
    if "hostname" in t:
        base = f"{scheme}://{t['hostname']}"
    obj = t.get("object")
    style = t.get("urlStyle")
    if style == "VIRTUAL_HOSTED_STYLE":
        base, path = f"{scheme}://{t['bucket']}.{host}", "/" + quote(obj or "", safe="/~")
    elif style == "BUCKET_BOUND_HOSTNAME":
        base, path = f"{scheme}://{t['bucketBoundHostname']}", "/" + quote(obj or "", safe="/~")
    else:
        path = object_path(t["bucket"], obj)
    return UrlCase(t, base, path)


URL_CASES = [url_case(t) for t in DATA["signingV4Tests"]]


@dataclass(frozen=True)
class PolicyCase:
    vector: dict[str, Any]
    bucket: str
    key: str
    fields: dict[str, str]
    conditions: list[Any]

    @property
    def id(self) -> str:
        return str(self.vector["description"])


def policy_case(t: dict[str, Any]) -> PolicyCase:
    i = t["policyInput"]
    conditions: list[Any] = []
    c = i.get("conditions") or {}
    if "startsWith" in c:
        conditions.append(["starts-with", *c["startsWith"]])
    if "contentLengthRange" in c:
        conditions.append(["content-length-range", *c["contentLengthRange"]])
    return PolicyCase(t, i["bucket"], i["object"], dict(i.get("fields") or {}), conditions)


POLICY_CASES = [policy_case(t) for t in DATA["postPolicyV4Tests"]]
