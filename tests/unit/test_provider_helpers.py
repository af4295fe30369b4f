"""The checks and records in providers/base.py that memory and local share."""

from __future__ import annotations

from aiobucket.errors import ObjectNotFound
from aiobucket.providers.base import (
    CopyOptions,
    PutOptions,
    copy_put_options,
    new_object_attrs,
    not_found,
)
from aiobucket.types import ObjectAttrs, Preconditions

SOURCE = ObjectAttrs(
    name="src",
    size=3,
    etag="e",
    content_type="text/plain",
    cache_control="no-cache",
    content_disposition="inline",
    metadata={"a": "1"},
)


def test_a_copy_keeps_the_source_attributes_unless_replaced_and_always_its_preconditions() -> None:
    pre = Preconditions(not_exists=True)
    kept = copy_put_options(SOURCE, CopyOptions(preconditions=pre))
    assert kept == PutOptions(
        content_type="text/plain",
        cache_control="no-cache",
        content_disposition="inline",
        metadata={"a": "1"},
        preconditions=pre,
    )
    new = PutOptions(content_type="image/png", metadata={"b": "2"})
    replaced = copy_put_options(SOURCE, CopyOptions(replace=new, preconditions=pre))
    assert replaced == PutOptions(content_type="image/png", metadata={"b": "2"}, preconditions=pre)


def test_new_object_attrs_carry_the_write_and_a_version_only_when_versioned() -> None:
    opts = PutOptions(content_type="text/csv", cache_control="max-age=60", metadata={"k": "v"})
    plain = new_object_attrs("k", opts, size=5, md5="abc", crc32c="AAAAAA==", versioned=False)
    assert (plain.name, plain.size, plain.etag, plain.md5, plain.crc32c) == ("k", 5, "abc", "abc", "AAAAAA==")
    assert (plain.content_type, plain.cache_control, plain.metadata) == ("text/csv", "max-age=60", {"k": "v"})
    assert plain.version is None and plain.last_modified is not None
    first = new_object_attrs("k", opts, size=5, md5="abc", crc32c=None, versioned=True)
    second = new_object_attrs("k", opts, size=5, md5="abc", crc32c=None, versioned=True)
    assert first.version is not None and second.version is not None
    assert first.version < second.version  # sortable by creation


def test_not_found_names_the_object_or_the_version() -> None:
    err = not_found("k")
    assert isinstance(err, ObjectNotFound) and (err.key, err.version) == ("k", None)
    assert "object not found" in str(err)
    err = not_found("k", "v1")
    assert (err.key, err.version) == ("k", "v1") and "object version not found" in str(err)
