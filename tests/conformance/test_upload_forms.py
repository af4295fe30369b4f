"""Browser upload forms and signed-PUT extras, on every backend, over real sockets.

Each form is POSTed by aiohttp as ``multipart/form-data`` (the fields, then the
file), the way a browser's FormData is. On the local backend the form goes to an
``aiobucket serve`` app started in-process on 127.0.0.1 (the browser test runs the
real command). Backends without forms (memory) must raise NotSupported, as their
capabilities declare; servers that do not check policies declare a quirk.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from aiobucket import Bucket, InvalidArgument, NotSupported, Preconditions, UploadForm
from conformance.conftest import get, payload, put

pytestmark = pytest.mark.anyio


@dataclass
class Poster:
    session: aiohttp.ClientSession

    async def post(
        self, form: UploadForm, data: bytes, *, fields: dict[str, str] | None = None, filename: str = "f.bin"
    ) -> tuple[int, str]:
        """POST the form's fields (or ``fields``), then the file last, as a browser does."""
        body = aiohttp.FormData()
        for name, value in (form.fields if fields is None else fields).items():
            body.add_field(name, value)
        body.add_field("file", data, filename=filename, content_type="application/x-anything")
        async with self.session.post(form.url, data=body) as resp:
            return resp.status, await resp.text()

    async def put(self, url: str, data: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async with self.session.put(url, data=data, headers=headers) as resp:
            return resp.status, await resp.text()


@pytest.fixture
async def poster(backend, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Poster]:
    """An HTTP client; for the local backend also the dev server, in-process on a free port."""
    runner = None
    if backend.name == "local":
        from aiobucket.devserver._common import Registry
        from aiobucket.devserver._objects import make_app

        runner = web.AppRunner(make_app(Registry()), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        monkeypatch.setenv("AIOBUCKET_DEV_SERVER", f"http://{host}:{port}")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            yield Poster(session)
    finally:
        if runner is not None:
            await runner.cleanup()


async def form_for(backend, b: Bucket, key: str, **kw: object) -> UploadForm | None:
    """The form, or None after checking that a backend without forms says NotSupported."""
    if backend.supports(b).signed_forms:
        return await b.signed_upload_form(key, **kw)  # type: ignore[arg-type]
    with pytest.raises(NotSupported):
        await b.signed_upload_form(key, **kw)  # type: ignore[arg-type]
    return None


async def test_form_capability_is_declared_both_ways(backend, poster):
    b = backend.bucket()
    form = await form_for(backend, b, "k.txt", max_size=10)
    if form is not None:
        assert form.url.startswith("http") and form.fields["key"].endswith("k.txt")
        assert form.fields["Content-Type"] == "text/plain"  # guessed from the key, as upload() does
        assert form.to_json() == {"url": form.url, "fields": dict(form.fields)}


async def test_in_limit_file_is_stored_with_type_and_metadata(backend, poster):
    b = backend.bucket()
    kw = {"max_size": 1000, "min_size": 10, "metadata": {"who": "tester"}}
    form = await form_for(backend, b, "up/photo.png", **kw)
    if form is None:
        return
    data = payload(1000, seed=3)  # exactly max_size: the range is inclusive
    status, text = await poster.post(form, data)
    assert 200 <= status < 300, text
    assert await get(b, "up/photo.png") == data
    attrs = await b.attrs("up/photo.png")
    assert attrs.size == 1000 and attrs.content_type == "image/png"
    assert dict(attrs.metadata) == {"who": "tester"}
    small = await b.signed_upload_form("up/small.png", max_size=1000, min_size=10)
    status, text = await poster.post(small, data[:10])  # exactly min_size
    assert 200 <= status < 300, text
    assert await get(b, "up/small.png") == data[:10]


@pytest.mark.quirk("gcs_post_policy_unchecked")
@pytest.mark.quirk("moto_signatures_unchecked")
async def test_over_and_under_limit_files_are_refused_and_nothing_stored(backend, poster):
    b = backend.bucket()
    form = await form_for(backend, b, "big.bin", max_size=1000, min_size=10)
    if form is None:
        return
    status, text = await poster.post(form, payload(1001))
    assert status == 400, (status, text)
    assert "TooLarge" in text
    status, text = await poster.post(form, payload(9))
    assert status == 400, (status, text)
    assert "TooSmall" in text
    assert not await b.exists("big.bin")


@pytest.mark.quirk("gcs_post_policy_unchecked")
@pytest.mark.quirk("moto_signatures_unchecked")
async def test_expired_form_is_refused(backend, poster):
    b = backend.bucket()
    form = await form_for(backend, b, "late.bin", max_size=100, ttl=1)
    if form is None:
        return
    await asyncio.sleep(2.5)  # expiries have one-second resolution; this is past any rounding
    status, text = await poster.post(form, b"too late")
    assert status == 403, (status, text)
    assert not await b.exists("late.bin")


@pytest.mark.quirk("gcs_post_policy_unchecked")
@pytest.mark.quirk("moto_signatures_unchecked")
@pytest.mark.quirk("post_policy_unchecked")
async def test_tampered_forms_are_refused(backend, poster):
    b = backend.bucket()
    form = await form_for(backend, b, "t/k.bin", max_size=987654)
    if form is None:
        return
    fields = dict(form.fields)
    # A ten times bigger limit in the policy document (every backend writes max_size as is).
    document = base64.b64decode(fields["policy"])
    assert document.count(b"987654") == 1
    raised = {**fields, "policy": base64.b64encode(document.replace(b"987654", b"9876540")).decode()}
    status, text = await poster.post(form, payload(990_000), fields=raised)
    assert status == 403, (status, text)
    # Another key with the same policy.
    status, text = await poster.post(form, b"elsewhere", fields={**fields, "key": fields["key"] + "2"})
    assert status == 403, (status, text)
    # A signature that is not ours.
    name = next(n for n in fields if n.lower().endswith("signature"))
    sig = fields[name]
    flipped = {**fields, name: ("0" if sig[0] != "0" else "1") + sig[1:]}
    status, text = await poster.post(form, b"forged")
    assert 200 <= status < 300, text  # the untouched form works ...
    await b.remove("t/k.bin")
    status, text = await poster.post(form, b"forged", fields=flipped)
    assert status == 403, (status, text)  # ... and a flipped signature does not
    assert not await b.exists("t/k.bin") and not await b.exists("t/k.bin2")


async def test_content_type_prefix_takes_the_browsers_type(backend, poster):
    b = backend.bucket()
    form = await form_for(backend, b, "avatar", max_size=100, content_type_prefix="image/")
    if form is None:
        return
    assert "Content-Type" not in form.fields  # the browser adds it (file.type)
    status, text = await poster.post(
        form, b"webp bytes", fields={**form.fields, "Content-Type": "image/webp"}
    )
    assert 200 <= status < 300, text
    assert (await b.attrs("avatar")).content_type == "image/webp"


@pytest.mark.quirk("gcs_post_policy_unchecked")
@pytest.mark.quirk("moto_signatures_unchecked")
async def test_content_type_outside_the_prefix_is_refused(backend, poster):
    b = backend.bucket()
    form = await form_for(backend, b, "avatar", max_size=100, content_type_prefix="image/")
    if form is None:
        return
    status, text = await poster.post(form, b"<script>", fields={**form.fields, "Content-Type": "text/html"})
    assert status == 403, (status, text)
    exact = await b.signed_upload_form("doc.pdf", max_size=100)
    changed = {**exact.fields, "Content-Type": "text/html"}
    status, text = await poster.post(exact, b"<script>", fields=changed)
    assert status == 403, (status, text)
    assert not await b.exists("avatar") and not await b.exists("doc.pdf")


# -- signed PUT URLs that fix the Content-Type and the size --------------------------------


@pytest.mark.quirk("azure_sas_no_header_limits")
async def test_signed_put_with_the_signed_type_and_length_is_stored(backend, poster):
    b = backend.bucket()
    caps = backend.supports(b)
    if not caps.signed_urls:
        with pytest.raises(NotSupported):
            await b.signed_upload_url("k", content_type="text/plain")
        return
    length = 5 if caps.signed_url_length else None
    if not caps.signed_url_length:
        with pytest.raises(NotSupported, match="signed_upload_form"):
            await b.signed_upload_url("k.txt", content_type="text/plain", content_length=5)
    url = await b.signed_upload_url("k.txt", content_type="text/csv", content_length=length)
    status, text = await poster.put(url, b"a,b\n1", {"Content-Type": "text/csv"})
    assert status == 200, (status, text)
    attrs = await b.attrs("k.txt")
    assert (attrs.size, attrs.content_type) == (5, "text/csv")


@pytest.mark.quirk("gcs_signed_url_unchecked")
@pytest.mark.quirk("moto_signatures_unchecked")
@pytest.mark.quirk("azure_sas_no_header_limits")
async def test_signed_put_refuses_another_type_or_length(backend, poster):
    b = backend.bucket()
    caps = backend.supports(b)
    if not caps.signed_urls:
        with pytest.raises(NotSupported):
            await b.signed_upload_url("k", content_type="text/plain")
        return
    url = await b.signed_upload_url("k.txt", content_type="text/csv")
    status, text = await poster.put(url, b"a,b\n1", {"Content-Type": "text/html"})
    assert status == 403, (status, text)
    if caps.signed_url_length:
        url = await b.signed_upload_url("k.txt", content_type="text/csv", content_length=5)
        for data in (b"a,b\n12", b"a,b\n"):
            status, text = await poster.put(url, data, {"Content-Type": "text/csv"})
            assert status == 403, (status, text)
    assert not await b.exists("k.txt")


# -- create-only signed PUT URLs ---------------------------------------------------------

CREATE_ONLY = Preconditions(not_exists=True)


def create_only_headers(url: str) -> dict[str, str]:
    """What the uploader sends with a create-only signed PUT, as the README's table says:
    the header the URL signed (S3, GCS), or Azure's blob type (its SAS itself is create-only)."""
    if "X-Amz-Signature=" in url:
        return {"If-None-Match": "*"}
    if "X-Goog-Signature=" in url:
        return {"x-goog-if-generation-match": "0"}
    if "sig=" in url and "sp=c&" in url:  # If-None-Match: the check atomic with the write
        return {"x-ms-blob-type": "BlockBlob", "If-None-Match": "*"}
    assert "create_only=1" in url, url  # the dev server: signed into the query
    return {}


async def create_only_url(backend, b: Bucket, key: str) -> str | None:
    """The URL, or None after checking that a backend without signed URLs, or whose store
    would ignore If-None-Match (Capabilities.conditional_put), says NotSupported."""
    caps = backend.supports(b)
    if caps.signed_urls and caps.conditional_put:
        return await b.signed_upload_url(key, preconditions=CREATE_ONLY)
    with pytest.raises(NotSupported):
        await b.signed_upload_url(key, preconditions=CREATE_ONLY)
    return None


@pytest.mark.quirk("gcs_xml_put_ignores_preconditions")
async def test_create_only_signed_put_refuses_a_second_put(backend, poster):
    b = backend.bucket()
    url = await create_only_url(backend, b, "once.bin")
    if url is None:
        return
    headers = create_only_headers(url)
    status, text = await poster.put(url, b"first", headers)
    assert status in (200, 201), (status, text)
    refused = 403 if "sp=c&" in url else 412  # Azure: AuthorizationPermissionMismatch
    status, text = await poster.put(url, b"second", headers)
    assert status == refused, (status, text)
    assert await get(b, "once.bin") == b"first"
    # An object stored another way is not overwritten either.
    await put(b, "there.bin", b"kept")
    there = await b.signed_upload_url("there.bin", preconditions=CREATE_ONLY)
    status, text = await poster.put(there, b"x", headers)
    assert status == refused, (status, text)
    assert await get(b, "there.bin") == b"kept"


@pytest.mark.quirk("gcs_signed_url_unchecked")
async def test_create_only_signed_put_needs_its_header(backend, poster):
    """Where create-only is a signed header, a PUT that leaves it out is refused, so the
    holder of the URL cannot drop the condition. moto's quirk is asserted in the test, not
    as an xfail: behind the garage persona no URL is made at all (conditional_put=False)."""
    b = backend.bucket()
    await put(b, "k.bin", b"kept")
    url = await create_only_url(backend, b, "k.bin")
    if url is None:
        # The capability check: create_only_url asserted NotSupported before any I/O (no
        # signed URLs, or a store that ignores If-None-Match), and nothing was overwritten.
        assert await get(b, "k.bin") == b"kept"
        return
    headers = {k: v for k, v in create_only_headers(url).items() if k.lower() == "x-ms-blob-type"}
    status, text = await poster.put(url, b"overwrite", headers)
    if "moto_signatures_unchecked" in backend.quirks:
        # The quirk itself: moto checks no signed header, so the PUT overwrites.
        assert status == 200, (status, text)
        assert await get(b, "k.bin") == b"overwrite"
        return
    # The signature fails (Azure: the SAS grants no overwrite); the dev server needs no header.
    assert status == (412 if "create_only=1" in url else 403), (status, text)
    assert await get(b, "k.bin") == b"kept"


async def test_signed_url_preconditions_are_checked(backend):
    b = backend.bucket()
    with pytest.raises(NotSupported, match="if_match"):
        await b.signed_upload_url("k", preconditions=Preconditions(if_match="abc"))
    with pytest.raises(InvalidArgument, match="Preconditions"):
        await b.signed_upload_url("k", preconditions={"not_exists": True})  # type: ignore[arg-type]
