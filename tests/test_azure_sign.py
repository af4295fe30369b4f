"""The Azure signer equals azure-storage-blob's, byte for byte (the SDK is pinned in dev).

SharedKey: 1,200 hypothesis-generated requests (metadata names that sort differently
by bytes and by Windows collation, unicode and percent-encoded blob names, query
parameters, empty and non-empty bodies) signed by our ``_sign`` and by the SDK's
``SharedKeyCredentialPolicy``; the Authorization headers must be equal. Service SAS:
our query string equals ``generate_blob_sas``'s for generated blob names, permissions,
times and header overrides.
"""

from __future__ import annotations

import base64
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiobucket.providers.azure._sign import HmacKey, collation_key, sas_query, shared_key, string_to_sign

azure_blob = pytest.importorskip("azure.storage.blob")
from azure.core.pipeline import PipelineContext, PipelineRequest  # noqa: E402
from azure.core.rest import HttpRequest  # noqa: E402
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy  # noqa: E402

ACCOUNT = "devstoreaccount1"
KEY_B64 = base64.b64encode(bytes(range(64))).decode()
KEY = base64.b64decode(KEY_B64)
HMAC = HmacKey(KEY)  # what requests are signed with (SharedKeyAuth)

# C# identifiers (Azure's rule for metadata names), biased to the characters that sort
# differently by bytes and by collation: '_' vs digits, case, and lookalike prefixes.
meta_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,6}", fullmatch=True)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
blob_names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
) | st.from_regex(r"[a-z0-9%/._ -]{1,20}", fullmatch=True)
query_names = st.sampled_from(["comp", "restype", "blockid", "prefix", "marker", "timeout", "delimiter"])
query_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=10)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str]], dict[str, str]]:
    method = draw(st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"]))
    path = "/" + ACCOUNT + "/c0ntainer/" + quote(draw(blob_names), safe="/~")
    names = draw(st.lists(query_names, unique=True, max_size=4))
    query = [(n, quote(draw(query_values), safe="")) for n in names]
    headers = {"x-ms-date": "Sun, 06 Dec 2026 04:00:00 GMT", "x-ms-version": "2025-01-05"}
    for name in draw(st.lists(meta_names, max_size=6, unique_by=str.lower)):
        headers["x-ms-meta-" + name.lower()] = draw(header_values)
    for extra in draw(st.lists(st.sampled_from(["x-ms-blob-type", "x-ms-range", "x-ms-copy-source",
                                                "x-ms-blob-content-md5", "x-ms-client-request-id"]),
                               unique=True)):  # fmt: skip
        headers[extra] = draw(header_values)
    length = draw(st.sampled_from([None, 0, 1, 4096, 1 << 30]))
    if length is not None:
        headers["content-length"] = str(length)
    standard = [
        "content-md5",
        "content-type",
        "if-match",
        "if-none-match",
        "content-encoding",
        "if-modified-since",
    ]
    for std in draw(st.lists(st.sampled_from(standard), unique=True)):
        headers[std] = draw(header_values)
    return method, path, query, headers


def sdk_authorization(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> str:
    url = f"http://127.0.0.1:10000{path}" + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    request = HttpRequest(method, url, headers=dict(headers))
    policy = SharedKeyCredentialPolicy(ACCOUNT, KEY_B64)
    policy.on_request(PipelineRequest(request, PipelineContext(None)))  # type: ignore[arg-type]
    return str(request.headers["Authorization"])


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_shared_key_equals_the_sdk(req: tuple[str, str, list[tuple[str, str]], dict[str, str]]) -> None:
    method, path, query, headers = req
    text = string_to_sign(method, ACCOUNT, path, query, headers)
    ours = shared_key(ACCOUNT, HMAC, text)
    assert ours == sdk_authorization(method, path, query, headers)
    assert shared_key(ACCOUNT, KEY, text) == ours


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=300))
def test_precomputed_hmac_equals_the_standard_library(key: bytes, text: str) -> None:
    """Keys shorter than, equal to and longer than SHA-256's 64-byte block."""
    expected = base64.b64encode(hmac.digest(key, text.encode(), "sha256")).decode()
    assert HmacKey(key).b64(text) == expected


def test_metadata_names_sort_as_azure_does() -> None:
    """'i_' before 'i0', case-blind, hyphen only as a tie-breaker: not byte order."""
    names = ["x-ms-meta-i0", "x-ms-meta-i_", "x-ms-meta-a1", "x-ms-meta-a_1", "x-ms-meta-b"]
    assert sorted(names, key=collation_key) == [
        "x-ms-meta-a_1", "x-ms-meta-a1", "x-ms-meta-b", "x-ms-meta-i_", "x-ms-meta-i0",
    ]  # fmt: skip
    assert sorted(names) != sorted(names, key=collation_key)


def test_repeated_query_parameter_is_one_line_of_sorted_values() -> None:
    """The documented rule (the SDK keeps only the last value, and never sends one)."""
    text = string_to_sign("GET", ACCOUNT, "/a/c", [("include", "snapshots"), ("include", "metadata")], {})
    assert text.endswith("/devstoreaccount1/a/c\ninclude:metadata,snapshots")
    same = string_to_sign("GET", ACCOUNT, "/a/c", [("include", "metadata%2Csnapshots")], {})
    assert text == same
    # and the single-parameter form is what the SDK signs
    assert shared_key(ACCOUNT, KEY, same) == sdk_authorization(
        "GET", "/a/c", [("include", "metadata%2Csnapshots")], {}
    )


@settings(max_examples=1000, deadline=None)  # as many as the SharedKey proof (issue #22)
@given(
    blob=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30),
    permission=st.sampled_from(["r", "c", "w", "cw", "rw"]),
    ttl=st.integers(1, 7 * 86400),
    with_start=st.booleans(),
    content_type=st.none() | st.sampled_from(["image/png", "text/plain; charset=utf-8"]),
    disposition=st.none() | st.just('attachment; filename="a b.txt"'),
    cache_control=st.none() | st.just("max-age=60"),
    protocol=st.none() | st.sampled_from(["https", "https,http"]),
    version_id=st.none() | st.just("2026-12-06T04:00:00.1234567Z"),
)
def test_service_sas_equals_generate_blob_sas(
    blob: str,
    permission: str,
    ttl: int,
    with_start: bool,
    content_type: str | None,
    disposition: str | None,
    cache_control: str | None,
    protocol: str | None,
    version_id: str | None,
) -> None:
    from azure.storage.blob import generate_blob_sas
    from azure.storage.blob._shared.constants import X_MS_VERSION

    start = datetime(2026, 12, 6, 4, 0, tzinfo=UTC) if with_start else None
    expiry = datetime(2026, 12, 6, 4, 0, tzinfo=UTC) + timedelta(seconds=ttl)
    sdk = generate_blob_sas(
        ACCOUNT, "c0ntainer", blob, account_key=KEY_B64, permission=permission, expiry=expiry, start=start,
        protocol=protocol, content_type=content_type, content_disposition=disposition,
        cache_control=cache_control, version_id=version_id,
    )  # fmt: skip
    ours = sas_query(
        ACCOUNT, KEY, "c0ntainer", blob, permission=permission, expiry=expiry, start=start,
        version=X_MS_VERSION, protocol=protocol, content_type=content_type,
        content_disposition=disposition, cache_control=cache_control, version_id=version_id,
    )  # fmt: skip
    assert ours == sdk
    sr = dict(p.split("=", 1) for p in urlsplit("?" + ours).query.split("&"))["sr"]
    assert sr == ("bv" if version_id else "b")


@settings(max_examples=1000, deadline=None)  # as many as the SharedKey proof (issue #22)
@given(
    blob=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30),
    permission=st.sampled_from(["r", "c", "cw", "rw"]),
    ttl=st.integers(1, 7 * 86400),
    with_start=st.booleans(),
    delegated_tid=st.none() | st.just("11111111-2222-3333-4444-555555555555"),
)
def test_user_delegation_sas_equals_generate_blob_sas(
    blob: str, permission: str, ttl: int, with_start: bool, delegated_tid: str | None
) -> None:
    from azure.storage.blob import UserDelegationKey, generate_blob_sas

    from aiobucket.providers.azure._sign import (
        USER_DELEGATION_VERSION,
        DelegationKey,
        user_delegation_sas_query,
    )

    sdk_key = UserDelegationKey()
    sdk_key.signed_oid = "6f1a9b52-0000-4000-8000-000000000001"
    sdk_key.signed_tid = "72f988bf-0000-4000-8000-000000000002"
    sdk_key.signed_start = "2026-12-06T00:00:00Z"
    sdk_key.signed_expiry = "2026-12-13T00:00:00Z"
    sdk_key.signed_service = "b"
    sdk_key.signed_version = "2025-01-05"
    sdk_key.signed_delegated_user_tid = delegated_tid
    sdk_key.value = KEY_B64
    ours_key = DelegationKey(
        sdk_key.signed_oid, sdk_key.signed_tid, sdk_key.signed_start, sdk_key.signed_expiry,
        "b", "2025-01-05", KEY_B64, delegated_tid,
    )  # fmt: skip
    start = datetime(2026, 12, 6, 4, 0, tzinfo=UTC) if with_start else None
    expiry = datetime(2026, 12, 6, 4, 0, tzinfo=UTC) + timedelta(seconds=ttl)
    sdk = generate_blob_sas(
        ACCOUNT, "c0ntainer", blob, user_delegation_key=sdk_key, permission=permission, expiry=expiry,
        start=start,
    )  # fmt: skip
    ours = user_delegation_sas_query(
        ACCOUNT, ours_key, "c0ntainer", blob, permission=permission, expiry=expiry, start=start
    )
    from azure.storage.blob._shared.constants import X_MS_VERSION

    assert X_MS_VERSION == USER_DELEGATION_VERSION  # the field layout is this version's
    assert ours == sdk
