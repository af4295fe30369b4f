"""``aiobucket infra --format rbac-azure``: built-in roles and exact data actions per service."""

from __future__ import annotations

import json
from pathlib import Path

from test_infra import SAMPLE, cli

from aiobucket import infra
from aiobucket.infra._azure import DELEGATION_KEY, DELETE, READ, WRITE


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
    [assignment] = out["svc"]["builtin"]
    assert assignment["role"] == "Storage Blob Data Contributor"
    assert "StringStartsWith 'app/'" in assignment["condition"]
    role = out["svc"]["custom_role"]
    assert role["DataActions"] == sorted([WRITE, DELETE])
    assert role["Actions"] == [DELEGATION_KEY]


def test_cli_reads_az_urls_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "aiobucket.toml"
    config.write_text('[buckets]\nexports = "az://acme-exports?account=acmeprod"\n')
    proc = cli("infra", str(SAMPLE), "--format", "rbac-azure", config=config)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    scopes = [a["scope"] for svc in out.values() for a in svc["builtin"] if a["bucket"] == "exports"]
    assert scopes and all(
        s.endswith("storageAccounts/acmeprod/blobServices/default/containers/acme-exports") for s in scopes
    )


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
