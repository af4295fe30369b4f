"""Store profiles (providers/s3/_profiles.py): inference, overrides, capabilities, and the
fallbacks one provider learns (providers/s3/_fallback.py). No I/O: explicit endpoints and keys.
The behaviour on the wire is proven against real servers and personas in
tests/test_s3_personas.py and tests/test_s3_doctor.py."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

import aiobucket
from aiobucket import InvalidArgument
from aiobucket.config import BucketSettings
from aiobucket.providers._http.transport import Response
from aiobucket.providers.s3 import S3Provider, create
from aiobucket.providers.s3._fallback import fall_back
from aiobucket.providers.s3._profiles import PROFILES, PROVIDERS, infer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make(url: str, **options: object) -> S3Provider:
    p = create(
        BucketSettings(url=url, options={"access_key_id": "a", "secret_access_key": "s", **options}),
        "b",
        aiobucket.BucketConfig(),
    )
    assert isinstance(p, S3Provider)
    return p


@pytest.mark.parametrize(
    ("endpoint", "store"),
    [
        (None, "aws"),
        ("https://s3.eu-west-1.amazonaws.com", "aws"),
        ("https://acct.r2.cloudflarestorage.com", "r2"),
        ("https://s3.us-west-004.backblazeb2.com", "b2"),
        ("https://storage.googleapis.com", "gcs"),
        ("https://oss-cn-hangzhou.aliyuncs.com", "oss"),
        ("https://s3.wasabisys.com", "wasabi"),
        ("https://fra1.digitaloceanspaces.com", "spaces"),
        ("https://s3.fr-par.scw.cloud", "scaleway"),
        ("https://gateway.storjshare.io", "storj"),
        ("https://fly.storage.tigris.dev", "tigris"),
        ("http://127.0.0.1:9000", "other"),
        ("https://minio.example.com:9000", "other"),
        ("https://notamazonaws.com", "other"),
    ],
)
def test_the_store_is_inferred_from_the_endpoint_host(endpoint: str | None, store: str) -> None:
    assert infer(endpoint) == store


def test_every_provider_value_has_a_profile_and_other_is_conservative() -> None:
    assert set(PROVIDERS) == {
        "aws", "r2", "b2", "gcs", "minio", "ceph", "seaweedfs", "garage", "wasabi", "spaces",
        "oss", "scaleway", "storj", "tigris", "other",
    }  # fmt: skip
    other = PROFILES["other"]
    assert not other.checksum_headers and other.multipart_checksum == "none"
    assert other.conditional_put == other.conditional_complete == other.conditional_copy == "none"


def test_provider_and_field_overrides_reach_the_capabilities() -> None:
    p = make("s3://x?endpoint=http://127.0.0.1:1&region=r")
    assert p.store.name == "other" and p.capabilities.store == "other"
    assert not p.capabilities.conditional_put and not p.capabilities.conditional_copy
    p = make("s3://x?endpoint=http://127.0.0.1:1&region=r&provider=minio", conditional_put="precheck")
    assert (
        p.store.name == "minio" and p.store.conditional_put == "precheck" and p.capabilities.conditional_put
    )
    p = make("s3://x?endpoint=https://s3.fr-par.scw.cloud&region=fr-par")
    assert p.capabilities.max_parts == 1000 and p.store.name == "scaleway"
    p = make("s3://x?endpoint=https://a.r2.cloudflarestorage.com&region=auto")
    assert not p.capabilities.signed_forms and not p.capabilities.versioning
    p = make(
        "s3://x?endpoint=https://storage.googleapis.com&region=auto", max_parts="500", bulk_delete="false"
    )
    assert p.capabilities.max_parts == 500 and p.capabilities.delete_batch == 1


def test_every_profile_field_is_an_option_and_a_url_parameter_of_the_same_name() -> None:
    """As ``aiobucket doctor`` prints them (``provider=garage conditional_put=none``): in the
    bucket's options or in its URL, each field overrides just itself."""
    from dataclasses import fields

    from aiobucket.providers.s3._profiles import OVERRIDES, StoreProfile

    assert set(OVERRIDES) == {f.name for f in fields(StoreProfile)} - {"name"}
    changed = {
        "addressing": "virtual", "checksum_headers": True, "checksum_mode": True,
        "multipart_checksum": "composite", "conditional_put": "precheck",
        "conditional_complete": "native", "conditional_copy": "precheck",
        "copy_if_none_match_header": "x-custom", "etag_md5": False, "etag_upper": True,
        "bulk_delete": False, "part_copy": False, "part_copy_if_match": False, "versions": False,
        "version_markers": False, "post_forms": False, "max_parts": 1000, "min_part_size": 8 << 20,
    }  # fmt: skip
    assert set(changed) == set(OVERRIDES)
    base = "s3://x?endpoint=http://127.0.0.1:1&region=r&provider=other"
    query = "&".join(f"{k}={str(v).lower()}" for k, v in changed.items())
    for p in (make(base, **changed), make(f"{base}&{query}")):
        assert {k: getattr(p.store, k) for k in changed} == changed
        assert p.store.name == "other"
    with pytest.raises(InvalidArgument, match="store profile's fields"):
        make(f"{base}&conditional_puts=native")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"provider": "azure"}, "provider must be one of aws, r2"),
        ({"conditional_put": "yes"}, "conditional_put must be one of native, precheck, none"),
        ({"multipart_checksum": "sha256"}, "multipart_checksum must be one of"),
        ({"checksum_headers": "maybe"}, "checksum_headers must be true or false"),
        ({"max_parts": 0}, "max_parts must be a positive integer"),
        ({"addressing": "host"}, "addressing must be one of virtual, path"),
    ],
)
def test_a_wrong_profile_option_says_what_to_fix(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make("s3://x?endpoint=http://127.0.0.1:1&region=r", **options)


def test_a_gcs_endpoint_error_points_at_gs() -> None:
    p = make("s3://x?endpoint=https://storage.googleapis.com&region=auto")
    resp = Response(403, CIMultiDictProxy(CIMultiDict()), b"")
    resp.code, resp.message = "AccessDenied", "denied"
    assert "gs://" in str(p.fail(resp, "upload", "k"))


def answer(status: int, code: str, message: str = "") -> Response:
    resp = Response(status, CIMultiDictProxy(CIMultiDict()), b"")
    resp.code, resp.message = code, message
    return resp


def test_a_refused_checksum_header_group_is_dropped_once_and_learnt() -> None:
    p = make("s3://x?endpoint=http://127.0.0.1:1&region=r&provider=seaweedfs")
    headers = {"x-amz-checksum-crc32c": "AAAAAA==", "content-type": "text/plain"}
    refused = answer(
        400, "InvalidArgument", "Unsupported header 'x-amz-checksum-crc32c' received for this API call."
    )
    again = fall_back(p, refused, headers, b"body")
    assert again is not None and "x-amz-checksum-crc32c" not in again and "content-md5" in again
    assert not p.store.checksum_headers and not p.store.checksum_mode and p.store.multipart_checksum == "none"
    assert PROFILES["seaweedfs"].checksum_headers  # the shared table is untouched


@pytest.mark.parametrize("code", ["BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest"])
def test_a_checksum_mismatch_is_never_a_fallback(code: str) -> None:
    p = make("s3://x?endpoint=http://127.0.0.1:1&region=r&provider=seaweedfs")
    headers = {"x-amz-checksum-crc32c": "AAAAAA=="}
    assert fall_back(p, answer(400, code, "the x-amz-checksum-crc32c does not match"), headers, b"x") is None
    assert p.store.checksum_headers


@pytest.mark.anyio
async def test_path_style_refused_switches_to_virtual_host() -> None:
    # Alibaba OSS: 403 SecondLevelDomainForbidden to a path-style request (its error-code
    # reference). A loopback endpoint cannot take a bucket subdomain, so this is checked here.
    p = make("s3://x?endpoint=https://oss.example.com&region=r", provider="other")
    await p._endpoint()
    assert p._ep is not None and p._ep.base == "https://oss.example.com/x"
    assert fall_back(p, answer(403, "SecondLevelDomainForbidden"), {}, None) == {}
    assert p.store.addressing == "virtual"
    await p._endpoint()
    assert p._ep is not None and p._ep.base == "https://x.oss.example.com"
    await p.aclose()


@pytest.mark.anyio
async def test_a_store_without_versions_refuses_version_requests_before_any_io() -> None:
    """R2 keeps no versions; a store without them may ignore ``versionId`` and answer with
    the current object. So version= reads, removes and version listings raise NotSupported
    (the endpoint is a closed port: any request would fail otherwise)."""
    from aiobucket import NotSupported
    from aiobucket.providers.base import GetOptions

    p = make("s3://x?endpoint=http://127.0.0.1:1&region=auto&provider=r2", max_attempts=1)
    try:
        with pytest.raises(NotSupported, match="versions=true"):
            await p.head("k", "v1")
        with pytest.raises(NotSupported, match="provider=r2"):
            await p.get("k", GetOptions(version="v1"))
        with pytest.raises(NotSupported):
            await p.delete("k", "v1")
        with pytest.raises(NotSupported):
            await p.list("", versions=True).__anext__()
    finally:
        await p.aclose()
