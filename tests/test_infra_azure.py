"""``aiobucket infra --format rbac-azure``: built-in roles and exact data actions per service."""

from __future__ import annotations

import json
from pathlib import Path

from test_infra import SAMPLE, cli

from aiobucket import infra
from aiobucket.infra._azure import DELEGATION_KEY, DELETE, DELETE_VERSION, READ, WRITE


def _manifest(perms: dict[str, set[str]]) -> infra.Manifest:
    manifest = infra.Manifest()
    for bucket, p in perms.items():
        manifest.buckets[bucket] = infra.BucketDecl(bucket, False, False, "m", bucket.upper(), "m.py", 1)
        manifest.grant("svc", bucket, p)
    return manifest


def test_readers_get_the_reader_role_and_read_only() -> None:
    out = infra.azure_rbac(_manifest({"photos": {"Downloader", "Lister"}}), lambda b: ("acct", b, ""))
    [assignment] = out["svc"]["builtin"]
    assert assignment["role"] == "Storage Blob Data Reader"
    assert assignment["scope"].endswith("/storageAccounts/acct/blobServices/default/containers/photos")
    assert out["svc"]["custom_role"]["DataActions"] == [READ]
    assert out["svc"]["custom_role"]["Actions"] == []


def test_writers_get_contributor_and_exact_actions_with_prefix_condition() -> None:
    out = infra.azure_rbac(
        _manifest({"uploads": {"Uploader", "Remover", "SignedUploader"}}), lambda b: ("acct", "box", "app/")
    )
    delegator, assignment = out["svc"]["builtin"]
    assert assignment["role"] == "Storage Blob Data Contributor"
    assert "StringStartsWith 'app/'" in assignment["condition"]
    # The user-delegation key is an action on the account: a container scope cannot grant it.
    assert delegator["role"] == "Storage Blob Delegator"
    assert delegator["scope"].endswith("/storageAccounts/acct")
    role = out["svc"]["custom_role"]
    # Uploads read too: a conditional write whose answer was lost is resolved by the stored MD5.
    assert role["DataActions"] == sorted([READ, WRITE, DELETE])
    assert role["Actions"] == [DELEGATION_KEY]
    assert delegator["scope"] in role["AssignableScopes"]


def test_removers_of_versioned_buckets_may_delete_versions() -> None:
    manifest = _manifest({"logs": {"Remover"}})
    plain = infra.azure_rbac(manifest, lambda b: ("acct", b, ""))
    assert plain["svc"]["custom_role"]["DataActions"] == [DELETE]
    manifest.buckets["logs"] = infra.BucketDecl("logs", True, False, "m", "LOGS", "m.py", 1)
    versioned = infra.azure_rbac(manifest, lambda b: ("acct", b, ""))
    assert versioned["svc"]["custom_role"]["DataActions"] == sorted([DELETE, DELETE_VERSION])


def test_cli_reads_az_urls_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "aiobucket.toml"
    config.write_text('[buckets]\nexports = "az://acme-exports?account=acmeprod"\n')
    proc = cli("infra", str(SAMPLE), "--format", "rbac-azure", config=config)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    found = [a for svc in out.values() for a in svc["builtin"] if a["bucket"] == "exports"]
    scopes = {a["scope"].split("/providers/Microsoft.Storage/")[1] for a in found}
    assert scopes <= {"storageAccounts/acmeprod/blobServices/default/containers/acme-exports",
                      "storageAccounts/acmeprod"}  # fmt: skip
    assert any(s.endswith("containers/acme-exports") for s in scopes)
    for a in found:  # only the delegation key is granted on the whole account
        assert a["scope"].endswith("containers/acme-exports") or a["role"] == "Storage Blob Delegator"


def test_cors_for_an_az_bucket_is_an_account_rule_allowing_x_ms_blob_type(tmp_path: Path) -> None:
    config = tmp_path / "aiobucket.toml"
    config.write_text('[buckets]\nexports = "az://acme-exports?account=acmeprod"\n')
    proc = cli("infra", str(SAMPLE), "--format", "cors", "--origin", "https://app.example.com", config=config)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["az://acmeprod"]["buckets"] == ["exports"]  # billing hands out signed download URLs
    rule = out["az://acmeprod"]["configuration"][0]
    assert "x-ms-blob-type" in rule["AllowedHeaders"] and rule["AllowedOrigins"] == [
        "https://app.example.com"
    ]
    assert out["az://acmeprod"]["command"].startswith(
        "az storage cors add --account-name acmeprod --services b"
    )


def test_the_account_of_a_connection_string_is_used(tmp_path: Path) -> None:
    config = tmp_path / "aiobucket.toml"
    config.write_text(
        '[buckets.exports]\nurl = "az://acme-exports"\n'
        'connection_string = "AccountName=acmeprod;AccountKey=a2V5;EndpointSuffix=core.windows.net"\n'
    )
    proc = cli("infra", str(SAMPLE), "--format", "rbac-azure", config=config)
    assert proc.returncode == 0, proc.stderr
    scopes = [a["scope"] for svc in json.loads(proc.stdout).values() for a in svc["builtin"]]
    assert any("storageAccounts/acmeprod/blobServices/default/containers/acme-exports" in s for s in scopes)
