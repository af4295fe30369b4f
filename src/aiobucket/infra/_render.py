"""Rendering an ``aiobucket infra`` manifest: JSON, AWS IAM policies, a Mermaid flowchart,
and the bucket CORS configurations that browser uploads and downloads need."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from ._analysis import Manifest


def to_json(manifest: Manifest) -> dict[str, Any]:
    """The manifest as plain JSON-able data, with stable ordering."""
    return {
        "buckets": [
            {
                "name": d.name,
                "config": {"versioned": d.versioned, "public": d.public},
                "declared_in": {"module": d.module, "variable": d.variable, "file": d.file, "line": d.line},
            }
            for d in sorted(manifest.buckets.values(), key=lambda d: d.name)
        ],
        "services": {
            service: {bucket: sorted(perms) for bucket, perms in sorted(buckets.items())}
            for service, buckets in sorted(manifest.services.items())
        },
        "warnings": [{"file": w.file, "line": w.line, "message": w.message} for w in manifest.warnings],
    }


def aws_location(bucket: str) -> tuple[str, str]:
    """(cloud bucket name, key prefix) from the configuration, for s3:// buckets.

    Buckets not configured as s3:// are assumed to be named as in code, with no prefix.
    """
    from .. import config

    settings = config.resolve(bucket)
    if settings.scheme != "s3":
        return bucket, ""
    # config already turned a URL's ?prefix= into key_prefix
    return urlsplit(settings.url).netloc or bucket, settings.key_prefix


def aws_kms_key(bucket: str) -> tuple[str, str | None] | None:
    """(KMS key id, the bucket's region or None) when the bucket's config names an
    ``sse_kms_key_id``; None otherwise (no key named, or not an s3:// bucket)."""
    from .. import config

    settings = config.resolve(bucket)
    key = settings.options.get("sse_kms_key_id") if settings.scheme == "s3" else None
    if not isinstance(key, str) or not key:
        return None
    region = settings.options.get("region") or dict(parse_qsl(urlsplit(settings.url).query)).get("region")
    return key, region if isinstance(region, str) else None


def kms_statement(sid: str, key: str, region: str | None, actions: set[str]) -> dict[str, Any]:
    """The statement granting ``actions`` on a KMS key named as an ARN, a key id or an alias.

    IAM names keys by ARN; an alias is matched by the kms:ResourceAliases condition
    (https://docs.aws.amazon.com/kms/latest/developerguide/alias-authorization.html).
    """
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions)}
    if key.startswith("arn:") and ":alias/" not in key:
        statement["Resource"] = [key]
    elif key.startswith("alias/") or ":alias/" in key:
        alias = key[key.index("alias/") :]
        statement["Resource"] = ["*"]
        statement["Condition"] = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": [alias]}}
    else:
        statement["Resource"] = [f"arn:aws:kms:{region or '*'}:*:key/{key}"]
    return statement


def iam_policies(
    manifest: Manifest,
    location: Callable[[str], tuple[str, str]] = aws_location,
    kms_key: Callable[[str], tuple[str, str | None] | None] = aws_kms_key,
) -> dict[str, dict[str, Any]]:
    """One least-privilege IAM policy document per service: what each operation sends.

    Per permission (the S3 requests behind each operation, see README "IAM"):

    - Downloader, Attrser: GetObject (GET, HEAD), and ListBucket, without which S3
      answers a missing key with 403 instead of 404 (ObjectNotFound, ``exists()`` False);
    - Remover: DeleteObject, and GetObject + ListBucket: ``remove()`` HEADs first (a
      missing key is ObjectNotFound), ``remove_many`` lists the keys' prefix and HEADs;
    - Uploader: PutObject (single, multipart, completion), AbortMultipartUpload,
      ListMultipartUploadParts, and GetObject: a conditional write whose answer was lost
      is resolved by reading the stored object's checksum (HEAD);
    - Lister: ListBucket (+ ListBucketVersions on versioned buckets);
    - SignedDownloader / SignedUploader: GetObject / PutObject (the URL acts as the role).

    When the bucket's config names ``sse_kms_key_id``: kms:Decrypt for every reader
    (and for uploads: multipart uploads and the lost-answer check read the key) and
    kms:GenerateDataKey for every writer.
    """
    policies: dict[str, dict[str, Any]] = {}
    for service, buckets in sorted(manifest.services.items()):
        statements: list[dict[str, Any]] = []
        for bucket, perms in sorted(buckets.items()):
            decl = manifest.buckets.get(bucket)
            versioned = decl is None or decl.versioned is not False
            cloud, prefix = location(bucket)
            objects: set[str] = set()
            listing: set[str] = set()
            kms: set[str] = set()
            if perms & {"Downloader", "SignedDownloader", "Attrser", "Remover", "Uploader"}:
                objects.add("s3:GetObject")  # GET, and the HEADs of exists/attrs/remove/writes
                if versioned:
                    objects.add("s3:GetObjectVersion")
            if perms & {"Downloader", "Attrser", "Remover"}:
                listing.add("s3:ListBucket")  # a missing key is 404 (not 403) only with it
            if perms & {"Uploader", "SignedUploader"}:
                objects |= {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
            if "Remover" in perms:
                objects.add("s3:DeleteObject")
                if versioned:
                    objects.add("s3:DeleteObjectVersion")
            if "Lister" in perms:
                listing.add("s3:ListBucket")
                if versioned:
                    listing.add("s3:ListBucketVersions")
            if perms & {"Downloader", "SignedDownloader", "Uploader"}:
                kms.add("kms:Decrypt")
            if perms & {"Uploader", "SignedUploader"}:
                kms.add("kms:GenerateDataKey")
            sid = "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", bucket) if p)
            if objects:
                statements.append(
                    {
                        "Sid": f"{sid}Objects",
                        "Effect": "Allow",
                        "Action": sorted(objects),
                        "Resource": [f"arn:aws:s3:::{cloud}/{prefix}*"],
                    }
                )
            if listing:
                statement: dict[str, Any] = {
                    "Sid": f"{sid}List",
                    "Effect": "Allow",
                    "Action": sorted(listing),
                    "Resource": [f"arn:aws:s3:::{cloud}"],
                }
                if prefix:
                    statement["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
                statements.append(statement)
            key = kms_key(bucket) if kms else None
            if key is not None:
                statements.append(kms_statement(f"{sid}Kms", key[0], key[1], kms))
        if statements:
            policies[service] = {"Version": "2012-10-17", "Statement": statements}
    return policies


def mermaid(manifest: Manifest) -> str:
    """A Mermaid flowchart: services on the left, buckets on the right, operations on the edges."""

    def node_id(kind: str, name: str) -> str:
        return f"{kind}_" + re.sub(r"[^A-Za-z0-9_]", "_", name)

    lines = ["flowchart LR"]
    lines += [f'    {node_id("svc", service)}["{service}"]' for service in sorted(manifest.services)]
    names = sorted(set(manifest.buckets) | {b for bs in manifest.services.values() for b in bs})
    lines += [f'    {node_id("bkt", bucket)}[("{bucket}")]' for bucket in names]
    for service, buckets in sorted(manifest.services.items()):
        for bucket, perms in sorted(buckets.items()):
            label = ", ".join(sorted(perms))
            lines.append(f'    {node_id("svc", service)} -->|"{label}"| {node_id("bkt", bucket)}')
    return "\n".join(lines) + "\n"


# -- CORS for browser uploads and downloads ------------------------------------------------

CORS_REQUEST_HEADERS = (
    "Cache-Control",
    "Content-Disposition",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Range",
)
"""Headers a page may send with a signed PUT or a GET (form POSTs need none)."""
CORS_EXPOSE_HEADERS = (
    "Accept-Ranges",
    "Content-Length",
    "Content-Range",
    "Content-Type",
    "ETag",
    "Last-Modified",
)
"""Response headers a page may read: the ETag of what it uploaded, ranges, validators."""
CORS_MAX_AGE = 3600
_BROWSER_METHODS = {
    "SignedUploader": ("POST", "PUT"),  # signed_upload_form, signed_upload_url
    "SignedDownloader": ("GET", "HEAD"),
    "PublicURLer": ("GET", "HEAD"),
}


def cloud_location(bucket: str) -> list[tuple[str, str]]:
    """[(scheme, cloud bucket name)] from the configuration: s3:// or gs://, else both
    under the code's name (the bucket's production home is not known here)."""
    from .. import config

    settings = config.resolve(bucket)
    if settings.scheme in ("s3", "gs"):
        return [(settings.scheme, urlsplit(settings.url).netloc or bucket)]
    if settings.scheme == "az":  # CORS is set on the storage account's blob service
        from ._azure import azure_location

        return [("az", azure_location(bucket)[0])]
    return [("s3", bucket), ("gs", bucket)]


def cors(
    manifest: Manifest,
    origins: list[str],
    location: Callable[[str], list[tuple[str, str]]] = cloud_location,
) -> dict[str, dict[str, Any]]:
    """The CORS configuration each cloud bucket needs for the browser uses in the manifest.

    Keyed ``s3://NAME`` (``configuration`` is the JSON ``aws s3api put-bucket-cors``
    takes), ``gs://NAME`` (the JSON ``gsutil cors set`` takes) and, for buckets configured
    as az://, ``az://ACCOUNT`` (Azure sets CORS per storage account; the rule allows the
    ``x-ms-blob-type`` header a browser PUT to a SAS URL sends). Only buckets that
    hand out signed URLs, upload forms or public URLs need one.
    """
    methods: dict[tuple[str, str], set[str]] = {}
    users: dict[tuple[str, str], set[str]] = {}
    for buckets in manifest.services.values():
        for bucket, perms in buckets.items():
            wanted = {m for p in perms for m in _BROWSER_METHODS.get(p, ())}
            if not wanted:
                continue
            for where in location(bucket):
                methods.setdefault(where, set()).update(wanted)
                users.setdefault(where, set()).add(bucket)
    out: dict[str, dict[str, Any]] = {}
    for (scheme, name), allowed in sorted(methods.items()):
        if scheme == "s3":
            document: Any = {"CORSRules": [_s3_rule(origins, allowed)]}
            command = f"aws s3api put-bucket-cors --bucket {name} --cors-configuration file://cors.json"
        elif scheme == "az":
            document = [_azure_rule(origins, allowed)]
            command = (
                f"az storage cors add --account-name {name} --services b "
                f"--methods {' '.join(sorted(allowed))} "
                f"--origins {' '.join(origins)} --allowed-headers {','.join(AZURE_CORS_REQUEST_HEADERS)} "
                f"--exposed-headers {','.join(CORS_EXPOSE_HEADERS)} --max-age {CORS_MAX_AGE}"
            )
        else:
            document = [_gcs_rule(origins, allowed)]
            command = f"gsutil cors set cors.json gs://{name}"
        out[f"{scheme}://{name}"] = {
            "buckets": sorted(users[(scheme, name)]),
            "command": command,
            "configuration": document,
        }
    return out


def _s3_rule(origins: list[str], methods: set[str]) -> dict[str, Any]:
    return {
        "AllowedOrigins": list(origins),
        "AllowedMethods": sorted(methods),
        "AllowedHeaders": list(CORS_REQUEST_HEADERS),
        "ExposeHeaders": list(CORS_EXPOSE_HEADERS),
        "MaxAgeSeconds": CORS_MAX_AGE,
    }


AZURE_CORS_REQUEST_HEADERS = (*CORS_REQUEST_HEADERS, "x-ms-blob-type", "x-ms-range")
"""A browser PUT to a SAS URL must send x-ms-blob-type: BlockBlob; ranged reads may use x-ms-range."""


def _azure_rule(origins: list[str], methods: set[str]) -> dict[str, Any]:
    # The account's blob service CORS rule (Set Blob Service Properties), as the az CLI takes it.
    return {
        "AllowedOrigins": list(origins),
        "AllowedMethods": sorted(methods),
        "AllowedHeaders": list(AZURE_CORS_REQUEST_HEADERS),
        "ExposedHeaders": list(CORS_EXPOSE_HEADERS),
        "MaxAgeInSeconds": CORS_MAX_AGE,
    }


GCS_CORS_REQUEST_HEADERS = ("x-goog-if-generation-match",)
"""A create-only signed PUT on GCS sends it (signed_upload_url(preconditions=...))."""


def _gcs_rule(origins: list[str], methods: set[str]) -> dict[str, Any]:
    # GCS has one list for both directions: headers a request may carry and a page may read.
    return {
        "origin": list(origins),
        "method": sorted(methods),
        "responseHeader": sorted({*CORS_REQUEST_HEADERS, *CORS_EXPOSE_HEADERS, *GCS_CORS_REQUEST_HEADERS}),
        "maxAgeSeconds": CORS_MAX_AGE,
    }
