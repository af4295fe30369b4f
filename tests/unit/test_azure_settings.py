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
