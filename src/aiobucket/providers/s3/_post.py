"""S3 browser upload forms: a SigV4 POST policy, signed by botocore's generate_presigned_post.

The policy pins everything the caller decided, and S3 refuses a POST that breaks
any of it (AccessDenied, EntityTooLarge / EntityTooSmall), storing nothing:

* ``{"bucket": ...}`` and ``{"key": ...}`` (exact: keys never contain ``${filename}``);
* ``["content-length-range", min, max]``, where a missing max is S3's 5 GiB POST limit;
* ``{"Content-Type": ...}`` (with the field pre-filled), or
  ``["starts-with", "$Content-Type", prefix]`` (the browser adds the field);
* ``{"x-amz-meta-<name>": value}`` for each metadata entry (fields pre-filled);
* the expiration, and the SigV4 credential, date and algorithm fields.

Signing is local: no request is sent, so there is nothing to retry.
"""

from __future__ import annotations

from typing import Any

from ...errors import BackendError, InvalidArgument
from ...types import UploadForm
from ..base import GiB, PostPolicy

__all__ = ["MAX_POST_SIZE", "sign_post"]

MAX_POST_SIZE = 5 * GiB
"""The largest object a POST upload may carry on AWS S3."""


def fields_and_conditions(policy: PostPolicy) -> tuple[dict[str, str], list[Any]]:
    """The pre-filled form fields and the policy conditions, besides bucket, key and credentials."""
    high = MAX_POST_SIZE if policy.max_size is None else policy.max_size
    if high > MAX_POST_SIZE:
        raise InvalidArgument(f"S3 POST uploads are limited to 5 GiB; max_size {high} is larger")
    fields: dict[str, str] = {}
    conditions: list[Any] = [["content-length-range", policy.min_size, high]]
    if policy.content_type is not None:
        fields["Content-Type"] = policy.content_type
        conditions.append({"Content-Type": policy.content_type})
    elif policy.content_type_prefix is not None:
        conditions.append(["starts-with", "$Content-Type", policy.content_type_prefix])
    for name, value in sorted(policy.metadata.items()):
        field = f"x-amz-meta-{name.lower()}"
        fields[field] = value
        conditions.append({field: value})
    return fields, conditions


async def sign_post(
    client: Any, bucket: str, key: str, policy: PostPolicy, encryption: dict[str, str] | None = None
) -> UploadForm:
    """The form for ``key`` in ``bucket``, signed with ``client``'s credentials (SigV4).

    ``encryption``: the bucket's SSE headers, pre-filled as fields and pinned in the
    policy (a bucket policy may deny uploads without them).
    """
    fields, conditions = fields_and_conditions(policy)
    for name, value in (encryption or {}).items():
        fields[name] = value
        conditions.append({name: value})
    seconds = max(1, int(policy.ttl.total_seconds()))
    try:
        form = await client.generate_presigned_post(
            bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=seconds
        )
    except Exception as exc:  # credentials could not be resolved, or a botocore bug
        raise BackendError(f"cannot sign the upload form: {exc}", key=key) from exc
    return UploadForm(url=form["url"], fields=dict(form["fields"]))
