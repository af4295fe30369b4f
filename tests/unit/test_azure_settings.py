"""az:// configuration: URL and option parsing, refused mistakes, no driver at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aiobucket import InvalidArgument, config
from aiobucket.providers.azure._settings import parse_settings


def _parse(url: str, **options: object):  # type: ignore[no-untyped-def]
    return parse_settings(config.settings_from("b", {"url": url, **options}), "b")


def test_account_endpoint_and_shared_option_names() -> None:
    s = _parse("az://photos?account=acme", account_key="a2V5", max_attempts=3, read_timeout=5)
    assert (s.container, s.account, s.endpoint) == ("photos", "acme", "https://acme.blob.core.windows.net")
    assert (s.account_key, s.max_attempts, s.read_timeout) == ("a2V5", 3, 5.0)
    s = _parse("az://photos?account=devstoreaccount1&endpoint=http://127.0.0.1:10000/")
    assert s.endpoint == "http://127.0.0.1:10000"
    assert "a2V5" not in repr(_parse("az://photos?account=acme", account_key="a2V5"))


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("az://photos", {}, "needs the storage account"),
        ("az://Photos?account=acme", {}, "container name"),
        ("az://photos?account=acme&region=x", {}, "unknown parameter"),
        ("az://photos?account=acme", {"secret_access_key": "x"}, "unknown option"),
        ("az://photos?account=ACME!", {}, "storage account name"),
        ("az://photos?account=acme&endpoint=ftp://x", {}, "http:// or https://"),
        ("az://photos?account=acme", {"account_key": "k", "account_key_env": "K"}, "not both"),
        ("az://photos?account=acme", {"account_key_env": "AIOBUCKET_TEST_UNSET_VAR"}, "not set"),
    ],
)
def test_mistakes_are_refused_with_what_to_fix(url: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        _parse(url, **options)


def test_a_key_that_is_not_base64_is_refused() -> None:
    from aiobucket.providers.azure._auth import make_auth

    with pytest.raises(InvalidArgument, match="base64"):
        make_auth(_parse("az://photos?account=acme", account_key="not base64!"))


def test_az_scheme_is_registered_and_importing_it_loads_no_sdk() -> None:
    code = (
        "import sys, aiobucket\n"
        "from aiobucket import config\n"
        "s = config.settings_from('b', 'az://photos?account=acme')\n"
        "import aiobucket.providers.azure\n"
        "assert not [m for m in sys.modules if m.startswith(('azure', 'aiohttp'))], 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_connection_strings_as_the_portal_and_azurite_give_them(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _parse(
        "az://photos",
        connection_string="DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=a2V5==;"
        "EndpointSuffix=core.chinacloudapi.cn",
    )
    assert (s.account, s.endpoint, s.account_key) == (
        "acme",
        "https://acme.blob.core.chinacloudapi.cn",
        "a2V5==",
    )
    s = _parse(
        "az://photos",
        connection_string="BlobEndpoint=https://acme.blob.core.windows.net/;SharedAccessSignature=sv=2025-01-05&sig=c2ln",
    )
    assert (s.account, s.sas_token, s.account_key) == ("acme", "sv=2025-01-05&sig=c2ln", None)
    s = _parse("az://photos", connection_string="UseDevelopmentStorage=true")
    assert (s.account, s.endpoint) == ("devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1")
    assert s.account_key is not None and s.account_key.startswith("Eby8")
    monkeypatch.setenv(
        "AIOBUCKET_TEST_CS", "BlobEndpoint=http://127.0.0.1:4711/devstoreaccount1;AccountKey=a2V5"
    )
    s = _parse("az://photos", connection_string_env="AIOBUCKET_TEST_CS")
    assert (s.account, s.endpoint) == ("devstoreaccount1", "http://127.0.0.1:4711/devstoreaccount1")


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("az://photos?account=acme", {"connection_string": "AccountName=acme;AccountKey=k"}, "not both"),
        ("az://photos", {"connection_string": "AccountName=a1b", "account_key": "k"}, "not both"),
        ("az://photos", {"connection_string": "x", "connection_string_env": "X"}, "not both"),
        ("az://photos", {"connection_string_env": "AIOBUCKET_TEST_UNSET_VAR"}, "not set"),
        ("az://photos", {"connection_string": "AccountKey=secretvalue;junk"}, "not Name=Value"),
        ("az://photos", {"connection_string": "AccountKey=secretvalue"}, "no AccountName"),
    ],
)
def test_connection_string_mistakes(url: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        _parse(url, **options)
    assert "secretvalue" not in str(info.value)  # the key is never echoed
