"""``aiobucket infra``: the permissions manifest, derived statically from tests/infra_sample/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from aiobucket import infra

SAMPLE = Path(__file__).parent / "infra_sample"
SCRIPT = shutil.which("aiobucket", path=os.path.dirname(sys.executable))

SUGGEST = "hand the code a ref instead, e.g. Avatars.ref({perm}), so its permissions are declared"

EXPECTED = {
    "buckets": [
        {
            "name": "avatars",
            "config": {"versioned": False, "public": True},
            "declared_in": {
                "module": "shared.storage", "variable": "Avatars", "file": "shared/storage.py", "line": 8,
            },
        },
        {
            "name": "exports",
            "config": {"versioned": False, "public": False},
            "declared_in": {
                "module": "shared.storage", "variable": "Exports", "file": "shared/storage.py", "line": 10,
            },
        },
        {
            "name": "invoices",
            "config": {"versioned": True, "public": False},
            "declared_in": {
                "module": "shared.storage", "variable": "Invoices", "file": "shared/storage.py", "line": 9,
            },
        },
        {
            "name": "logs",
            "config": {"versioned": False, "public": False},
            "declared_in": {"module": "shared.boom", "variable": "Logs", "file": "shared/boom.py", "line": 4},
        },
        {
            "name": "scratch",
            "config": {"versioned": False, "public": False},
            "declared_in": {"module": "ops.cleanup", "variable": None, "file": "ops/cleanup.py", "line": 10},
        },
    ],
    "services": {
        "billing": {
            # copy(): Downloader on the source, Uploader on dst_bucket
            "exports": ["SignedDownloader", "Uploader"],
            # download + list_versions, and ref(InvoiceArchive) = Lister (via Browsable) + Attrser
            "invoices": ["Attrser", "Downloader", "Lister"],
        },
        "ops": {
            # remove() through a function-level import, and ref(ReadWriter)
            "logs": [
                "Attrser", "Downloader", "Lister", "Remover",
                "SignedDownloader", "SignedUploader", "Uploader",
            ],
        },
        "users": {
            # upload, exists, public_url, ref(AvatarStore); not the shadowing parameter's remove()
            "avatars": ["Attrser", "Downloader", "PublicURLer", "Uploader"],
        },
    },
    "warnings": [
        {
            "file": "billing/reports.py",
            "line": 9,
            "message": "remove() is not permitted by ref(InvoiceArchive) of bucket 'invoices' "
            "and raises PermissionDenied at run time",
        },
        {
            "file": "ops/cleanup.py",
            "line": 10,
            "message": "Bucket('scratch') is not assigned to a module-level name; declare buckets "
            "once at module level so their uses can be found",
        },
        {
            "file": "users/bad.py",
            "line": 9,
            "message": "bucket 'avatars' (Avatars) is passed to resize(), so its operations there cannot "
            "be attributed; " + SUGGEST.format(perm="<Permission>"),
        },
        {
            "file": "users/bad.py",
            "line": 10,
            "message": "bucket 'avatars' (Avatars) is stored in b, so uses through it cannot be "
            "attributed; " + SUGGEST.format(perm="<Permission>"),
        },
        {
            "file": "users/bad.py",
            "line": 11,
            "message": "b.remove() on a variable holding bucket 'avatars' (assigned at line 10) is not in "
            "the manifest; " + SUGGEST.format(perm="Remover"),
        },
        {
            "file": "users/bad.py",
            "line": 12,
            "message": "getattr() on bucket 'avatars' (Avatars) cannot be followed; "
            + SUGGEST.format(perm="<Permission>"),
        },
    ],
}  # fmt: skip


def cli(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert SCRIPT is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOBUCKET")}
    if config is not None:
        env["AIOBUCKET_CONFIG"] = str(config)
    return subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, timeout=120)


def test_manifest_of_the_sample_app() -> None:
    assert infra.to_json(infra.analyse(SAMPLE)) == EXPECTED


def test_cli_prints_the_manifest_as_json() -> None:
    proc = cli("infra", str(SAMPLE))
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout) == EXPECTED
    strict = cli("infra", str(SAMPLE), "--strict")
    assert strict.returncode == 1 and json.loads(strict.stdout) == EXPECTED


def test_the_analysed_code_is_never_imported() -> None:
    # shared/boom.py raises at import time; the analysis above still found its bucket.
    assert "raise RuntimeError" in (SAMPLE / "shared" / "boom.py").read_text()
    before = set(sys.modules)
    manifest = infra.analyse(SAMPLE)
    assert "logs" in manifest.buckets and manifest.services["ops"]["logs"] >= {"Remover"}
    assert not {
        m for m in set(sys.modules) - before if m.split(".")[0] in ("shared", "users", "billing", "ops")
    }


def test_iam_policy_for_one_service(tmp_path: Path) -> None:
    config = tmp_path / "aiobucket.toml"
    config.write_text(
        "[buckets.invoices]\n"
        'url = "s3://acme-invoices-prod?region=eu-west-1"\nkey_prefix = "billing/"\n'
        '[buckets]\nexports = "s3://acme-exports"\n'
    )
    proc = cli("infra", str(SAMPLE), "--format", "iam-aws", config=config)
    assert proc.returncode == 0, proc.stderr
    policies = json.loads(proc.stdout)
    assert sorted(policies) == ["billing", "ops", "users"]
    assert policies["billing"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ExportsObjects",
                "Effect": "Allow",
                "Action": [
                    "s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject",
                ],
                "Resource": ["arn:aws:s3:::acme-exports/*"],
            },
            {
                "Sid": "InvoicesObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": ["arn:aws:s3:::acme-invoices-prod/billing/*"],
            },
            # ListBucket for Downloader/Attrser too: a missing key is then 404, not 403
            {
                "Sid": "InvoicesList",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
                "Resource": ["arn:aws:s3:::acme-invoices-prod"],
                "Condition": {"StringLike": {"s3:prefix": ["billing/*"]}},
            },
        ],
    }  # fmt: skip
    # Not configured as s3://: the code's bucket name; PublicURLer needs no IAM action.
    assert policies["users"]["Statement"] == [
        {
            "Sid": "AvatarsObjects",
            "Effect": "Allow",
            "Action": [
                "s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject",
            ],
            "Resource": ["arn:aws:s3:::avatars/*"],
        },
        {
            "Sid": "AvatarsList",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::avatars"],
        },
    ]  # fmt: skip
    # Warnings go to stderr, one per line, with file:line.
    warnings = proc.stderr.splitlines()
    assert len(warnings) == len(EXPECTED["warnings"])
    assert warnings[0].startswith("aiobucket: warning: billing/reports.py:9: remove() is not permitted")


def test_iam_remover_on_a_versioned_bucket() -> None:
    manifest = infra.Manifest()
    manifest.buckets["v"] = infra.BucketDecl("v", True, False, "m", "V", "m.py", 1)
    manifest.grant("svc", "v", {"Remover"})
    policy = infra.iam_policies(manifest, lambda name: (f"cloud-{name}", ""), lambda name: None)
    # remove() HEADs first (GetObject; ListBucket makes a missing key 404, not 403).
    assert policy["svc"]["Statement"] == [
        {
            "Sid": "VObjects",
            "Effect": "Allow",
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectVersion"],
            "Resource": ["arn:aws:s3:::cloud-v/*"],
        },
        {
            "Sid": "VList",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::cloud-v"],
        },
    ]


def test_iam_kms_statements_when_the_config_names_a_key() -> None:
    """kms:Decrypt for readers (and uploads: multipart uploads read the key),
    kms:GenerateDataKey for writers; a key named by ARN, id or alias."""
    manifest = infra.Manifest()
    manifest.grant("reader", "b", {"Downloader", "Attrser"})
    manifest.grant("writer", "b", {"Uploader"})
    manifest.grant("checker", "b", {"Attrser", "Remover", "Lister"})
    arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    policies = infra.iam_policies(manifest, lambda name: (name, ""), lambda name: (arn, "eu-west-1"))
    kms = {svc: [st for st in p["Statement"] if st["Sid"] == "BKms"] for svc, p in policies.items()}
    assert kms["reader"] == [{"Sid": "BKms", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [arn]}]
    assert kms["writer"][0]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert kms["checker"] == []  # HEADs without checksums need no KMS rights
    by_alias = infra.iam_policies(manifest, lambda name: (name, ""), lambda name: ("alias/app", None))
    statement = by_alias["reader"]["Statement"][-1]
    assert statement["Resource"] == ["*"]
    assert statement["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/app"]}}
    by_id = infra.iam_policies(manifest, lambda name: (name, ""), lambda name: ("1234abcd", "us-east-2"))
    assert by_id["writer"]["Statement"][-1]["Resource"] == ["arn:aws:kms:us-east-2:*:key/1234abcd"]


def test_iam_kms_key_is_read_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "aiobucket.toml"
    config.write_text(
        '[buckets.invoices]\nurl = "s3://acme-invoices?region=eu-west-1"\nsse_kms_key_id = "alias/invoices"\n'
    )
    proc = cli("infra", str(SAMPLE), "--format", "iam-aws", config=config)
    assert proc.returncode == 0, proc.stderr
    billing = json.loads(proc.stdout)["billing"]["Statement"]
    assert billing[-1] == {
        "Sid": "InvoicesKms",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": ["*"],
        "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/invoices"]}},
    }


def test_mermaid_edges() -> None:
    proc = cli("infra", str(SAMPLE), "--format", "mermaid")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    assert '    svc_users["users"]' in lines and '    bkt_invoices[("invoices")]' in lines
    assert [line for line in lines if "-->" in line] == [
        '    svc_billing -->|"SignedDownloader, Uploader"| bkt_exports',
        '    svc_billing -->|"Attrser, Downloader, Lister"| bkt_invoices',
        '    svc_ops -->|"Attrser, Downloader, Lister, Remover, SignedDownloader, SignedUploader, Uploader"| '
        "bkt_logs",
        '    svc_users -->|"Attrser, Downloader, PublicURLer, Uploader"| bkt_avatars',
    ]


def test_relative_imports_package_roots_and_unparsable_files(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "store").mkdir(parents=True)
    (app / "api").mkdir()
    (app / "__init__.py").write_text("")
    (app / "store" / "__init__.py").write_text(
        "from aiobucket import Bucket as Bkt, BucketConfig\nfrom aiobucket import Downloader\n"
        "Files = Bkt('files', BucketConfig(versioned=flag))\n"
    )
    (app / "api" / "__init__.py").write_text("")
    (app / "api" / "views.py").write_text(
        "from ..store import Files\n"
        "from app import store\n"
        "async def view(k):\n"
        "    await Files.attrs(k)\n"
        "    store.Files.ref(Downloader)\n"  # Downloader is not imported here: unresolvable
        "    Files.upload\n"
    )
    (app / "broken.py").write_text("def f(:\n")
    manifest = infra.to_json(infra.analyse(app))
    assert manifest["buckets"][0]["config"] == {"versioned": None, "public": False}
    assert manifest["services"] == {"api": {"files": ["Attrser"]}}
    assert [(w["file"], w["line"]) for w in manifest["warnings"]] == [
        ("api/views.py", 5),
        ("api/views.py", 6),
        ("broken.py", 1),
        ("store/__init__.py", 3),
    ]
    messages = [w["message"] for w in manifest["warnings"]]
    assert "cannot resolve the permission Protocol" in messages[0]
    assert "Files.upload (bound method of bucket 'files')" in messages[1]
    assert messages[2].startswith("cannot parse this file")
    assert "BucketConfig(versioned=...) is not a literal" in messages[3]


# -- aiobucket's own helpers, and the shipped examples -----------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_shipped_examples_pass_strict_and_can_read() -> None:
    proc = cli("infra", str(EXAMPLES), "--strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["warnings"] == []
    for app in ("fastapi_app", "aiohttp_app"):
        # Downloads go through aiobucket.http.serve(ProfilePictures, ...): attrs + download.
        perms = manifest["services"][app]["profile-pictures"]
        assert perms == ["Attrser", "Downloader", "Remover", "Uploader"]
    policies = json.loads(cli("infra", str(EXAMPLES), "--format", "iam-aws").stdout)
    for app in ("fastapi_app", "aiohttp_app"):
        assert "s3:GetObject" in policies[app]["Statement"][0]["Action"]


def test_every_public_helper_that_takes_a_bucket_is_followed() -> None:
    """A new helper in aiobucket.http (as serve() was) must be added to HELPERS, or the
    examples' IAM policy silently loses its read permissions."""
    import inspect
    import typing

    import aiobucket.http
    from aiobucket.infra import _analysis

    taking_a_bucket = set()
    for name in aiobucket.http.__all__:
        func = getattr(aiobucket.http, name)
        if not inspect.isfunction(func):
            continue
        for param, hint in typing.get_type_hints(func).items():
            perms = {c.__name__ for c in getattr(hint, "__mro__", ())} & set(_analysis.PROTOCOL_PERMISSIONS)
            if perms:
                taking_a_bucket.add((f"aiobucket.http.{name}", param))
    assert taking_a_bucket == set(_analysis.HELPERS.items())


def test_helpers_that_take_a_bucket_are_followed(tmp_path: Path) -> None:
    (tmp_path / "store.py").write_text(
        "from aiobucket import Bucket, Downloader, Attrser\n"
        "from typing import Protocol\n"
        "A = Bucket('a')\nB = Bucket('b')\nC = Bucket('c')\nD = Bucket('d')\nE = Bucket('e')\n"
        "class Both(Downloader, Attrser, Protocol): ...\n"
    )
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "__init__.py").write_text("")
    (tmp_path / "svc" / "views.py").write_text(
        "import aiobucket\n"
        "import aiobucket.http as h\n"
        "from aiobucket import http, Downloader\n"
        "from aiobucket.http import open_range\n"
        "from store import A, B, C, D, E, Both\n"
        "async def f(key, rng):\n"
        "    await open_range(A, key, rng)\n"
        "    await h.open_range(bucket=B, key=key, header=rng)\n"
        "    await aiobucket.http.open_range(C, key, rng)\n"
        "    await http.open_range(D.ref(Downloader), key, rng)\n"  # lacks Attrser
        "    both = E.ref(Both)\n"
        "    await open_range(both, key, rng)\n"
        "    await other(A)\n"
    )
    manifest = infra.to_json(infra.analyse(tmp_path))
    assert manifest["services"]["svc"] == {
        "a": ["Attrser", "Downloader"],
        "b": ["Attrser", "Downloader"],
        "c": ["Attrser", "Downloader"],
        "d": ["Downloader"],
        "e": ["Attrser", "Downloader"],
    }
    where = [(w["file"], w["line"]) for w in manifest["warnings"]]
    assert where == [("svc/views.py", 10), ("svc/views.py", 13)]
    ref_warning, other_warning = (w["message"] for w in manifest["warnings"])
    assert ref_warning.startswith(
        "aiobucket.http.open_range() needs Attrser on its bucket, which ref(Downloader) of bucket 'd'"
    )
    assert "PermissionDenied" in ref_warning
    assert "is passed to other()" in other_warning  # only aiobucket's own helpers are followed


def test_services_may_each_declare_a_bucket_they_share_if_they_agree(tmp_path: Path) -> None:
    (tmp_path / "one.py").write_text(
        "import aiobucket\nP = aiobucket.Bucket('p')\nQ = aiobucket.Bucket('q')\n"
    )
    (tmp_path / "two.py").write_text(
        "import aiobucket\n"
        "P = aiobucket.Bucket('p', aiobucket.BucketConfig(versioned=False))\n"  # the same config
        "Q = aiobucket.Bucket('q', aiobucket.BucketConfig(versioned=True))\n"  # a different one
        "P2 = aiobucket.Bucket('p')\n"  # twice in one service
    )
    warnings = infra.to_json(infra.analyse(tmp_path))["warnings"]
    assert [(w["file"], w["line"], w["message"]) for w in warnings] == [
        ("two.py", 3, "bucket 'q' is declared again with a different BucketConfig (first at one.py:3)"),
        ("two.py", 4, "bucket 'p' is declared again (first at one.py:2)"),
    ]
