"""Upload forms beyond the conformance suite: argument rules, refs, the signatures checked
offline against independent reference computations (GCS also against Google's published
conformance vectors), the dev server's form parser on hostile input, infra's CORS output,
and the example app.

What ran against a real server is in tests/conformance/test_upload_forms.py (SeaweedFS,
fake-gcs-server, the dev server) and tests/test_upload_forms_browser.py (Chromium).
fake-gcs-server checks no policy and no signature, so for GCS the signatures are proven
here, offline, and nowhere against GCS itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import aiobucket
from aiobucket import (
    Bucket,
    Downloader,
    InvalidArgument,
    NotSupported,
    PermissionDenied,
    SignedUploader,
    UploadForm,
    config,
    infra,
)
from aiobucket.providers.base import PostPolicy
from aiobucket.providers.gcs._post import policy_document, sign_post_v4
from aiobucket.providers.gcs._sign import pem_signer, sign_v4
from aiobucket.providers.local import _signing

pytestmark = pytest.mark.anyio

SAMPLE = Path(__file__).parent / "infra_sample"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "upload_form_app.py"


@pytest.fixture
def memory_bucket() -> Iterator[Bucket]:
    with config.override({"forms-mem": "memory://"}):
        yield Bucket("forms-mem")


# -- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": -1}, "max_size must be an int >= 0"),
        ({"max_size": 1.5}, "max_size must be an int"),
        ({"max_size": True}, "max_size must be an int"),
        ({"max_size": 10, "min_size": 11}, r"min_size \(11\) must not exceed max_size \(10\)"),
        ({"max_size": 10, "min_size": -1}, "min_size must be an int >= 0"),
        ({"max_size": 10, "ttl": 0}, "ttl must be more than 0"),
        ({"max_size": 10, "ttl": timedelta(days=8)}, "at most 7 days"),
        ({"max_size": 10, "ttl": "1h"}, "ttl must be a timedelta or seconds"),
        ({"max_size": 10, "content_type": "a/b", "content_type_prefix": "a/"}, "not both"),
        ({"max_size": 10, "content_type": ""}, "content_type must be a non-empty str"),
        ({"max_size": 10, "content_type": "text/plain\r\nX: y"}, "printable ASCII"),
        ({"max_size": 10, "content_type_prefix": 3}, "content_type_prefix must be a non-empty str"),
        ({"max_size": 10, "metadata": ["a"]}, "metadata must be a dict"),
        ({"max_size": 10, "metadata": {"bad key": "v"}}, "metadata key 'bad key'"),
        ({"max_size": 10, "metadata": {"k": 1}}, "keys and values must be str"),
        ({"max_size": 10, "metadata": {"k": "caf\u00e9"}}, "must be ASCII"),
    ],
)
async def test_bad_form_arguments_say_what_to_fix(
    memory_bucket: Bucket, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        await memory_bucket.signed_upload_form("k.txt", **kwargs)
    assert info.value.bucket == "forms-mem"


async def test_bad_keys_and_the_filename_variable(memory_bucket: Bucket) -> None:
    with pytest.raises(InvalidArgument, match="filename"):
        await memory_bucket.signed_upload_form("uploads/${filename}", max_size=10)
    with pytest.raises(InvalidArgument, match="key"):
        await memory_bucket.signed_upload_form("", max_size=10)
    # Valid arguments reach the memory backend, which has no forms.
    with pytest.raises(NotSupported, match="upload forms"):
        await memory_bucket.signed_upload_form("ok.txt", max_size=10)


async def test_signed_put_extras_are_checked(memory_bucket: Bucket) -> None:
    with pytest.raises(InvalidArgument, match="content_length must be an int >= 0"):
        await memory_bucket.signed_upload_url("k", content_length=-5)
    with pytest.raises(InvalidArgument, match="content_type must be printable ASCII"):
        await memory_bucket.signed_upload_url("k", content_type="a\nb")


async def test_refs_need_signed_uploader(memory_bucket: Bucket) -> None:
    with pytest.raises(NotSupported):  # permitted: it reaches the backend
        await memory_bucket.ref(SignedUploader).signed_upload_form("k", max_size=1)
    with pytest.raises(PermissionDenied, match="signed_upload_form"):
        await memory_bucket.ref(Downloader).signed_upload_form("k", max_size=1)  # type: ignore[attr-defined]


def test_upload_form_is_exported() -> None:
    assert "UploadForm" in aiobucket.__all__ and aiobucket.UploadForm is UploadForm


# -- S3: the SigV4 POST policy, recomputed by hand ------------------------------------------


async def test_s3_form_policy_and_signature_match_a_reference_computation() -> None:
    settings = {
        "url": "s3://photos?endpoint=http://127.0.0.1:9&region=eu-west-1",
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "key_prefix": "app/",
    }
    with config.override({"photos": settings}):
        try:
            form = await Bucket("photos").signed_upload_form(
                "u/1.png", max_size=2048, min_size=1, ttl=600, metadata={"who": "me"}
            )
            prefixed = await Bucket("photos").signed_upload_form(
                "u/2", max_size=10, content_type_prefix="image/"
            )
        finally:
            await aiobucket.aclose()
    f = form.fields
    assert form.url == "http://127.0.0.1:9/photos"  # no request was sent to signing
    assert (f["key"], f["Content-Type"], f["x-amz-meta-who"]) == ("app/u/1.png", "image/png", "me")
    document = json.loads(base64.b64decode(f["policy"]))
    conditions = document["conditions"]
    assert ["content-length-range", 1, 2048] in conditions
    for expected in (
        {"Content-Type": "image/png"},
        {"x-amz-meta-who": "me"},
        {"bucket": "photos"},
        {"key": "app/u/1.png"},
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": f["x-amz-credential"]},
        {"x-amz-date": f["x-amz-date"]},
    ):
        assert expected in conditions
    signed_at = datetime.strptime(f["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expires = datetime.strptime(document["expiration"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    assert timedelta(seconds=599) <= expires - signed_at <= timedelta(seconds=601)
    # SigV4 for POST: HMAC chain AWS4+secret -> date -> region -> s3 -> aws4_request, over the base64 policy.
    date, region, service, terminal = f["x-amz-credential"].split("/")[1:]
    assert (region, service, terminal) == ("eu-west-1", "s3", "aws4_request")
    k = ("AWS4" + settings["secret_access_key"]).encode()
    for part in (date, region, service, terminal):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    assert f["x-amz-signature"] == hmac.new(k, f["policy"].encode(), hashlib.sha256).hexdigest()
    assert "Content-Type" not in prefixed.fields
    assert ["starts-with", "$Content-Type", "image/"] in json.loads(
        base64.b64decode(prefixed.fields["policy"])
    )["conditions"]


# -- GCS: Google's conformance vectors, and an RSA check --------------------------------------

# From Google's storage conformance tests (postPolicyV4Tests in googleapis'
# v4 signing test data, Apache-2.0): the inputs and the expectedDecodedPolicy.
# Here the policy document is compared byte for byte and the signature is checked
# with a key of our own. Google publishes its test key beside the vectors
# (storage/v1/test_service_account.not-a-test.json in googleapis/conformance-tests);
# tests/unit/test_gcs_signing_vectors.py reproduces every published signature with it.
_EMAIL = "test-iam-credentials@test-project-id.iam.gserviceaccount.com"
_TAIL = (
    '{"x-goog-date":"20200123T043530Z"},{"x-goog-credential":"' + _EMAIL + "/20200123/auto/storage/"
    'goog4_request"},{"x-goog-algorithm":"GOOG4-RSA-SHA256"}],"expiration":"2020-01-23T04:35:40Z"}'
)
GOOGLE_VECTORS = [
    (  # "POST Policy Simple"
        "rsaposttest-1579902670-h3q7wvodjor6bc7y",
        "test-object",
        {},
        [],
        '{"conditions":[{"bucket":"rsaposttest-1579902670-h3q7wvodjor6bc7y"},{"key":"test-object"},' + _TAIL,
    ),
    (  # "POST Policy Within Content-Range"
        "rsaposttest-1579902672-lpd47iogn6hx4sle",
        "test-object",
        {},
        [["content-length-range", 246, 266]],
        '{"conditions":[["content-length-range",246,266],'
        '{"bucket":"rsaposttest-1579902672-lpd47iogn6hx4sle"},{"key":"test-object"},' + _TAIL,
    ),
    (  # "POST Policy Cache-Control File Header"
        "rsaposttest-1579902669-nwk5s7vvfjgdjs62",
        "test-object",
        {"acl": "public-read", "cache-control": "public,max-age=86400"},
        [],
        '{"conditions":[{"acl":"public-read"},{"cache-control":"public,max-age=86400"},'
        '{"bucket":"rsaposttest-1579902669-nwk5s7vvfjgdjs62"},{"key":"test-object"},' + _TAIL,
    ),
    (  # "POST Policy Character Escaping"
        "rsaposttest-1579902671-6ldm6caw4se52vrx",
        "$test-object-\u00e9",
        {
            "success_action_redirect": "http://www.google.com/",
            "x-goog-meta-custom-1": "$test-object-\u00e9-metadata",
        },
        [],
        '{"conditions":[{"success_action_redirect":"http://www.google.com/"},'
        '{"x-goog-meta-custom-1":"$test-object-\\u00e9-metadata"},'
        '{"bucket":"rsaposttest-1579902671-6ldm6caw4se52vrx"},{"key":"$test-object-\\u00e9"},' + _TAIL,
    ),
]


@pytest.mark.parametrize(("bucket", "key", "fields", "conditions", "expected"), GOOGLE_VECTORS)
def test_gcs_policy_document_matches_googles_vectors(
    bucket: str, key: str, fields: dict[str, str], conditions: list[Any], expected: str
) -> None:
    now = datetime(2020, 1, 23, 4, 35, 30, tzinfo=UTC)
    form, text = policy_document(
        bucket, key, fields, conditions, now=now, ttl=timedelta(seconds=10), client_email=_EMAIL
    )
    assert text == expected
    assert form["policy"] == base64.b64encode(expected.encode()).decode()
    assert form == {
        "key": key,
        **fields,
        "x-goog-algorithm": "GOOG4-RSA-SHA256",
        "x-goog-credential": f"{_EMAIL}/20200123/auto/storage/goog4_request",
        "x-goog-date": "20200123T043530Z",
        "policy": form["policy"],
    }


@pytest.fixture(scope="module")
def rsa_key() -> tuple[str, rsa.RSAPublicKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, key.public_key()


async def test_gcs_form_is_signed_over_the_base64_policy(rsa_key: tuple[str, rsa.RSAPublicKey]) -> None:
    pem, public = rsa_key
    policy = PostPolicy(
        ttl=timedelta(minutes=5),
        min_size=1,
        max_size=1000,
        content_type_prefix="image/",
        metadata={"who": "me"},
    )
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    form = await sign_post_v4(
        base_url="https://storage.googleapis.com",
        bucket="my-bucket",
        key="app/a b.png",
        policy=policy,
        client_email="signer@p.iam.gserviceaccount.com",
        signer=pem_signer(pem),
        now=now,
    )
    assert form.url == "https://storage.googleapis.com/my-bucket"
    f = form.fields
    public.verify(
        bytes.fromhex(f["x-goog-signature"]), f["policy"].encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    document = json.loads(base64.b64decode(f["policy"]))
    assert document["expiration"] == "2026-03-04T05:11:07Z"
    assert document["conditions"] == [
        ["content-length-range", 1, 1000],
        ["starts-with", "$Content-Type", "image/"],
        {"x-goog-meta-who": "me"},
        {"bucket": "my-bucket"},
        {"key": "app/a b.png"},
        {"x-goog-date": "20260304T050607Z"},
        {"x-goog-credential": "signer@p.iam.gserviceaccount.com/20260304/auto/storage/goog4_request"},
        {"x-goog-algorithm": "GOOG4-RSA-SHA256"},
    ]
    assert (f["key"], f["x-goog-meta-who"]) == ("app/a b.png", "me") and "Content-Type" not in f
    tampered = base64.b64encode(base64.b64decode(f["policy"]).replace(b"1000", b"9999")).decode()
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        public.verify(
            bytes.fromhex(f["x-goog-signature"]), tampered.encode(), padding.PKCS1v15(), hashes.SHA256()
        )


async def test_gcs_signed_put_signs_the_content_type_header(rsa_key: tuple[str, rsa.RSAPublicKey]) -> None:
    pem, public = rsa_key
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    url = await sign_v4(
        base_url="https://storage.googleapis.com",
        bucket="b",
        key="dir/x y.csv",
        method="PUT",
        ttl=timedelta(seconds=60),
        client_email="s@p.iam.gserviceaccount.com",
        signer=pem_signer(pem),
        content_type="text/csv",
        now=now,
    )
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    signature = query.pop("X-Goog-Signature")
    assert query["X-Goog-SignedHeaders"] == "content-type;host"
    # Google's canonical request, rebuilt from the URL alone and the header a client must send.
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical = "\n".join(
        [
            "PUT",
            "/b/dir/x%20y.csv",
            canonical_query,
            "content-type:text/csv\nhost:storage.googleapis.com\n",
            "content-type;host",
            "UNSIGNED-PAYLOAD",
        ]
    )
    to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            "20260304T050607Z",
            "20260304/auto/storage/goog4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    public.verify(bytes.fromhex(signature), to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())


# -- the dev server's signing, offline ------------------------------------------------------


def test_local_urls_without_extras_sign_what_they_signed_before() -> None:
    secret = b"k" * 64
    old = "\n".join(["AIOBUCKET-HMAC-SHA256", "PUT", "b", "pp/k", "", "1700000000"]).encode()
    assert _signing.sign(secret, "PUT", "b", "pp/k", None, 1700000000) == (
        hmac.new(secret, old, hashlib.sha256).hexdigest()
    )
    with_type = _signing.sign(secret, "PUT", "b", "pp/k", None, 1700000000, "text/csv")
    assert with_type != _signing.sign(secret, "PUT", "b", "pp/k", None, 1700000000)
    url = _signing.signed_url("http://h", secret, "PUT", "b", "pp/k", None, 60, content_type="text/csv",
                              content_length=5, now=1700000000)  # fmt: skip
    q = dict(parse_qsl(urlsplit(url).query))
    assert (q["content_type"], q["content_length"]) == ("text/csv", "5")
    check = dict(content_type=q["content_type"], content_length=q["content_length"], now=1700000001)
    assert _signing.verify(secret, "PUT", "b", "pp/k", None, q["expires"], q["signature"], **check) is None
    check["content_length"] = "6"
    assert _signing.verify(secret, "PUT", "b", "pp/k", None, q["expires"], q["signature"], **check) == (
        "signature mismatch"
    )


def test_local_form_policy_is_verified_and_expires() -> None:
    secret = b"s" * 64
    policy = PostPolicy(ttl=timedelta(seconds=30), max_size=5, content_type="text/plain", metadata={"a": "b"})
    form = _signing.signed_form("http://h:1", secret, "bkt", "pp/k.txt", policy, now=1700000000)
    assert form.url == "http://h:1/upload/bkt"
    assert set(form.fields) == {"key", "Content-Type", "policy", "signature"}
    doc, why = _signing.verify_form(secret, form.fields["policy"], form.fields["signature"], now=1700000029)
    assert why is None and doc is not None
    assert (doc["key"], doc["max_size"], doc["metadata"], doc["expires"]) == (
        "pp/k.txt",
        5,
        {"a": "b"},
        1700000030,
    )
    assert _signing.verify_form(secret, form.fields["policy"], form.fields["signature"], now=1700000031) == (
        None,
        "the form has expired",
    )
    assert _signing.verify_form(b"t" * 64, form.fields["policy"], form.fields["signature"], now=1700000000)[
        1
    ] == ("signature mismatch")
    assert _signing.verify_form(secret, None, None)[1] == "the form has no policy or no signature"
    far = PostPolicy(ttl=timedelta(days=30), max_size=5)
    form = _signing.signed_form("http://h:1", secret, "bkt", "k", far, now=1700000000)
    assert _signing.verify_form(secret, form.fields["policy"], form.fields["signature"], now=1700000000)[
        1
    ] == ("the expiry is too far in the future")


# -- the dev server's form handler on hostile input -------------------------------------------


@pytest.fixture
async def dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, Bucket, Path]]:
    """``aiobucket serve``'s app in-process on 127.0.0.1, serving local buckets ("up" has a key_prefix)."""
    from aiobucket.devserver._common import Registry
    from aiobucket.devserver._objects import make_app

    root = tmp_path / "up"
    with config.override({"up": {"url": root.as_uri(), "key_prefix": "pp/", "part_size": 256 * 1024}}):
        runner = web.AppRunner(make_app(Registry()), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            base = f"http://{host}:{port}"
            monkeypatch.setenv("AIOBUCKET_DEV_SERVER", base)
            yield base, Bucket("up"), root
        finally:
            await runner.cleanup()
            await aiobucket.aclose()


def multipart(parts: list[tuple[str, bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, value in parts:
        disposition = f'form-data; name="{name}"' + ('; filename="f.bin"' if name == "file" else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def send(
    url: str, body: bytes, content_type: str = "multipart/form-data; boundary=XyZ"
) -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_dev_server_form_rules(dev: tuple[str, Bucket, Path]) -> None:
    base, bucket, _ = dev
    form = await bucket.signed_upload_form("a.txt", max_size=100)
    fields = [(k, v.encode()) for k, v in form.fields.items()]
    assert form.url == f"{base}/upload/up" and form.fields["key"] == "pp/a.txt"

    assert (await send(form.url, multipart(fields)))[0] == 400  # no file
    status, text = await send(form.url, multipart([*fields, ("acl", b"public-read"), ("file", b"x")]))
    assert status == 403 and "['acl']" in text  # a field the policy does not allow
    status, text = await send(form.url, multipart([*fields, ("key", b"pp/a.txt"), ("file", b"x")]))
    assert status == 400 and "repeated" in text
    assert (await send(form.url, b"key=a", "application/x-www-form-urlencoded"))[0] == 400
    assert (await send(f"{base}/upload/Not-A-Bucket", multipart([*fields, ("file", b"x")])))[0] == 404
    async with aiohttp.ClientSession() as session, session.get(form.url) as resp:
        assert resp.status == 405
    assert not await bucket.exists("a.txt")

    # Fields after the file are ignored, as S3 ignores them; the upload stands.
    status, text = await send(form.url, multipart([*fields, ("file", b"hello"), ("acl", b"x")]))
    assert status == 204, text
    assert await bucket.download("a.txt").read() == b"hello"
    assert (await bucket.attrs("a.txt")).content_type == "text/plain"


async def test_dev_server_a_cut_upload_stores_nothing(
    dev: tuple[str, Bucket, Path], caplog: pytest.LogCaptureFixture
) -> None:
    from webapp_harness import eventually

    _, bucket, root = dev
    form = await bucket.signed_upload_form("cut.bin", max_size=10 * 1024 * 1024)
    head = multipart([(k, v.encode()) for k, v in form.fields.items()]).rsplit(b"--XyZ--", 1)[0]
    head += b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
    url = urlsplit(form.url)
    assert url.hostname is not None and url.port is not None
    length = len(head) + 5_000_000
    request = f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {length}\r\n"
    request += "Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n"
    tmp = root / "tmp"
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall(request.encode() + head + b"x" * 1_000_000)  # a fifth of the file (parts of 256 KiB) ...
        await eventually(lambda: tmp.is_dir() and any(tmp.iterdir()), "the upload started writing parts")
    # ... then the connection is gone: the upload is aborted and its tmp file removed.
    await eventually(lambda: not any(tmp.iterdir()), "the partial upload's tmp file was removed")
    assert not await bucket.exists("cut.bin")
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "the server logged an error"


async def test_dev_server_signed_put_without_length_is_refused(dev: tuple[str, Bucket, Path]) -> None:
    _, bucket, _ = dev
    url = await bucket.signed_upload_url("k.bin", content_length=3)

    async def chunked() -> AsyncIterator[bytes]:
        yield b"abc"

    async with aiohttp.ClientSession() as session:
        async with session.put(url, data=chunked()) as resp:  # chunked: no Content-Length
            assert resp.status == 403 and "Content-Length: 3" in await resp.text()
        async with session.put(url, data=b"abc") as resp:
            assert resp.status == 200
    assert await bucket.download("k.bin").read() == b"abc"


# -- infra --format cors --------------------------------------------------------------------


def test_cors_for_the_sample_app() -> None:
    with config.override({"exports": "s3://acme-exports", "logs": "gs://acme-logs"}):
        rules = infra.cors(infra.analyse(SAMPLE), ["https://app.example.com"])
    # exports: SignedDownloader; logs: ReadWriter (signs both ways); avatars: PublicURLer,
    # not configured here, so both clouds under its own name. invoices needs no CORS.
    assert sorted(rules) == ["gs://acme-logs", "gs://avatars", "s3://acme-exports", "s3://avatars"]
    s3 = rules["s3://acme-exports"]
    assert s3["buckets"] == ["exports"]
    assert (
        s3["command"]
        == "aws s3api put-bucket-cors --bucket acme-exports --cors-configuration file://cors.json"
    )
    (rule,) = s3["configuration"]["CORSRules"]
    assert rule["AllowedOrigins"] == ["https://app.example.com"]
    assert rule["AllowedMethods"] == ["GET", "HEAD"]
    assert "Content-Type" in rule["AllowedHeaders"] and "ETag" in rule["ExposeHeaders"]
    gcs = rules["gs://acme-logs"]
    assert gcs["command"] == "gsutil cors set cors.json gs://acme-logs"
    (entry,) = gcs["configuration"]
    assert entry["method"] == ["GET", "HEAD", "POST", "PUT"] and entry["origin"] == [
        "https://app.example.com"
    ]
    assert {"Content-Type", "ETag"} <= set(entry["responseHeader"]) and entry["maxAgeSeconds"] == 3600
    assert "x-goog-if-generation-match" in entry["responseHeader"]  # create-only signed PUTs


def test_cli_prints_cors(tmp_path: Path) -> None:
    from test_infra import cli

    cfg = tmp_path / "aiobucket.toml"
    cfg.write_text('[buckets]\nuploads = "s3://acme-uploads"\n')
    proc = cli(
        "infra", str(EXAMPLE.parent), "--format", "cors", "--origin", "http://127.0.0.1:8000", config=cfg
    )
    assert proc.returncode == 0, proc.stderr
    rules = json.loads(proc.stdout)
    uploads = rules["s3://acme-uploads"]
    assert uploads["buckets"] == ["uploads"]
    assert uploads["configuration"]["CORSRules"][0]["AllowedMethods"] == ["POST", "PUT"]
    assert uploads["configuration"]["CORSRules"][0]["AllowedOrigins"] == ["http://127.0.0.1:8000"]


# -- the example app ----------------------------------------------------------------------


async def test_example_app_hands_out_a_form_the_dev_server_takes(
    dev: tuple[str, Bucket, Path], tmp_path: Path
) -> None:
    spec = importlib.util.spec_from_file_location("upload_form_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with config.override({"uploads": (tmp_path / "uploads").as_uri()}):
        runner = web.AppRunner(module.create_app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://{host}:{port}/") as resp:
                    assert resp.status == 200 and "new FormData()" in await resp.text()
                async with session.post(f"http://{host}:{port}/upload-form") as resp:
                    form = await resp.json()
                body = aiohttp.FormData()
                for name, value in form["fields"].items():
                    body.add_field(name, value)
                body.add_field("Content-Type", "image/gif")
                body.add_field("file", b"GIF89a", filename="a.gif", content_type="image/gif")
                async with session.post(form["url"], data=body) as resp:
                    assert resp.status == 204, await resp.text()
            attrs = await Bucket("uploads").attrs(form["key"])
            assert (attrs.size, attrs.content_type, dict(attrs.metadata)) == (
                6,
                "image/gif",
                {"source": "browser"},
            )
        finally:
            await runner.cleanup()


# -- the real ``aiobucket serve``: big form uploads stream with bounded memory -----------------


def _streamed_form(form: UploadForm, size: int, block: bytes) -> aiohttp.MultipartWriter:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    writer = aiohttp.MultipartWriter("form-data")
    for name, value in form.fields.items():
        writer.append(value).set_content_disposition("form-data", name=name)
    part = writer.append(aiohttp.payload.AsyncIterablePayload(body()))
    part.set_content_disposition("form-data", name="file", filename="big.bin")
    return writer


async def test_big_form_uploads_stream_through_the_dev_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_devserver import Server, write_config

    cfg = write_config(tmp_path)
    server = Server(tmp_path)
    try:
        monkeypatch.setenv("AIOBUCKET_CONFIG", str(cfg))
        monkeypatch.setenv("AIOBUCKET_DEV_SERVER", server.wait_listening())
        config.reset()
        size, block = 96 * 1024 * 1024, bytes(range(256)) * 4096  # 1 MiB blocks
        bucket = Bucket("priv")
        rss_before = server.status("VmRSS")
        async with aiohttp.ClientSession() as session:
            form = await bucket.signed_upload_form("big.bin", max_size=size)
            async with session.post(form.url, data=_streamed_form(form, size, block)) as resp:
                assert resp.status == 204, await resp.text()
            small = await bucket.signed_upload_form("over.bin", max_size=1024 * 1024)
            async with session.post(small.url, data=_streamed_form(small, size, block)) as resp:
                assert resp.status == 400 and "TooLarge" in await resp.text()
        growth = server.status("VmHWM") - rss_before
        print(f"dev server peak RSS growth over two 96 MiB form uploads: {growth / 2**20:.1f} MiB")
        assert growth < 48 * 1024 * 1024, f"the server's peak RSS grew by {growth / 2**20:.0f} MiB"
        assert (await bucket.attrs("big.bin")).size == size
        assert not await bucket.exists("over.bin")
        await aiobucket.aclose()
    finally:
        rc = server.stop()
        config.reset()
        log = server.log()
    assert rc == 0 and "Traceback" not in log and "Error handling request" not in log, log


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("options", "message"),
    [({"provider": "b2"}, "conditional_put"), ({"conditional_put": "precheck"}, "If-None-Match")],
)
async def test_create_only_urls_need_a_store_that_refuses_by_if_none_match(
    options: dict[str, str], message: str
) -> None:
    """A store whose profile does not refuse a PUT by If-None-Match (none, or only after
    aiobucket's own HEAD, which a stranger's PUT never makes) gets no create-only URL:
    NotSupported before anything is signed. No request is sent (a closed port)."""
    from aiobucket import Bucket, NotSupported, Preconditions, config

    settings = {
        "url": "s3://acme-up?region=us-east-1&endpoint=http://127.0.0.1:9",
        "access_key_id": "AKIDEXAMPLE", "secret_access_key": "not-a-secret", **options,
    }  # fmt: skip
    with config.override({"up": settings}), pytest.raises(NotSupported, match=message):
        await Bucket("up").signed_upload_url("k", preconditions=Preconditions(not_exists=True))
