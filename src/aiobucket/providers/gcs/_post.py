"""GCS browser upload forms: a V4 POST policy (GOOG4-RSA-SHA256), signed by a ``Signer``.

https://cloud.google.com/storage/docs/authentication/signatures#policy-document

The policy document is ``{"conditions": [...], "expiration": "...Z"}``, serialised
compactly with non-ASCII escaped (as Google's own client libraries do), then
base64-encoded; the signature is RSA-SHA256 over that base64 text, in hex. The
conditions come in the order Google's conformance vectors use: our own
conditions (``content-length-range``, a ``starts-with`` on ``$Content-Type``),
then one ``{field: value}`` per pre-filled field, sorted by name, then
``bucket``, ``key``, ``x-goog-date``, ``x-goog-credential``, ``x-goog-algorithm``.

GCS refuses a POST that breaks any condition or arrives after the expiration,
and stores nothing. The signer is a function of bytes (``_sign.Signer``): a local
PEM key sends no request, IAM ``signBlob`` sends one.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from ...errors import InvalidArgument
from ...types import UploadForm
from ..base import PostPolicy
from ._sign import ALGORITHM, MAX_TTL, Signer

__all__ = ["MAX_OBJECT_SIZE", "policy_document", "sign_post_v4"]

MAX_OBJECT_SIZE = 5 * 1024**4
"""GCS's largest object (5 TiB): the content-length-range cap when max_size is None."""


def policy_document(
    bucket: str,
    key: str,
    fields: dict[str, str],
    conditions: list[Any],
    *,
    now: datetime,
    ttl: timedelta,
    client_email: str,
) -> tuple[dict[str, str], str]:
    """(every form field except the signature, the policy's JSON text) for a V4 POST policy."""
    now = now.astimezone(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    credential = f"{client_email}/{now:%Y%m%d}/auto/storage/goog4_request"
    ordered = dict(sorted(fields.items()))
    everything = [
        *conditions,
        *({name: value} for name, value in ordered.items()),
        {"bucket": bucket},
        {"key": key},
        {"x-goog-date": stamp},
        {"x-goog-credential": credential},
        {"x-goog-algorithm": ALGORITHM},
    ]
    expiration = (now + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = json.dumps({"conditions": everything, "expiration": expiration}, separators=(",", ":"))
    form = {
        "key": key,
        **ordered,
        "x-goog-algorithm": ALGORITHM,
        "x-goog-credential": credential,
        "x-goog-date": stamp,
        "policy": base64.b64encode(text.encode()).decode(),
    }
    return form, text


async def sign_post_v4(
    *,
    base_url: str,
    bucket: str,
    key: str,
    policy: PostPolicy,
    client_email: str,
    signer: Signer,
    now: datetime | None = None,
) -> UploadForm:
    """The form to POST to ``{base_url}/{bucket}`` (path style, as Google documents it)."""
    if policy.ttl > MAX_TTL:
        raise InvalidArgument(f"upload form ttl must be at most 7 days, got {policy.ttl}", key=key)
    high = MAX_OBJECT_SIZE if policy.max_size is None else policy.max_size
    conditions: list[Any] = [["content-length-range", policy.min_size, high]]
    fields: dict[str, str] = {}
    if policy.content_type is not None:
        fields["Content-Type"] = policy.content_type
    elif policy.content_type_prefix is not None:
        conditions.append(["starts-with", "$Content-Type", policy.content_type_prefix])
    for name, value in policy.metadata.items():
        fields[f"x-goog-meta-{name.lower()}"] = value
    form, _ = policy_document(
        bucket,
        key,
        fields,
        conditions,
        now=now or datetime.now(UTC),
        ttl=timedelta(seconds=max(1, int(policy.ttl.total_seconds()))),
        client_email=client_email,
    )
    form["x-goog-signature"] = (await signer(form["policy"].encode())).hex()
    return UploadForm(url=f"{base_url.rstrip('/')}/{quote(bucket, safe='')}", fields=form)
