"""The S3 retry policy on its own (no server): backoff bounds, classification, cancellation."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

import aiobucket
from aiobucket.providers.s3._retry import RetryPolicy, is_transient_status, transport_failure
from aiobucket.providers.s3._transport import Response

pytestmark = pytest.mark.anyio


def response(status: int, code: str = "") -> Response:
    r = Response(status, CIMultiDictProxy(CIMultiDict()), b"")
    r.code = code
    return r


def test_full_jitter_backoff_stays_within_its_cap() -> None:
    policy = RetryPolicy(max_attempts=8, base=0.5, cap=3.0)
    for retry in range(1, 12):
        ceiling = min(3.0, 0.5 * 2 ** (retry - 1))
        delays = [policy.delay(retry) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # it is jittered over the whole range, not fixed


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (500, "InternalError", True),
        (503, "SlowDown", True),
        (429, "", True),
        (400, "RequestTimeout", True),
        (400, "InvalidArgument", False),
        (403, "AccessDenied", False),
        (404, "NoSuchKey", False),
        (412, "PreconditionFailed", False),
    ],
)
def test_which_answers_are_transient(status: int, code: str, transient: bool) -> None:
    assert is_transient_status(status, code) is transient


def test_connection_failures_say_whether_the_request_may_have_been_sent() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
    refused_loopback = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))
    assert transport_failure(refused_loopback) == (False, False)  # fail fast: nothing listens
    remote = aiohttp.client_reqrep.ConnectionKey("s3.example.com", 443, True, True, None, None, None)
    assert transport_failure(aiohttp.ClientConnectorError(remote, ConnectionRefusedError(111, "x"))) == (
        True,
        False,
    )
    assert transport_failure(aiohttp.ServerDisconnectedError()) == (True, True)  # maybe applied
    assert transport_failure(aiohttp.ClientPayloadError("cut")) == (True, True)
    assert transport_failure(TimeoutError()) == (True, True)
    assert transport_failure(socket.gaierror()) == (True, True)
    assert transport_failure(ValueError("not a connection failure")) is None


async def test_steady_failure_ends_after_max_attempts_and_marks_maybe_applied() -> None:
    calls = 0

    async def attempt() -> Response:
        nonlocal calls
        calls += 1
        return response(500, "InternalError")

    resp = await RetryPolicy(max_attempts=3, base=0.001, cap=0.001).call(attempt, "upload")
    assert (calls, resp.status, resp.attempts, resp.maybe_applied) == (3, 500, 3, True)


@pytest.mark.parametrize(
    ("first", "maybe_applied"),
    [
        ((429, "SlowDown"), False),  # the server's own refusal: not applied
        ((503, "SlowDown"), True),  # a gateway may answer 503 after the server applied it
    ],
)
async def test_what_a_retried_answer_says_about_the_first_attempt(
    first: tuple[int, str], maybe_applied: bool
) -> None:
    answers = [response(*first), response(200)]

    async def attempt() -> Response:
        return answers.pop(0)

    resp = await RetryPolicy(max_attempts=3, base=0.001, cap=0.001).call(attempt, "upload")
    assert (resp.status, resp.attempts, resp.maybe_applied) == (200, 2, maybe_applied)


async def test_steady_connection_failure_says_how_many_attempts() -> None:
    async def attempt() -> Response:
        raise aiohttp.ServerDisconnectedError()

    with pytest.raises(aiobucket.BackendError, match=r"cannot reach S3.*\(4 attempts over"):
        await RetryPolicy(max_attempts=4, base=0.001, cap=0.001).call(attempt, "download")


async def test_a_cancel_ends_a_backoff_at_once() -> None:
    started = asyncio.Event()

    async def attempt() -> Response:
        started.set()
        return response(503, "SlowDown")

    policy = RetryPolicy(max_attempts=5, base=1000.0, cap=1000.0)  # a long sleep, if it were waited
    task = asyncio.create_task(policy.call(attempt, "upload"))
    await started.wait()
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - cancelled_at < 10.0  # nowhere near the 1000 s backoff
