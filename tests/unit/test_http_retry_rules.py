"""The shared retry loop (providers/_http/retry.py) with each protocol's RetryRules: the
status rules are the same for S3 and Azure, an error code counts only for its own protocol,
and a failure names the service it could not reach. No I/O (attempts are functions)."""

from __future__ import annotations

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

import aiobucket
from aiobucket.providers._http.retry import RetryPolicy, RetryRules
from aiobucket.providers._http.transport import Response
from aiobucket.providers.azure._errors import AZURE_RULES
from aiobucket.providers.s3._retry import S3_RULES

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("rules", [S3_RULES, AZURE_RULES], ids=["s3", "azure"])
@pytest.mark.parametrize(
    ("status", "transient"), [(500, True), (502, True), (503, True), (429, True), (501, False), (404, False)]
)
def test_status_rules_are_http_s_for_every_protocol(rules: RetryRules, status: int, transient: bool) -> None:
    assert rules.is_transient(status, "") is transient


@pytest.mark.parametrize(
    ("status", "code", "s3", "azure"),
    [
        (400, "RequestTimeout", True, False),  # S3's "resend": not an Azure code
        (409, "ConditionalRequestConflict", True, False),
        (503, "ServerBusy", True, True),  # Azure's throttle comes with its 503
        (500, "OperationTimedOut", True, True),
        (400, "Md5Mismatch", False, False),  # Azure's refusal of a body: final
    ],
)
def test_a_code_counts_only_for_its_own_protocol(status: int, code: str, s3: bool, azure: bool) -> None:
    assert (S3_RULES.is_transient(status, code), AZURE_RULES.is_transient(status, code)) == (s3, azure)


@pytest.mark.parametrize(("rules", "name"), [(S3_RULES, "S3"), (AZURE_RULES, "Azure")])
async def test_a_steady_connection_failure_names_the_service(rules: RetryRules, name: str) -> None:
    async def attempt() -> Response:
        raise aiohttp.ServerDisconnectedError()

    policy = RetryPolicy(2, 0.001, 0.001, rules=rules)
    with pytest.raises(aiobucket.BackendError, match=rf"cannot reach {name}: .*\(2 attempts over"):
        await policy.call(attempt, "download")


@pytest.mark.parametrize(("rules", "resends"), [(S3_RULES, 1), (AZURE_RULES, 0)])
async def test_only_s3_resends_a_body_it_says_arrived_corrupted(rules: RetryRules, resends: int) -> None:
    calls = 0

    async def attempt() -> Response:
        nonlocal calls
        calls += 1
        resp = Response(400, CIMultiDictProxy(CIMultiDict()), b"")
        resp.code = "BadDigest"
        return resp

    resp = await RetryPolicy(5, 0.001, 0.001, rules=rules).call(attempt, "upload")
    assert (calls, resp.status, resp.code) == (1 + resends, 400, "BadDigest")
