"""Permission refs: a bucket narrowed to a Protocol, at runtime and for the type checker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Protocol

import pytest

import aiobucket
from aiobucket import (
    Attrser,
    Bucket,
    BucketRef,
    Downloader,
    InvalidArgument,
    Lister,
    PermissionDenied,
    PublicURLer,
    ReadWriter,
    Remover,
    SignedDownloader,
    SignedUploader,
    Uploader,
)
from aiobucket.testing import memory_buckets

ALL_METHODS = {
    "upload",
    "download",
    "list",
    "list_versions",
    "attrs",
    "exists",
    "remove",
    "signed_upload_url",
    "signed_download_url",
    "public_url",
}

bucket = Bucket("refs-bucket")


class AvatarStore(Downloader, Uploader, Protocol):
    """A combined permission, as the docs suggest."""


def _denied(ref: object, allowed: set[str]) -> None:
    for name in sorted(ALL_METHODS - allowed):
        with pytest.raises(PermissionDenied) as info:
            getattr(ref, name)
        assert f"{name}() is not permitted by this" in info.value.message
        assert info.value.bucket == "refs-bucket"
        assert isinstance(info.value, PermissionError)
    for name in allowed:
        assert getattr(ref, name) == getattr(bucket, name)


@pytest.mark.parametrize(
    ("perm", "allowed"),
    [
        (Downloader, {"download"}),
        (Uploader, {"upload"}),
        (Lister, {"list", "list_versions"}),
        (Attrser, {"attrs", "exists"}),
        (Remover, {"remove"}),
        (SignedUploader, {"signed_upload_url"}),
        (SignedDownloader, {"signed_download_url"}),
        (PublicURLer, {"public_url"}),
        (AvatarStore, {"download", "upload"}),
        (ReadWriter, ALL_METHODS - {"public_url"}),
    ],
)
def test_ref_permits_exactly_its_protocol(perm: type, allowed: set[str]) -> None:
    ref = bucket.ref(perm)
    assert isinstance(ref, BucketRef)
    assert ref.name == "refs-bucket"
    _denied(ref, allowed)


def test_downloader_ref_denies_upload_remove_list_with_a_hint() -> None:
    ref = bucket.ref(Downloader)
    for name in ("upload", "remove", "list"):
        with pytest.raises(PermissionDenied, match="take a ref with a Protocol that includes it"):
            getattr(ref, name)
    assert "Downloader" in repr(ref)


def test_unknown_and_private_attributes_are_attribute_errors() -> None:
    ref = bucket.ref(ReadWriter)
    with pytest.raises(AttributeError):
        ref.no_such_method  # noqa: B018
    with pytest.raises(AttributeError):
        ref._key  # noqa: B018
    with pytest.raises(AttributeError):
        ref.config  # noqa: B018  (data, not an operation)


class NotAProtocol:
    def download(self) -> None: ...


@pytest.mark.parametrize("perm", [int, str, NotAProtocol, Bucket, None, "Downloader", Protocol])
def test_non_protocol_argument_raises_invalid_argument(perm: object) -> None:
    with pytest.raises(InvalidArgument, match="ref\\(\\) takes a permission Protocol"):
        bucket.ref(perm)  # type: ignore[arg-type]


def test_protocol_with_methods_buckets_lack_is_rejected() -> None:
    class Weird(Downloader, Protocol):
        def frobnicate(self) -> None: ...

    with pytest.raises(
        InvalidArgument, match=r"Weird declares methods buckets do not have: \['frobnicate'\]"
    ):
        bucket.ref(Weird)


@pytest.mark.anyio
async def test_refs_do_real_work_on_the_memory_backend() -> None:
    with memory_buckets():
        writer = bucket.ref(Uploader)
        reader = bucket.ref(Downloader)
        both = bucket.ref(AvatarStore)
        async with writer.upload("a.txt") as w:
            await w.write(b"hello")
        async with reader.download("a.txt") as r:
            assert await r.read() == b"hello"
        async with both.upload("b.txt") as w:
            await w.write(b"bye")
        async with both.download("b.txt") as r:
            assert await r.read() == b"bye"
        rw = bucket.ref(ReadWriter)
        assert [e.name async for _, e in rw.list()] == ["a.txt", "b.txt"]
        await rw.remove("a.txt")
        assert not await rw.exists("a.txt")
        await aiobucket.aclose()


# -- the type checker sees the narrowing ------------------------------------------------------------

MYPY_SNIPPET = """
from typing import Protocol

from aiobucket import Bucket, Downloader, ReadWriter, Uploader

b = Bucket("x")
d = b.ref(Downloader)
reader = d.download("k")
reveal_type(reader)
d.upload("k")  # line 9: must be an error


class Both(Downloader, Uploader, Protocol): ...


both = b.ref(Both)
both.download("k")
both.upload("k")
rw = b.ref(ReadWriter)
rw.public_url("k")  # line 19: must be an error
"""


def test_mypy_rejects_upload_on_a_downloader_ref(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(MYPY_SNIPPET).lstrip("\n"))
    mypy = Path(sys.executable).parent / "mypy"
    src = Path(aiobucket.__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            str(mypy),
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--config-file",
            "",
            str(snippet),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"MYPYPATH": str(src), "PATH": "/usr/bin:/bin"},
        timeout=240,
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    lines = [line for line in out.splitlines() if line.startswith("snippet.py:")]
    assert 'snippet.py:8: note: Revealed type is "aiobucket.reader.Reader"' in lines
    assert 'snippet.py:9: error: "Downloader" has no attribute "upload"  [attr-defined]' in lines
    assert 'snippet.py:19: error: "ReadWriter" has no attribute "public_url"  [attr-defined]' in lines
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 2, out  # download on d, and both methods on Both, type-check
    assert "Found 2 errors in 1 file" in out
