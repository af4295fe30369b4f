"""What each S3-compatible store honours: one frozen record per store, in one table.

Invariants:

* The rest of the S3 provider reads **fields** of a ``StoreProfile``; it never asks
  which store it talks to. A reviewer finds any store's behaviour in its record here.
* A profile comes from ``provider=`` or, when that is absent, from the endpoint's host
  (``infer``). An endpoint that names no known store is ``other``: conservative (no
  ``x-amz-checksum-*``, no full-object multipart checksum, preconditions refused) so
  that nothing is assumed that the store may silently ignore.
* Every field can be overridden by a bucket option of the same name (``apply``).
* What is learnt at runtime (a header group a store refused, a whole-object checksum
  refused at completion, a path-style refusal) updates the provider's own copy
  (``Learnt``), never this table and never a branch on the store's name.
* Never inferred from the absence of errors: that a store honours a precondition.

Sources: each field that differs from AWS carries its source in a comment: the
vendor's documentation, rclone's per-provider quirk file
(``rclone/backend/s3/provider/<Name>.yaml``), or the vendor's issue tracker. "Not
documented" means the vendor does not say, and the value is the safe one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Literal, get_args

from ...errors import InvalidArgument

__all__ = [
    "PROFILES",
    "PROVIDERS",
    "Addressing",
    "Conditional",
    "MultipartChecksum",
    "StoreProfile",
    "apply_overrides",
    "gcs_hint",
    "infer",
    "profile_for",
]

MiB = 1024 * 1024

Addressing = Literal["virtual", "path"]
Conditional = Literal["native", "precheck", "none"]
"""native: the store refuses atomically (412); precheck: aiobucket HEADs first and the
store may ignore the header (a race window remains); none: refused by aiobucket
(NotSupported) before any I/O."""
MultipartChecksum = Literal["full_object", "composite", "none"]


@dataclass(frozen=True, slots=True)
class StoreProfile:
    """What one S3-compatible store honours. Defaults are AWS S3's."""

    name: str
    addressing: Addressing = "virtual"
    """virtual: bucket.host; path: host/bucket (aiobucket uses path for buckets with dots)."""
    checksum_headers: bool = True
    """The store verifies and keeps ``x-amz-checksum-crc32c`` on PUT/UploadPart bodies."""
    checksum_mode: bool = True
    """``x-amz-checksum-mode: ENABLED`` on GET/HEAD is accepted and returns stored checksums."""
    multipart_checksum: MultipartChecksum = "full_object"
    """full_object: a FULL_OBJECT CRC32C is declared and checked at completion; composite:
    only a checksum of the parts' checksums is kept (parts still carry theirs); none: no
    multipart checksum headers at all."""
    conditional_put: Conditional = "native"
    """If-None-Match: * / If-Match on PutObject."""
    conditional_complete: Conditional = "native"
    """The same on CompleteMultipartUpload."""
    conditional_copy: Conditional = "native"
    """The same on CopyObject (the destination's conditions)."""
    copy_if_none_match_header: str = "if-none-match"
    """The header a conditional copy's not_exists goes in."""
    etag_md5: bool = True
    """A single-part, unencrypted object's ETag is the MD5 of its bytes."""
    etag_upper: bool = False
    """ETags come back in upper-case hex (compare them case-insensitively)."""
    bulk_delete: bool = True
    """DeleteObjects (POST ?delete)."""
    part_copy: bool = True
    """UploadPartCopy (multipart server-side copies above 5 GiB)."""
    part_copy_if_match: bool = True
    """``x-amz-copy-source-if-match`` on UploadPartCopy (else the source is pinned by a HEAD)."""
    versions: bool = True
    """ListObjectVersions and versionId on reads."""
    version_markers: bool = True
    """A truncated version page carries NextKeyMarker (else aiobucket continues from the last entry)."""
    post_forms: bool = True
    """POST object with a SigV4 policy (browser upload forms)."""
    max_parts: int = 10_000
    min_part_size: int = 5 * MiB


_AWS = "https://docs.aws.amazon.com/AmazonS3/latest/API/"

PROFILES: dict[str, StoreProfile] = {
    # AWS S3: the reference. Conditional writes: PutObject / CompleteMultipartUpload
    # (_AWS API_PutObject.html, API_CompleteMultipartUpload.html), CopyObject's
    # If-Match / If-None-Match (API_CopyObject.html); FULL_OBJECT CRC32C multipart
    # checksums (AmazonS3/latest/userguide/checking-object-integrity.html).
    "aws": StoreProfile("aws"),
    # Cloudflare R2 (developers.cloudflare.com/r2/api/s3/api/ and .../extensions/).
    "r2": StoreProfile(
        "r2",
        addressing="path",  # rclone Cloudflare.yaml: force_path_style: true
        # R2's S3 API page lists x-amz-checksum-* on PutObject/UploadPart; it documents
        # no FULL_OBJECT multipart type: composite (multipart ETags random, rclone
        # Cloudflare.yaml use_multipart_etag: false).
        multipart_checksum="composite",
        conditional_complete="precheck",  # not documented for CompleteMultipartUpload
        # R2's extension header (object_store aws/precondition.rs S3CopyIfNotExists::Header
        # with "cf-copy-destination-if-none-match"); If-Match on copy is not documented.
        conditional_copy="native",
        copy_if_none_match_header="cf-copy-destination-if-none-match",
        versions=False,  # R2 has no object versioning (api/s3/api/: ListObjectVersions absent)
        post_forms=False,  # R2's S3 API page: "PostObject" not implemented
    ),
    # Backblaze B2's S3 API (backblaze.com/docs/cloud-storage-s3-compatible-api).
    "b2": StoreProfile(
        "b2",
        # B2 answered 400 InvalidArgument to x-amz-checksum-* and x-amz-checksum-mode
        # (rclone issue #7844, boto3 1.36 "new checksum defaults" reports); a fix was
        # reported in 2025: left off until a doctor run says otherwise.
        checksum_headers=False,
        checksum_mode=False,
        multipart_checksum="none",
        conditional_put="none",  # not documented by B2's S3 API
        conditional_complete="none",
        conditional_copy="none",
        post_forms=False,  # B2's S3-compatible API docs list no POST object
    ),
    # Google Cloud Storage's XML (S3) interface (cloud.google.com/storage/docs/interoperability).
    "gcs": StoreProfile(
        "gcs",
        checksum_headers=False,  # x-goog-hash, not x-amz-checksum-*: ignored
        checksum_mode=False,
        multipart_checksum="none",
        # The XML API's preconditions are x-goog-if-generation-match; If-None-Match /
        # If-Match on writes are accepted and ignored (issue #20's survey): refused here.
        conditional_put="none",
        conditional_complete="none",
        conditional_copy="none",
        bulk_delete=False,  # the XML API has no multi-object delete
        part_copy=False,  # rclone GCS.yaml copy_cutoff: issuetracker.google.com/issues/323465186
        version_markers=False,  # truncated version pages without NextKeyMarker (issue #20)
        post_forms=False,  # use the native gs:// provider for forms (V4 POST policy)
    ),
    # MinIO, current releases (min.io/docs/minio/linux/developers/s3-compatible-api.html).
    # Conditional PutObject since RELEASE.2023-02 and on completion since mid-2024;
    # FULL_OBJECT multipart checksums since RELEASE.2025-01-18 (older ones refuse them:
    # the runtime fallback records "composite"). Older servers: override or run doctor.
    "minio": StoreProfile("minio", addressing="path"),  # rclone Minio.yaml: path style
    # Ceph RGW (docs.ceph.com/en/latest/radosgw/s3/): the values of RGW 16 (Pacific), which
    # the tests run; Reef 18.2+ verifies checksums (override checksum_headers=true).
    "ceph": StoreProfile(
        "ceph",
        addressing="path",  # rclone Ceph.yaml: force_path_style (endpoint without wildcard DNS)
        checksum_headers=False,  # RGW 16 ignores x-amz-checksum-* (verified in our tests)
        checksum_mode=False,
        multipart_checksum="none",  # RGW 16 keeps no multipart checksum (verified in our tests)
        conditional_complete="precheck",  # RGW 16 ignores If-None-Match on completion (tests)
        conditional_copy="precheck",  # RGW 16 ignores them on CopyObject (tests)
    ),
    # SeaweedFS (github.com/seaweedfs/seaweedfs/wiki/Amazon-S3-API); 4.x verified in our tests.
    "seaweedfs": StoreProfile("seaweedfs", addressing="path"),  # rclone SeaweedFS.yaml
    # Garage (garagehq.deuxfleurs.fr/documentation/reference-manual/s3-compatibility/).
    "garage": StoreProfile(
        "garage",
        addressing="path",
        # Garage 1.0 verifies x-amz-checksum-* but keeps only COMPOSITE multipart ones
        # (git.deuxfleurs.fr/Deuxfleurs/garage issue #934 / 1.0 release notes).
        multipart_checksum="composite",
        # Its compatibility page marks If-Match/If-None-Match on writes unsupported:
        # accepted and ignored.
        conditional_put="none",
        conditional_complete="none",
        conditional_copy="none",
        versions=False,  # "ListObjectVersions: not implemented" on the same page
    ),
    # Wasabi (docs.wasabi.com, "Wasabi S3 API reference"): conditional writes and the
    # new checksums are not documented; rclone Wasabi.yaml has no quirks.
    "wasabi": StoreProfile(
        "wasabi",
        checksum_headers=False,
        checksum_mode=False,
        multipart_checksum="none",
        conditional_put="none",
        conditional_complete="none",
        conditional_copy="none",
    ),
    # DigitalOcean Spaces (docs.digitalocean.com/reference/api/spaces/): the same.
    "spaces": StoreProfile(
        "spaces",
        checksum_headers=False,
        checksum_mode=False,
        multipart_checksum="none",
        conditional_put="none",
        conditional_complete="none",
        conditional_copy="none",
    ),
    # Alibaba Cloud OSS (alibabacloud.com/help/en/oss/developer-reference/compatibility-with-amazon-s3).
    "oss": StoreProfile(
        "oss",
        addressing="virtual",  # path style refused: 403 SecondLevelDomainForbidden (OSS error codes)
        checksum_headers=False,  # OSS checks x-oss-hash-crc64ecma, not x-amz-checksum-*
        checksum_mode=False,
        multipart_checksum="none",  # rclone Alibaba.yaml use_multipart_etag: false
        conditional_put="none",  # OSS has x-oss-forbid-overwrite, not If-None-Match
        conditional_complete="none",
        conditional_copy="none",
        etag_upper=True,  # OSS ETags are upper-case hex MD5s
        post_forms=False,  # OSS PostObject takes its own policy format
    ),
    # Scaleway Object Storage (scaleway.com/en/docs/object-storage/api-cli/).
    "scaleway": StoreProfile(
        "scaleway",
        checksum_headers=False,
        checksum_mode=False,
        multipart_checksum="none",
        conditional_put="none",
        conditional_complete="none",
        conditional_copy="none",
        max_parts=1000,  # rclone Scaleway.yaml max_upload_parts: 1000
    ),
    # Storj's S3 gateway (storj.dev/dcs/api/s3/s3-compatibility).
    "storj": StoreProfile(
        "storj",
        checksum_headers=False,
        checksum_mode=False,
        multipart_checksum="none",
        conditional_put="none",
        conditional_complete="none",
        conditional_copy="none",
        part_copy=False,  # rclone Storj.yaml copy_cutoff: github.com/storj/roadmap/issues/40
        versions=False,  # not in the compatibility table's supported list
        post_forms=False,
    ),
    # Tigris (tigrisdata.com/docs/api/s3/): conditional PUT documented
    # ("Conditional operations" page); checksums and forms are not.
    "tigris": StoreProfile(
        "tigris",
        checksum_headers=False,
        checksum_mode=False,
        multipart_checksum="none",
        conditional_complete="precheck",
        conditional_copy="precheck",
        versions=False,
        post_forms=False,
    ),
    # Any other endpoint: assume nothing the store may silently ignore (issue #20 item 3).
    "other": StoreProfile(
        "other",
        addressing="path",  # rclone Other.yaml: force_path_style: true
        checksum_headers=False,
        checksum_mode=False,
        multipart_checksum="none",
        conditional_put="none",
        conditional_complete="none",
        conditional_copy="none",
    ),
}

PROVIDERS = tuple(PROFILES)

_HOSTS: tuple[tuple[str, str], ...] = (
    ("amazonaws.com", "aws"),
    ("amazonaws.com.cn", "aws"),
    ("r2.cloudflarestorage.com", "r2"),
    ("backblazeb2.com", "b2"),
    ("storage.googleapis.com", "gcs"),
    ("aliyuncs.com", "oss"),
    ("wasabisys.com", "wasabi"),
    ("digitaloceanspaces.com", "spaces"),
    ("scw.cloud", "scaleway"),
    ("storjshare.io", "storj"),
    ("tigris.dev", "tigris"),
)
"""Host suffixes of the stores' public endpoints (each vendor's endpoint list)."""


def infer(endpoint: str | None) -> str:
    """The store an endpoint's host names; no endpoint is AWS, an unknown host ``other``."""
    if endpoint is None:
        return "aws"
    host = endpoint.partition("://")[2].split("/", 1)[0].rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    host = host.lower().rstrip(".")
    for suffix, name in _HOSTS:
        if host == suffix or host.endswith("." + suffix):
            return name
    return "other"


def gcs_hint(endpoint: str | None) -> str:
    """A pointer to the native provider for a GCS endpoint (empty otherwise)."""
    if endpoint is not None and infer(endpoint) == "gcs":
        return " (this endpoint is Google Cloud Storage: the native gs://BUCKET provider has all of it)"
    return ""


_FIELDS = {f.name: f for f in fields(StoreProfile) if f.name != "name"}
OVERRIDES = tuple(_FIELDS)
"""Bucket option names that override a profile field of the same name."""


def _choices(name: str) -> tuple[str, ...] | None:
    kind = {"addressing": Addressing, "multipart_checksum": MultipartChecksum}.get(name)
    if name.startswith("conditional_"):
        kind = Conditional
    return get_args(kind) if kind is not None else None


def _parse(name: str, value: object, where: str) -> object:
    choices = _choices(name)
    default = _FIELDS[name].default
    if choices is not None:
        if value not in choices:
            raise InvalidArgument(f"{where}: {name} must be one of {', '.join(choices)}, got {value!r}")
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise InvalidArgument(f"{where}: {name} must be true or false, got {value!r}")
    if isinstance(default, int):
        try:
            n = int(str(value)) if not isinstance(value, bool) else -1
        except ValueError:
            n = -1
        if n <= 0:
            raise InvalidArgument(f"{where}: {name} must be a positive integer, got {value!r}")
        return n
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{where}: {name} must be a non-empty string, got {value!r}")
    return value.lower()


def apply_overrides(profile: StoreProfile, options: Mapping[str, object], where: str) -> StoreProfile:
    """The profile with each field named in ``options`` replaced (checked) by its value."""
    changes = {name: _parse(name, options[name], where) for name in OVERRIDES if name in options}
    return replace(profile, **changes) if changes else profile  # type: ignore[arg-type]


def profile_for(provider: object, endpoint: str | None, where: str) -> StoreProfile:
    """``provider=`` if given (checked), else the store the endpoint's host names."""
    if provider is None:
        return PROFILES[infer(endpoint)]
    name = str(provider).strip().lower()
    if name not in PROFILES:
        raise InvalidArgument(f"{where}: provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    return PROFILES[name]


def describe(profile: StoreProfile) -> dict[str, object]:
    """The profile as plain data (the doctor's and capabilities()'s view)."""
    return dataclasses.asdict(profile)
