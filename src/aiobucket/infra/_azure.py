"""``aiobucket infra --format rbac-azure``: Azure RBAC role assignments per service.

For each service: the built-in role that covers it (``Storage Blob Data Reader`` when it
only reads and lists, else ``Storage Blob Data Contributor``) scoped to the container,
and a custom role with exactly the data actions its refs need, scoped the same way.
A key prefix becomes an ABAC condition on the blob path. Signed URLs need the account
key (service SAS, a control-plane ``listKeys`` the deployer grants separately) or a
user-delegation key (``generateUserDelegationKey``, listed as an action). That action
acts on the storage account, so a container-scoped assignment does not grant it: the
service also gets the built-in ``Storage Blob Delegator`` role on the account, and the
custom role is assignable there too.

What each ref needs, as the provider calls Azure:

- Downloader, SignedDownloader, Attrser, Lister: ``blobs/read`` (Get Blob, Get Blob
  Properties, List Blobs);
- Uploader: ``blobs/write`` (Put Blob, Put Block, Put Block List) and ``blobs/read``:
  a conditional write whose answer was lost is resolved by reading the stored MD5;
- SignedUploader: ``blobs/write`` (a user-delegation SAS grants at most the signer's rights);
- Remover: ``blobs/delete`` (Delete Blob, Blob Batch), and on a versioned bucket
  ``blobs/deleteBlobVersion/action`` (Delete Blob with ``versionid``).
Sources: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage
and https://learn.microsoft.com/azure/role-based-access-control/permissions/storage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from ._analysis import Manifest

__all__ = ["azure_location", "azure_rbac"]

_BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
READ = f"{_BLOBS}/read"
WRITE = f"{_BLOBS}/write"
DELETE = f"{_BLOBS}/delete"
DELETE_VERSION = f"{_BLOBS}/deleteBlobVersion/action"
DELEGATION_KEY = "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"
_READERS = {"Downloader", "SignedDownloader", "Attrser", "Lister"}


def azure_location(bucket: str) -> tuple[str, str, str]:
    """(account, container, key prefix) from the configuration, for az:// buckets; other
    buckets are assumed to be a container named as in code, in an account to fill in."""
    from .. import config

    settings = config.resolve(bucket)
    if settings.scheme != "az":
        return "{account}", bucket, ""
    parts = urlsplit(settings.url)
    account = parse_qs(parts.query).get("account", ["{account}"])[-1]
    if "connection_string" in settings.options:  # the account is named there
        from ..errors import InvalidArgument
        from ..providers.azure._settings import parse_settings

        with contextlib.suppress(InvalidArgument):
            account = parse_settings(settings, bucket).account
    return account, parts.netloc or bucket, settings.key_prefix


def _account_scope(account: str) -> str:
    return (
        "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Storage/"
        f"storageAccounts/{account}"
    )


def _scope(account: str, container: str) -> str:
    return f"{_account_scope(account)}/blobServices/default/containers/{container}"


def azure_rbac(
    manifest: Manifest, location: Callable[[str], tuple[str, str, str]] = azure_location
) -> dict[str, dict[str, Any]]:
    """Per service: built-in role assignments and one least-privilege custom role."""
    out: dict[str, dict[str, Any]] = {}
    for service, buckets in sorted(manifest.services.items()):
        assignments: list[dict[str, Any]] = []
        data_actions: set[str] = set()
        actions: set[str] = set()
        scopes: list[str] = []
        for bucket, perms in sorted(buckets.items()):
            account, container, prefix = location(bucket)
            decl = manifest.buckets.get(bucket)
            versioned = decl is None or decl.versioned is not False
            needed: set[str] = set()
            if perms & (_READERS | {"Uploader"}):
                needed.add(READ)
            if perms & {"Uploader", "SignedUploader"}:
                needed.add(WRITE)
            if "Remover" in perms:
                needed.add(DELETE)
                if versioned:
                    needed.add(DELETE_VERSION)
            if not needed:
                continue
            if perms & {"SignedUploader", "SignedDownloader"}:
                actions.add(DELEGATION_KEY)
                account_scope = _account_scope(account)
                if not any(a["scope"] == account_scope for a in assignments):  # one per account
                    assignments.append(
                        {"bucket": bucket, "role": "Storage Blob Delegator", "scope": account_scope}
                    )
                scopes.append(account_scope)
            scope = _scope(account, container)
            assignment: dict[str, Any] = {
                "bucket": bucket,
                "role": "Storage Blob Data Reader" if needed == {READ} else "Storage Blob Data Contributor",
                "scope": scope,
            }
            if prefix:
                assignment["condition"] = (
                    f"@Resource[{_BLOBS}:path] StringStartsWith '{prefix}'"  # ABAC on the key prefix
                )
                assignment["conditionVersion"] = "2.0"
            assignments.append(assignment)
            data_actions |= needed
            scopes.append(scope)
        if assignments:
            out[service] = {
                "builtin": assignments,
                "custom_role": {
                    "Name": f"aiobucket {service}",
                    "IsCustom": True,
                    "Description": f"What service {service!r} does with its buckets (aiobucket infra)",
                    "Actions": sorted(actions),
                    "NotActions": [],
                    "DataActions": sorted(data_actions),
                    "NotDataActions": [],
                    "AssignableScopes": sorted(set(scopes)),
                },
            }
    return out
