"""``aiobucket infra``'s IAM policies are enough to run the app, and no more (issue #18, item 9).

The sample app in ``tests/infra_iam_app/`` has two services: ``app`` runs every operation
that needs an S3 permission, ``reader`` only downloads and checks for existence. The
policies are generated from that code as the CLI generates them, each is attached to its
own IAM user in a moto server of its own, and then moto enforces IAM
(``/moto-api/reset-auth``: the INITIAL_NO_AUTH_ACTION_COUNT switch, set to 0 once the
users exist). Every operation then runs with that user's keys and must succeed, or fail,
exactly as the contract says.

moto does not model one AWS rule: without s3:ListBucket, a HEAD or GET of a missing key
is answered 403, not 404 (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html,
"Permissions"). The last test shows what aiobucket does then, with that answer made by a
fault-proxy rule.
"""

from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy, Rewrite
from servers._proc import stop
from servers.moto import launch
from servers.seaweedfs import S3Server

import aiobucket
from aiobucket import config, infra

pytestmark = pytest.mark.anyio

APP = Path(__file__).parent / "infra_iam_app"
MiB = 1024 * 1024


Users = dict[str, tuple[str, str]]
MOTO_NAMES = {
    "s3:PutObject": [
        "s3:CreateMultipartUpload",
        "s3:UploadPart",
        "s3:CompleteMultipartUpload",
        "s3:CopyObject",
    ],
    "s3:GetObject": ["s3:HeadObject"],
    "s3:ListBucket": ["s3:ListObjectsV2"],
}
"""moto 5.2 checks some requests against the API operation's name where AWS checks an IAM
action (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html:
CreateMultipartUpload, UploadPart, CompleteMultipartUpload and CopyObject need s3:PutObject;
HeadObject s3:GetObject; ListObjectsV2 s3:ListBucket; DeleteObjects s3:DeleteObject on each
key, where moto checks s3:DeleteObjects on the bucket). The
generated policy is given to moto with each action's moto name added beside it, in the same
statement, so it grants exactly what the generated policy grants on AWS."""


def as_moto_checks_it(policy: dict[str, Any]) -> dict[str, Any]:
    deleting = {
        st["Sid"].removesuffix("Objects") for st in policy["Statement"] if "s3:DeleteObject" in st["Action"]
    }
    out = []
    for statement in policy["Statement"]:
        actions = list(statement["Action"])
        actions += [alias for action in statement["Action"] for alias in MOTO_NAMES.get(action, [])]
        if statement["Sid"].removesuffix("List") in deleting and statement["Sid"].endswith("List"):
            actions.append("s3:DeleteObjects")  # moto checks DeleteObjects on the bucket, not the keys
        out.append({**statement, "Action": actions})
    return {**policy, "Statement": out}


@pytest.fixture(scope="module")
def iam_moto(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[S3Server, dict[str, tuple[str, str]]]]:
    """A moto server enforcing IAM, with one user per service of the sample app holding
    exactly its generated policy: (server, {service: (key id, secret)})."""
    import boto3

    proc, server = launch(tmp_path_factory.mktemp("moto-iam"))
    try:
        with config.override({"files": f"s3://{server.bucket}?region={server.region}"}):
            policies = infra.iam_policies(infra.analyse(APP))
        iam = boto3.client(
            "iam", endpoint_url=server.endpoint, region_name="us-east-1",
            aws_access_key_id="admin", aws_secret_access_key="admin",
        )  # fmt: skip
        users: dict[str, tuple[str, str]] = {}
        for service, policy in policies.items():
            policy = as_moto_checks_it(policy)
            iam.create_user(UserName=service)
            iam.put_user_policy(UserName=service, PolicyName="aiobucket", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=service)["AccessKey"]
            users[service] = (key["AccessKeyId"], key["SecretAccessKey"])
        reset = urllib.request.Request(
            f"{server.endpoint}/moto-api/reset-auth", data=b"0", method="POST",
            headers={"Content-Type": "text/plain"},  # not a form: moto reads the raw body
        )  # fmt: skip
        with urllib.request.urlopen(reset) as answer:
            assert answer.status == 200
        yield server, users
    finally:
        stop(proc)


@pytest.fixture(autouse=True)
async def _close_clients(anyio_backend: str) -> AsyncIterator[None]:
    yield
    await aiobucket.aclose()


@pytest.fixture
def as_service(iam_moto: tuple[S3Server, dict[str, tuple[str, str]]]) -> Iterator[object]:
    """Configure the bucket ``files`` with a service's keys: ``as_service(name, endpoint=None)``."""
    server, users = iam_moto
    sys.path.insert(0, str(APP))
    overrides: list[object] = []

    def use(service: str, endpoint: str | None = None) -> str:
        key_id, secret = users[service]
        prefix = f"t-{uuid.uuid4().hex[:8]}/"
        settings = {
            "url": (
                f"s3://{server.bucket}?endpoint={endpoint or server.endpoint}"
                f"&region={server.region}&provider=aws"  # moto imitates AWS
            ),
            "access_key_id": key_id,
            "secret_access_key": secret,
            "max_attempts": 2,
        }
        cm = config.override({"files": settings})
        cm.__enter__()
        overrides.append(cm)
        return prefix

    try:
        yield use
    finally:
        for cm in reversed(overrides):
            cm.__exit__(None, None, None)  # type: ignore[attr-defined]
        sys.path.remove(str(APP))


async def test_every_operation_of_the_app_runs_under_its_generated_policy(as_service, tmp_path: Path) -> None:
    from app import ops

    p = as_service("app")
    data = bytes(range(256)) * 4096  # 1 MiB
    big = data * 5 + b"tail"  # a multipart upload at 5 MiB parts
    await ops.upload(p + "a", data, fresh=True)
    await ops.upload(p + "big", big, part_size=5 * MiB, fresh=True)
    with pytest.raises(aiobucket.PreconditionFailed):
        await ops.upload(p + "a", b"again", fresh=True)
    assert await ops.download(p + "a") == data
    assert await ops.download(p + "big") == big
    await ops.download_to(p + "big", tmp_path / "big")
    assert (tmp_path / "big").read_bytes() == big
    with pytest.raises(aiobucket.ObjectNotFound):  # 404, not 403: the policy has s3:ListBucket
        await ops.download(p + "missing")
    assert await ops.exists(p + "a") and not await ops.exists(p + "missing")
    assert (await ops.attrs(p + "a")).size == len(data)
    await ops.copy(p + "a", p + "b")
    assert await ops.names(p) == [p + "a", p + "b", p + "big"]
    # Signed locally; its GET acts as the role, with s3:GetObject as download() uses. (moto
    # answers 500 to presigned requests while it enforces IAM, so it is not fetched here.)
    assert "X-Amz-Signature=" in await ops.signed_download(p + "b")
    await ops.remove(p + "b")
    with pytest.raises(aiobucket.ObjectNotFound):
        await ops.remove(p + "b")
    removed = await ops.remove_many([p + "a", p + "missing"])
    assert removed[0] == (None, p + "a") and isinstance(removed[1][0], aiobucket.ObjectNotFound)
    assert await ops.names(p) == [p + "big"]


async def test_the_reader_can_read_and_nothing_else(as_service) -> None:
    from app import ops
    from reader import views

    p = as_service("app")
    await ops.upload(p + "doc", b"hello")
    as_service("reader")
    assert await views.fetch(p + "doc") == b"hello"
    assert await views.fetch(p + "missing") is None
    with pytest.raises(aiobucket.PermissionDenied):
        await ops.upload(p + "doc", b"overwrite")
    with pytest.raises(aiobucket.PermissionDenied):
        await ops.remove(p + "doc")
    with pytest.raises(aiobucket.PermissionDenied):
        await ops.copy(p + "doc", p + "copy")
    # It may list: s3:ListBucket is what makes a missing key 404 instead of 403.
    assert await ops.names(p) == [p + "doc"]
    assert await views.fetch(p + "doc") == b"hello"


async def test_exists_without_list_bucket_is_permission_denied_naming_it(
    iam_moto: tuple[S3Server, dict[str, tuple[str, str]]], as_service
) -> None:
    """On AWS a role without s3:ListBucket gets 403 for a HEAD of a missing key
    (API_HeadObject.html): exists() cannot tell "missing" from "forbidden", so it raises
    PermissionDenied, and the message names the permission that tells them apart."""
    from reader import views

    server, _ = iam_moto
    with FaultProxy(server.endpoint) as proxy:
        p = as_service("reader", endpoint=proxy.url)
        proxy.add_rule(Rewrite("response", status=403), method="HEAD", path="missing", times=None)
        with pytest.raises(aiobucket.PermissionDenied, match="without s3:ListBucket") as caught:
            await views.fetch(p + "missing")
        assert "s3:GetObject" in str(caught.value)
