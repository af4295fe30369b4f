"""Azure keys: the hot path's fast checks decide as the plain rules do; where a listing starts."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiobucket import InvalidArgument, config
from aiobucket.providers.azure._provider import AzureProvider, check_key, start_from
from aiobucket.providers.azure._settings import parse_settings

# Biased to the characters the rules and the quoting fast path look at.
keys = st.text(st.sampled_from("a./\\~-_ %é0"), max_size=12) | st.text(max_size=12)


def _provider() -> AzureProvider:
    settings = config.settings_from(
        "b", {"url": "az://photos?account=acme&endpoint=http://127.0.0.1:10000", "account_key": "a2V5"}
    )
    return AzureProvider(parse_settings(settings, "b"))


@given(keys)
def test_check_key_refuses_exactly_a_backslash_or_a_segment_ending_in_a_dot(key: str) -> None:
    refused = "\\" in key or any(segment.endswith(".") for segment in key.split("/"))
    if refused:
        with pytest.raises(InvalidArgument, match="Azure Blob Storage"):
            check_key(key)
    else:
        check_key(key)


@given(keys)
def test_the_path_is_the_percent_encoded_key(key: str) -> None:
    """Keys of unreserved characters skip quote(); every key ends up encoded as quote() does it."""
    assert _provider().path_of(key) == "/acme/photos/" + quote(key, safe="/~")


@pytest.mark.parametrize(
    ("prefix", "start_after", "delimiter", "expected"),
    [
        ("a/", "a/2", None, "a/2"),
        ("a/", "a/d/w", None, "a/d/w"),  # a flat listing takes any depth
        ("a/", "a/d/w", "/", "a/d"),  # one level below the prefix: still before start_after
        ("a/", "a/2", "/", "a/2"),
        ("a/", "b", None, None),  # outside the prefix: list it from its start
        ("a/", "a/", None, None),
        ("", "x/y", "/", "x"),
        ("a/", None, None, None),
    ],
)
def test_start_from_is_at_or_before_start_after_within_the_prefix(
    prefix: str, start_after: str | None, delimiter: str | None, expected: str | None
) -> None:
    assert start_from(prefix, start_after, delimiter) == expected
