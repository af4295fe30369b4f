"""The S3 retry policy on its own (no server): backoff bounds, classification, cancellation."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

import aiobucket
from aiobucket.providers._http.ratelimit import SendRate
from aiobucket.providers._http.retry import RetryPolicy, RetryQuota, transport_failure
from aiobucket.providers._http.transport import Response
from aiobucket.providers.s3._retry import S3_RULES

pytestmark = pytest.mark.anyio


def response(status: int, code: str = "") -> Response:
    r = Response(status, CIMultiDictProxy(CIMultiDict()), b"")
    r.code = code
    return r


def test_full_jitter_backoff_stays_within_its_cap() -> None:
    policy = RetryPolicy(rules=S3_RULES, max_attempts=8, base=0.5, cap=3.0)
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
    assert S3_RULES.is_transient(status, code) is transient


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

    resp = await RetryPolicy(rules=S3_RULES, max_attempts=3, base=0.001, cap=0.001).call(attempt, "upload")
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

    resp = await RetryPolicy(rules=S3_RULES, max_attempts=3, base=0.001, cap=0.001).call(attempt, "upload")
    assert (resp.status, resp.attempts, resp.maybe_applied) == (200, 2, maybe_applied)


async def test_steady_connection_failure_says_how_many_attempts() -> None:
    async def attempt() -> Response:
        raise aiohttp.ServerDisconnectedError()

    with pytest.raises(aiobucket.BackendError, match=r"cannot reach S3.*\(4 attempts over"):
        await RetryPolicy(rules=S3_RULES, max_attempts=4, base=0.001, cap=0.001).call(attempt, "download")


async def test_a_cancel_ends_a_backoff_at_once() -> None:
    started = asyncio.Event()

    async def attempt() -> Response:
        started.set()
        return response(503, "SlowDown")

    policy = RetryPolicy(
        rules=S3_RULES, max_attempts=5, base=1000.0, cap=1000.0, deadline=10_000.0
    )  # a long sleep
    task = asyncio.create_task(policy.call(attempt, "upload"))
    await started.wait()
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - cancelled_at < 10.0  # nowhere near the 1000 s backoff


# -- bounds: deadline, quota, corruption in transit -------------------------------------------


def script(*answers: tuple[int, str]) -> tuple[list[int], Any]:
    """An attempt function answering ``answers`` in turn (the last one forever); counts calls."""
    calls = [0]

    async def attempt() -> Response:
        calls[0] += 1
        return response(*answers[min(calls[0], len(answers)) - 1])

    return calls, attempt


async def test_no_retry_whose_backoff_would_pass_the_deadline() -> None:
    calls, attempt = script((503, "SlowDown"))
    policy = RetryPolicy(rules=S3_RULES, max_attempts=10, base=5.0, cap=5.0, deadline=1e-9)
    resp = await policy.call(attempt, "upload")
    assert (calls[0], resp.status) == (1, 503)
    assert "retry deadline of 1e-09 s" in resp.message


async def test_the_deadline_runs_from_the_start_of_the_api_call_not_of_the_loop() -> None:
    """A loop run again for the same API call (a region re-route, a fallback resend) passes
    when the call began: a deadline already spent there allows no retry, though the loop's
    first attempt is always made."""
    policy = RetryPolicy(rules=S3_RULES, max_attempts=10, base=0.001, cap=0.001, deadline=5.0)
    calls, attempt = script((503, "SlowDown"), (200, ""))
    resp = await policy.call(attempt, "upload", time.monotonic() - 10.0)  # began 10 s ago
    assert (calls[0], resp.status) == (1, 503)
    assert "retry deadline of 5 s would pass" in resp.message
    calls, attempt = script((503, "SlowDown"), (200, ""))
    resp = await policy.call(attempt, "upload", time.monotonic())  # began now: retried
    assert (calls[0], resp.status, resp.attempts) == (2, 200, 2)


async def test_an_empty_retry_quota_stops_retries_and_successes_refill_it() -> None:
    quota = RetryQuota(12)  # two retries' worth (5 each)
    policy = RetryPolicy(rules=S3_RULES, max_attempts=10, base=0.001, cap=0.001, quota=quota)
    calls, attempt = script((500, "InternalError"))
    resp = await policy.call(attempt, "upload")
    assert (calls[0], resp.status, quota.tokens) == (3, 500, 2)
    assert "retry quota is spent" in resp.message
    calls, attempt = script((500, "InternalError"))  # fails fast now: no retry at all
    assert (await policy.call(attempt, "upload")).attempts == 1
    assert calls[0] == 1
    for _ in range(3):  # an answer that needed no retry gives one token back
        await policy.call(script((200, ""))[1], "download")
    assert quota.tokens == 5
    calls, attempt = script((500, "InternalError"), (200, ""))
    assert (await policy.call(attempt, "upload")).status == 200  # took 5, gave the 5 back
    assert quota.tokens == 5


async def test_a_connection_failure_costs_more_quota_than_an_error_answer() -> None:
    quota = RetryQuota(100)

    async def attempt() -> Response:
        raise aiohttp.ServerDisconnectedError()

    with pytest.raises(aiobucket.BackendError, match=r"\(3 attempts over"):
        await RetryPolicy(rules=S3_RULES, max_attempts=3, base=0.001, cap=0.001, quota=quota).call(
            attempt, "download"
        )
    assert quota.tokens == 100 - 2 * RetryQuota.TIMEOUT_COST


async def test_throttles_cost_no_quota_when_the_send_rate_adapts() -> None:
    quota = RetryQuota(500)
    policy = RetryPolicy(rules=S3_RULES, max_attempts=3, base=0.001, cap=0.001, quota=quota, rate=SendRate())
    _, attempt = script((503, "SlowDown"), (503, "SlowDown"), (200, ""))
    assert (await policy.call(attempt, "upload")).status == 200
    assert quota.tokens == 500
    plain = RetryPolicy(rules=S3_RULES, max_attempts=3, base=0.001, cap=0.001, quota=RetryQuota(500))
    _, attempt = script((503, "SlowDown"), (503, "SlowDown"))
    await plain.call(attempt, "upload")
    assert plain.quota.tokens == 500 - 2 * RetryQuota.RETRY_COST


@pytest.mark.parametrize("code", ["BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"])
async def test_corruption_in_transit_is_resent_once_then_final(code: str) -> None:
    # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html: BadDigest, 400:
    # "The Content-MD5 or checksum value that you specified did not match what the server received."
    policy = RetryPolicy(rules=S3_RULES, max_attempts=10, base=0.001, cap=0.001)
    calls, attempt = script((400, code), (200, ""))
    resp = await policy.call(attempt, "upload")
    assert (calls[0], resp.status, resp.attempts) == (2, 200, 2)
    calls, attempt = script((400, code))
    resp = await policy.call(attempt, "upload")
    assert (calls[0], resp.status, resp.code) == (2, 400, code)  # once only: then IntegrityError


# -- the adaptive send rate (botocore's adaptive mode, cut once per round trip) ----------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_send_rate_is_off_until_the_first_throttle_then_cuts_to_what_was_accepted() -> None:
    clock = Clock()
    rate = SendRate(clock)
    for _ in range(200):  # a second at 200 req/s, all accepted: nothing is paced
        clock.now += 0.005
        rate.sending(clock.now)
        rate.record(clock.now, throttled=False)
    assert not rate.enabled
    clock.now += 0.005
    rate.record(clock.now, throttled=True)  # the server starts admitting 100 req/s
    assert rate.enabled and rate.rate < 0.95 * 201
    first_cut = clock.now
    for i in range(200):  # the next second: every other answer throttled, all sent before
        clock.now += 0.005  # a fresh cut (as if from requests already in flight)
        rate.sending(clock.now)
        rate.record(first_cut if i % 2 else clock.now, throttled=i % 2 == 1)
    clock.now += 0.005
    rate.record(clock.now, throttled=True)  # a fresh throttle: cut to what was accepted
    assert 90 <= rate.rate <= 110  # botocore: 0.7 of the rate it was sending at


def test_send_rate_cuts_once_per_round_trip() -> None:
    clock = Clock()
    rate = SendRate(clock)
    for _ in range(100):
        clock.now += 0.01
        rate.sending(clock.now)
        rate.record(clock.now, throttled=False)
    sent_before_cut = clock.now
    clock.now += 0.01
    rate.record(sent_before_cut, throttled=True)
    after_first = rate.rate
    for _ in range(50):  # the rest of that burst, sent at the old rate: no further cut
        rate.record(sent_before_cut, throttled=True)
    assert rate.rate == after_first
    clock.now += 0.01
    rate.record(clock.now, throttled=True)  # sent after the cut: cut again
    assert rate.rate < after_first


def test_send_rate_grows_back_towards_the_rate_it_was_cut_from() -> None:
    clock = Clock()
    rate = SendRate(clock)
    for _ in range(400):  # 400 req/s for a second, every answer accepted
        clock.now += 0.0025
        rate.sending(clock.now)
        rate.record(clock.now, throttled=False)
    rate.record(clock.now, throttled=True)
    cut = rate.rate
    assert cut < 0.95 * 400
    seen = []
    for _ in range(8):  # keep sending at the cut rate; answers are good
        for _ in range(int(cut)):
            clock.now += 1 / cut
            rate.sending(clock.now)
            rate.record(clock.now, throttled=False)
        seen.append(rate.rate)
    assert seen == sorted(seen) and seen[-1] > cut  # it grows, never shrinks, without throttles
    assert all(r <= 2 * 400 for r in seen)  # never past twice what was measured


async def test_send_slots_are_spaced_and_a_cancel_ends_the_wait_at_once() -> None:
    rate = SendRate()
    rate.enabled, rate.rate = True, 200.0
    slots = [await rate.acquire() for _ in range(5)]
    assert slots == sorted(slots)
    assert slots[-1] - slots[0] >= 4 / 200 - 1e-9  # (a late wake-up may shorten the next gap)
    rate.rate = 0.001  # a cut applies to the very next slot: 1000 s away
    task = asyncio.create_task(rate.acquire())
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - cancelled_at < 10.0
