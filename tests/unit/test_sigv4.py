"""Our SigV4 signer against botocore's ``S3SigV4Auth``: the same request, the same headers, byte for byte.

botocore is the reference (it is what AWS's own SDK sends); an AWS documentation test
vector pins both to AWS itself. botocore reads the time through
``botocore.auth.get_current_datetime``, which the test patches to the example's instant.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from unittest import mock

import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.utils import percent_encode_sequence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiobucket.providers.s3._sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    Credentials,
    SigV4Signer,
    canonical_query,
    quote_path,
)

# Characters S3 keys and query values really carry, weighted towards the ones encoders get wrong.
_TRICKY = [*"aZ09-_.~+%/ !*'()&$@=;:,?#[]{}|^`\"<>\\\t", *"éß日本😀\u00a0\u2028ǅ"]
_chars = st.one_of(st.sampled_from(_TRICKY), st.characters(blacklist_categories=("Cs",)))
keys = st.one_of(
    st.text(_chars, min_size=1, max_size=40),
    st.lists(st.text(_chars, max_size=6), min_size=2, max_size=6).map("/".join),  # runs of '/'
    st.sampled_from(["a//b", "//lead", "trail//", "a b+c%20d~e", "..", "./x", "a/../b", "%2F", "~user"]),
)
query_values = st.one_of(st.just(""), st.text(_chars, max_size=20), st.sampled_from(["/", "a/b/", "%", "+"]))
query_names = st.sampled_from(
    ["uploadId", "partNumber", "versionId", "list-type", "prefix", "continuation-token", "delimiter",
     "max-keys", "start-after", "encoding-type", "fetch-owner", "uploads", "versions", "delete",
     "key-marker", "version-id-marker", "tagging", "x-id", "a", "a-b", "A", "é"]
)  # fmt: skip
header_values = st.one_of(
    st.text(st.sampled_from([*"ab Z9 \t=,;\"'", "é", "\u00a0"]), max_size=20),
    st.sampled_from(["  lead", "trail  ", "in   ner", "\ttab\t", "", " ", "a,b", "UTF-8''na%C3%AFve"]),
)
hosts = st.sampled_from(["127.0.0.1", "localhost", "s3.amazonaws.com", "Bkt.S3.Example.COM", "[::1]"])
ports = st.sampled_from([None, 80, 443, 8333, 9000])
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
secrets = st.text(st.sampled_from(list("abcXYZ0189/+=")), min_size=1, max_size=40)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    """Headers as the S3 path sends them, each under a randomly cased name."""
    by_name: dict[str, str] = {}
    optional = {
        "range": st.sampled_from(["bytes=0-99", "bytes=100-", "bytes=-5", "bytes=0-0"]),
        "if-match": st.sampled_from(['"d41d8cd98f00b204e9800998ecf8427e"', '"abc-3"', "*"]),
        "if-none-match": st.sampled_from(["*", '"d41d8cd98f00b204e9800998ecf8427e"']),
        "if-modified-since": st.just("Wed, 21 Oct 2015 07:28:00 GMT"),
        "if-unmodified-since": st.just("Wed, 21 Oct 2015 07:28:00 GMT"),
        "content-md5": st.just("1B2M2Y8AsgTpgAmY7PhCfg=="),
        "x-amz-checksum-crc32c": st.just("AAAAAA=="),
        "content-type": st.sampled_from(["application/octet-stream", "text/plain; charset=utf-8", "a/b"]),
        "content-length": st.integers(0, 10**12).map(str),
        "content-disposition": header_values,
        "cache-control": st.just("max-age=60,  public"),
        "x-amz-copy-source": keys.map(lambda k: "/bkt/" + quote_path(k)),
        "x-amz-copy-source-if-match": st.just('"abc"'),
        "x-amz-server-side-encryption": st.just("AES256"),
        "x-amz-checksum-algorithm": st.just("CRC32C"),
        "user-agent": st.just("aiobucket/0.1 aiohttp"),  # never signed
        "expect": st.just("100-continue"),  # never signed
        "x-amzn-trace-id": st.just("Root=1-abc"),  # never signed
        "host": st.sampled_from(["127.0.0.1:8333", "example.com"]),  # signed as given
        "date": st.just("Thu, 01 Jan 1970 00:00:00 GMT"),  # botocore re-dates it, no x-amz-date
        "x-amz-date": st.just("19990101T000000Z"),  # stale: replaced
        "authorization": st.just("AWS4-HMAC-SHA256 stale"),  # stale: replaced, never signed
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=8)):
        by_name[name] = draw(optional[name])
    for i in range(draw(st.integers(0, 3))):
        by_name[f"x-amz-meta-{draw(st.sampled_from(['k', 'Name', 'a-b', 'x']))}{i}"] = draw(header_values)
    casing = draw(st.sampled_from([str.lower, str.title, str.upper]))
    return {casing(name): value for name, value in by_name.items()}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, object]:
    scheme = draw(st.sampled_from(["http", "https"]))
    host, port = draw(hosts), draw(ports)
    netloc = host if port is None else f"{host}:{port}"
    path_style = draw(st.booleans())
    path = ("/bkt-1/" if path_style else "/") + quote_path(draw(keys))
    if draw(st.booleans()):
        path = draw(st.sampled_from(["/", "/bkt-1", "/bkt-1/"]))
    params = draw(st.lists(st.tuples(query_names, query_values), max_size=5))
    how = draw(st.sampled_from(["canonical", "botocore", "bare"]))
    if how == "canonical":
        query = canonical_query(params)
    elif how == "botocore":  # botocore's own order (not sorted), as its serializer writes it
        query = percent_encode_sequence(params)
    else:  # subresources without '=' (?uploads, ?delete) alongside encoded pairs
        bare = draw(st.lists(st.sampled_from(["uploads", "delete", "versions", "tagging"]), min_size=1))
        query = "&".join([*bare, percent_encode_sequence(params)] if params else bare)
    url = f"{scheme}://{netloc}{path}" + (f"?{query}" if query or draw(st.booleans()) else "")
    body = draw(st.one_of(st.none(), st.binary(max_size=64)))
    token = draw(
        st.one_of(st.none(), st.text(st.sampled_from(list("AQoDYXdz/+=")), min_size=1, max_size=300))
    )
    return {
        "method": draw(st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST", "get"])),
        "url": url,
        "headers": draw(headers()),
        "body": body,  # None: UNSIGNED-PAYLOAD
        "credentials": Credentials(draw(st.sampled_from(["AKIDEXAMPLE", "ak/+x"])), draw(secrets), token),
        "region": draw(st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1"])),
        "when": draw(instants),
    }


def botocore_sign(req: dict[str, object]) -> dict[str, str]:
    """What botocore's S3 signer sends for the request, header names lowercased."""
    creds = req["credentials"]
    assert isinstance(creds, Credentials)
    body = req["body"]
    aws = AWSRequest(method=req["method"], url=req["url"], headers=dict(req["headers"]), data=body or b"")  # type: ignore[call-overload]
    # payload_signing_enabled is how a botocore client is told to send UNSIGNED-PAYLOAD.
    aws.context["client_config"] = SimpleNamespace(s3={"payload_signing_enabled": body is not None})
    signer = S3SigV4Auth(
        BotoCredentials(creds.access_key, creds.secret_key, creds.token), "s3", req["region"]
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=req["when"]):
        signer.add_auth(aws)
    return {k.lower(): v for k, v in aws.headers.items()}


def our_sign(req: dict[str, object], signer: SigV4Signer | None = None) -> dict[str, str]:
    body = req["body"]
    payload = UNSIGNED_PAYLOAD if body is None else hashlib.sha256(body).hexdigest()  # type: ignore[arg-type]
    hdrs = dict(req["headers"])  # type: ignore[call-overload]
    signer = signer or SigV4Signer(req["region"])  # type: ignore[arg-type]
    signer.sign(req["method"], req["url"], hdrs, payload, req["credentials"], now=req["when"])  # type: ignore[arg-type]
    assert len({k.lower() for k in hdrs}) == len(hdrs), f"duplicate header names: {hdrs}"
    return {k.lower(): v for k, v in hdrs.items()}


_shared: dict[str, SigV4Signer] = {}


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_signer_matches_botocore_byte_for_byte(req: dict[str, object]) -> None:
    theirs = botocore_sign(req)
    # A long-lived signer per region (cached keys across dates and secrets) and a fresh one.
    region = req["region"]
    assert isinstance(region, str)
    shared = _shared.setdefault(region, SigV4Signer(region))
    for ours in (our_sign(req, shared), our_sign(req)):
        assert ours["authorization"] == theirs["authorization"]
        assert ours.get("x-amz-date") == theirs.get("x-amz-date")
        assert ours["x-amz-content-sha256"] == theirs["x-amz-content-sha256"]
        assert ours.get("x-amz-security-token") == theirs.get("x-amz-security-token")
        # Every other header is what botocore sends too; we add only the Host it signs.
        host = ours.pop("host")
        assert theirs.pop("host", host) == host
        assert host == req["headers"].get(  # type: ignore[attr-defined]
            next((k for k in req["headers"] if k.lower() == "host"), ""),  # type: ignore[attr-defined]
            botocore.auth._host_from_url(req["url"]),
        )
        assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(_chars, max_size=10), st.text(_chars, max_size=10)), max_size=6))
def test_canonical_query_matches_botocore_params(params: list[tuple[str, str]]) -> None:
    reference = S3SigV4Auth(BotoCredentials("a", "b"), "s3", "us-east-1")
    assert canonical_query(params) == reference._canonical_query_string_params(params)
    assert canonical_query(dict(params)) == reference._canonical_query_string_params(dict(params))


@settings(max_examples=300, deadline=None)
@given(keys)
def test_quote_path_matches_botocore_key_encoding(key: str) -> None:
    from botocore.utils import percent_encode

    assert quote_path(key) == percent_encode(key, safe="/~")  # botocore's {Key+} rendering


def test_aws_documentation_vector_get_object_with_range() -> None:
    """AWS S3 SigV4 docs, "Example: GET Object" (examplebucket, Range bytes=0-9)."""
    hdrs = {"Range": "bytes=0-9"}
    SigV4Signer("us-east-1").sign(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        hdrs,
        EMPTY_SHA256,
        Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert hdrs["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert hdrs["host"] == "examplebucket.s3.amazonaws.com"
    assert hdrs["x-amz-date"] == "20130524T000000Z"


def test_resigning_a_retry_replaces_every_signed_header() -> None:
    """A retry re-signs its own headers dict: the result equals a fresh signing at the new time."""
    creds = Credentials("AKIDEXAMPLE", "secret", "tok")
    url = "http://127.0.0.1:8333/b/k%20ey?partNumber=2&uploadId=x"
    signer = SigV4Signer("us-east-1")
    retried = {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}
    signer.sign("PUT", url, retried, EMPTY_SHA256, creds, now=datetime(2024, 1, 1))
    first = dict(retried)
    signer.sign("PUT", url, retried, EMPTY_SHA256, creds, now=datetime(2024, 1, 2, 3, 4, 5))
    fresh = {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}
    signer.sign("PUT", url, fresh, EMPTY_SHA256, creds, now=datetime(2024, 1, 2, 3, 4, 5))
    assert retried == fresh
    assert retried["authorization"] != first["authorization"]
    assert retried["x-amz-date"] == "20240102T030405Z"


def test_aware_times_are_converted_to_utc_and_default_time_is_now() -> None:
    creds = Credentials("AKIDEXAMPLE", "secret")
    url = "https://s3.amazonaws.com/b/k"
    signer = SigV4Signer("us-east-1")
    naive, aware = {}, {}  # type: ignore[var-annotated]
    signer.sign("GET", url, naive, EMPTY_SHA256, creds, now=datetime(2024, 1, 1, 22, 30))
    cet = timezone(timedelta(hours=2))
    signer.sign("GET", url, aware, EMPTY_SHA256, creds, now=datetime(2024, 1, 2, 0, 30, tzinfo=cet))
    assert naive == aware

    before = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    current: dict[str, str] = {}
    signer.sign("GET", url, current, EMPTY_SHA256, creds)
    after = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    assert before <= current["x-amz-date"] <= after
    again: dict[str, str] = {}
    signer.sign(
        "GET", url, again, EMPTY_SHA256, creds, now=datetime.strptime(current["x-amz-date"], "%Y%m%dT%H%M%SZ")
    )
    assert again == current


def test_bad_input_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="region"):
        SigV4Signer("")
    with pytest.raises(ValueError, match="absolute URL"):
        SigV4Signer("us-east-1").sign("GET", "/b/k", {}, EMPTY_SHA256, Credentials("a", "b"))
