"""S3-compatible store personas: SeaweedFS (or moto) behind the fault proxy, answering as
another store does where it differs from AWS.

Each ``Persona`` has the rules that make the difference, the ``provider=`` aiobucket is
configured with for it, the upstream server it runs in front of, and what
``aiobucket doctor`` must see through it (``observed``: profile field -> value).

Personas run in front of SeaweedFS, except where the store ignores a header: the
proxy then removes it before it reaches the server, and since every present header is
signed (SigV4), that persona runs in front of moto's server, which checks no
signature (tests/servers/moto.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from faultproxy import FaultProxy, Request, Rewrite, s3_error
from servers.seaweedfs_server import S3Server

__all__ = ["PERSONAS", "Persona"]


def _has_checksum_header(req: Request) -> bool:
    # x-amz-sdk-checksum-algorithm too: github.com/home-assistant/core/issues/143995.
    names = [name.lower() for name, _ in req.headers]
    return any(n.startswith("x-amz-checksum") or n == "x-amz-sdk-checksum-algorithm" for n in names)


def _b2(proxy: FaultProxy) -> None:
    # Backblaze B2's S3 API lists x-amz-checksum-* among its unsupported features
    # (backblaze.com/docs/cloud-storage-s3-compatible-api#unsupported-features) and answers
    # 400 InvalidArgument "Unsupported header 'x-amz-checksum-crc32' received for this API
    # call." to PutObject/UploadPart, and the same for x-amz-checksum-mode on GET/HEAD
    # (github.com/diced/zipline/issues/746, github.com/vatesfr/xen-orchestra/issues/8358).
    def refuse(req: Request) -> bool:
        return _has_checksum_header(req)

    proxy.add_rule(
        s3_error(
            400, "InvalidArgument", "Unsupported header 'x-amz-checksum-crc32c' received for this API call."
        ),
        when=refuse,
        times=None,
    )


def _composite_only(proxy: FaultProxy) -> None:
    # MinIO before RELEASE.2025-01-18 accepts x-amz-checksum-type: FULL_OBJECT on
    # CreateMultipartUpload and refuses the completion that carries the FULL_OBJECT
    # checksum with InvalidPart (github.com/minio/minio/issues/20944); Garage 1.x keeps
    # composite checksums only as well (issue #20's survey).
    def full_object_completion(req: Request) -> bool:
        return (
            "uploadId=" in req.query
            and req.method == "POST"
            and req.header("x-amz-checksum-type") == "FULL_OBJECT"
        )

    proxy.add_rule(
        s3_error(400, "InvalidPart", "One or more of the specified parts could not be found."),
        when=full_object_completion,
        times=None,
    )


def _ignores_conditionals(proxy: FaultProxy) -> None:
    # Google Cloud Storage's XML API and Garage accept If-None-Match / If-Match on writes
    # and ignore them (GCS: its preconditions are x-goog-if-generation-match,
    # cloud.google.com/storage/docs/xml-api/reference-headers; Garage:
    # garagehq.deuxfleurs.fr/documentation/reference-manual/s3-compatibility/). Stripping
    # them before the server sees them is the same thing, seen from the client.
    strip = Rewrite("request", {"If-None-Match": None, "If-Match": None})

    def write(req: Request) -> bool:
        return req.method in ("PUT", "POST")

    proxy.add_rule(strip, when=write, times=None)


def _no_bulk_no_part_copy(proxy: FaultProxy) -> None:
    # Stores without DeleteObjects (GCS's XML API: cloud.google.com/storage/docs/migrating
    # "multi-object delete is not supported") or without UploadPartCopy (Storj:
    # github.com/storj/roadmap/issues/40; GCS: issuetracker.google.com/issues/323465186,
    # both in rclone's provider quirk files) answer 501 NotImplemented.
    proxy.add_rule(s3_error(501, "NotImplemented"), method="POST", query="delete", times=None)

    def part_copy(req: Request) -> bool:
        return (
            req.method == "PUT" and "partNumber=" in req.query and req.header("x-amz-copy-source") is not None
        )

    proxy.add_rule(s3_error(501, "NotImplemented"), when=part_copy, times=None)


def _upper_etags(proxy: FaultProxy) -> None:
    # Alibaba OSS answers with upper-case hex ETags ("5B3C..."; its PutObject and HeadObject
    # references show them so), where S3 servers use lower case: every comparison aiobucket
    # makes (lost-response resolution, pinned reads, MD5 recognition) must ignore case.
    upper = Rewrite("response", {"ETag": lambda v: v.upper() if v else v})
    proxy.add_rule(upper, times=None)


@dataclass(frozen=True)
class Persona:
    name: str
    rules: Callable[[FaultProxy], None]
    provider: str
    """The provider= aiobucket is configured with (plus ``options``)."""
    upstream: str = "s3"
    """"s3" (SeaweedFS) or "moto"."""
    options: dict[str, object] = field(default_factory=dict)
    observed: dict[str, object] = field(default_factory=dict)
    """What ``aiobucket doctor`` must see through the persona."""
    learns: dict[str, object] = field(default_factory=dict)
    """What a provider declared as ``provider`` learns at runtime through the persona."""
    whole: bool = True
    """The persona holds for every request. False: only for some (upper_etags cannot hand the
    server back its own ETags in If-Match or a completion), so only its own tests use it."""

    def install(self, proxy: FaultProxy) -> None:
        """Add this persona's rules to the proxy (``personas.persona("stores:b2")``)."""
        self.rules(proxy)


PERSONAS = {
    p.name: p
    for p in (
        # Declared as SeaweedFS (which sends the checksum headers): aiobucket learns to drop them.
        Persona(
            "b2",
            _b2,
            "seaweedfs",
            observed={"checksum_headers": False, "checksum_mode": False, "multipart_checksum": "none"},
            learns={"checksum_headers": False, "checksum_mode": False, "multipart_checksum": "none"},
        ),
        Persona(
            "composite_only",
            _composite_only,
            "minio",
            observed={"multipart_checksum": "composite"},
            learns={"multipart_checksum": "composite"},
        ),
        Persona(
            "ignores_conditionals",
            _ignores_conditionals,
            "garage",
            upstream="moto",
            options={"path_style": "true"},
            observed={"conditional_put": "none", "conditional_complete": "none", "conditional_copy": "none"},
        ),
        Persona("upper_etags", _upper_etags, "seaweedfs", whole=False),
        Persona(
            "no_bulk_no_part_copy",
            _no_bulk_no_part_copy,
            "seaweedfs",
            observed={"bulk_delete": False},
            learns={"bulk_delete": False, "part_copy": False},
        ),
    )
}


_RUNNING: dict[str, S3Server] = {}


def conformance_target(
    name: str, provider: str, request: pytest.FixtureRequest, versioned: bool
) -> dict[str, object]:
    """Bucket settings for the conformance suite through persona ``name``, declared as
    ``provider``: one proxy per persona for the session, in front of its upstream server."""
    persona = PERSONAS[name]
    if name not in _RUNNING:
        upstream: S3Server = request.getfixturevalue(
            "s3_server" if persona.upstream == "s3" else "moto_server"
        )
        proxy = FaultProxy(upstream.endpoint).start()
        request.config.add_cleanup(proxy.stop)
        persona.rules(proxy)
        _RUNNING[name] = replace(upstream, endpoint=proxy.url)
    server = _RUNNING[name]
    settings = server.settings(versioned, **persona.options)
    settings["url"] = str(settings["url"]).replace(f"provider={server.provider}", f"provider={provider}")
    return settings
