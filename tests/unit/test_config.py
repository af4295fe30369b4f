"""Runtime configuration: code, the AIOBUCKET_CONFIG TOML file, the default, overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import aiobucket
from aiobucket import Bucket, BucketSettings, InvalidArgument, config

pytestmark = pytest.mark.usefixtures("clean_config")


def write_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, name: str = "aiobucket.toml"
) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv(config.ENV_VAR, str(path))
    return path


# -- the default ----------------------------------------------------------------------------------


def test_no_config_puts_buckets_under_dot_aiobucket_in_cwd(tmp_path: Path) -> None:
    settings = config.resolve("profile-pictures")
    assert settings == BucketSettings(url=f"file://{tmp_path.resolve()}/.aiobucket/profile-pictures")
    assert settings.scheme == "file"
    assert settings.key_prefix == ""
    assert dict(settings.options) == {}


def test_default_follows_cwd_at_resolve_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert config.resolve("b").url == f"file://{sub.resolve()}/.aiobucket/b"


async def _roundtrip(name: str) -> bytes:
    b = Bucket(name)
    async with b.upload("k.txt") as w:
        await w.write(b"hello")
    async with b.download("k.txt") as r:
        data = await r.read()
    await aiobucket.aclose()
    return data


@pytest.mark.anyio
async def test_no_config_default_really_stores_files_there(tmp_path: Path) -> None:
    assert await _roundtrip("default-bucket") == b"hello"
    assert (tmp_path / ".aiobucket" / "default-bucket").is_dir()


# -- configure() from code ------------------------------------------------------------------------


def test_configure_string_table_and_settings_forms() -> None:
    aiobucket.configure(
        {
            "plain": "memory://",
            "table": {
                "url": "s3://store?endpoint=http://127.0.0.1:9",
                "key_prefix": "pp/",
                "public_base_url": "https://cdn.example.com/pp/",
                "part_size": 1024,
                "concurrency": 3,
                "region": "eu-west-1",
            },
            "obj": BucketSettings(url="memory://", concurrency=2),
        }
    )
    assert config.resolve("plain") == BucketSettings(url="memory://")
    t = config.resolve("table")
    assert (t.url, t.key_prefix, t.public_base_url, t.part_size, t.concurrency) == (
        "s3://store?endpoint=http://127.0.0.1:9",
        "pp/",
        "https://cdn.example.com/pp/",
        1024,
        3,
    )
    assert dict(t.options) == {"region": "eu-west-1"}
    assert config.resolve("obj").concurrency == 2


def test_configure_default_routes_unlisted_buckets() -> None:
    aiobucket.configure({"named": "memory://special"}, default="memory://?ns=abc")
    assert config.resolve("named").url == "memory://special"
    # memory:// without a store name takes the bucket name, the query is kept.
    assert config.resolve("other").url == "memory://other?ns=abc"


def test_configure_file_default_puts_each_bucket_in_a_subdirectory() -> None:
    aiobucket.configure(default="file:///srv/objects")
    assert config.resolve("b1").url == "file:///srv/objects/b1"


def test_configure_replaces_the_earlier_call() -> None:
    aiobucket.configure({"a": "memory://one"})
    aiobucket.configure({"b": "memory://two"})
    assert config.resolve("b").url == "memory://two"
    assert config.resolve("a").scheme == "file"  # back to the default


def test_configure_beats_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, '[buckets]\na = "memory://from-file"\n')
    assert config.resolve("a").url == "memory://from-file"
    aiobucket.configure({"a": "memory://from-code"})
    assert config.resolve("a").url == "memory://from-code"


def test_configure_bumps_generation() -> None:
    before = config.generation()
    aiobucket.configure({"a": "memory://"})
    assert config.generation() > before


# -- the TOML file ---------------------------------------------------------------------------------


def test_config_file_string_and_table_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(
        tmp_path,
        monkeypatch,
        """
default = "memory://?ns=filedefault"

[buckets]
plain = "memory://plainstore"

[buckets.profile-pictures]
url = "s3://cloud-name?region=eu-west-1&endpoint=http://127.0.0.1:8333"
key_prefix = "pp/"
public_base_url = "https://cdn.example.com/pp/"
part_size = 8388608
concurrency = 8
access_key_id = "AKIA"
secret_access_key_env = "MY_SECRET"
read_timeout = 5
""",
    )
    assert config.resolve("plain") == BucketSettings(url="memory://plainstore")
    pp = config.resolve("profile-pictures")
    assert pp.url == "s3://cloud-name?region=eu-west-1&endpoint=http://127.0.0.1:8333"
    assert pp.scheme == "s3"
    assert pp.key_prefix == "pp/"
    assert pp.public_base_url == "https://cdn.example.com/pp/"
    assert pp.part_size == 8388608
    assert pp.concurrency == 8
    assert dict(pp.options) == {
        "access_key_id": "AKIA",
        "secret_access_key_env": "MY_SECRET",
        "read_timeout": 5,
    }
    assert config.resolve("unlisted").url == "memory://unlisted?ns=filedefault"
    assert set(config.configured_buckets()) == {"plain", "profile-pictures"}


def test_config_file_is_read_once_until_reset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, monkeypatch, '[buckets]\na = "memory://first"\n')
    assert config.resolve("a").url == "memory://first"
    path.write_text('[buckets]\na = "memory://second"\n')
    assert config.resolve("a").url == "memory://first"
    config.reset()
    assert config.resolve("a").url == "memory://second"


def test_config_file_default_for_file_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, f'default = "file://{tmp_path}/store"\n')
    assert config.resolve("b").url == f"file://{tmp_path}/store/b"


def test_code_default_beats_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, 'default = "memory://?ns=file"\n')
    aiobucket.configure(default="memory://?ns=code")
    assert config.resolve("b").url == "memory://b?ns=code"


@pytest.mark.anyio
async def test_config_file_bucket_is_used_by_bucket_operations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "objects"
    write_config(tmp_path, monkeypatch, f'[buckets.files]\nurl = "file://{root}"\nkey_prefix = "pre/"\n')
    assert await _roundtrip("files") == b"hello"
    assert root.is_dir() and any(root.iterdir())
    assert not (tmp_path / ".aiobucket").exists()


# -- errors: each names the bucket or the file -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        pytest.param("not a url", "is not a URL; use memory://", id="no-scheme"),
        pytest.param("/abs/path", "is not a URL", id="bare-path"),
        pytest.param("file:relative/dir", "is not a URL", id="file-colon-relative"),
        pytest.param(123, "config must be a URL string or a table with 'url', got int", id="int"),
        pytest.param({"key_prefix": "x/"}, "config needs a 'url'", id="table-without-url"),
        pytest.param({"url": 5}, "is not a URL", id="url-not-str"),
        pytest.param("ftp://host/x", "unknown scheme 'ftp'", id="unknown-scheme"),
        pytest.param("file://", "needs an absolute path", id="file-empty-path"),
        pytest.param(
            {"url": "memory://", "key_prefix": "/abs/"}, "key_prefix: prefix '/abs/' must not", id="kp-slash"
        ),
        pytest.param({"url": "memory://", "key_prefix": "a/../"}, "key_prefix: prefix", id="kp-dotdot"),
        pytest.param({"url": "memory://", "key_prefix": 7}, "key_prefix: prefix must be a str", id="kp-int"),
        pytest.param({"url": "memory://", "key_prefix": "a\x00"}, "key_prefix: prefix", id="kp-nul"),
        pytest.param(
            {"url": "memory://", "part_size": 0}, "part_size must be a positive int, got 0", id="ps-0"
        ),
        pytest.param({"url": "memory://", "part_size": -5}, "part_size must be a positive int", id="ps-neg"),
        pytest.param(
            {"url": "memory://", "part_size": "8MB"}, "part_size must be a positive int", id="ps-str"
        ),
        pytest.param(
            {"url": "memory://", "part_size": True}, "part_size must be a positive int", id="ps-bool"
        ),
        pytest.param(
            {"url": "memory://", "part_size": 1.5}, "part_size must be a positive int", id="ps-float"
        ),
        pytest.param(
            {"url": "memory://", "concurrency": 0}, "concurrency must be a positive int", id="conc-0"
        ),
        pytest.param(
            {"url": "memory://", "public_base_url": 3}, "public_base_url must be a str", id="pub-int"
        ),
    ],
)
def test_bad_bucket_config_from_code_names_the_bucket(value: object, hint: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        aiobucket.configure({"my-bucket": value})
    assert "bucket 'my-bucket'" in str(info.value)
    assert hint in str(info.value)
    # Nothing was half applied.
    assert config.resolve("my-bucket").scheme == "file"


@pytest.mark.parametrize("url", ["file://relative/dir", "file://./data"])
def test_relative_file_url_is_rejected_by_configure(url: str) -> None:
    with pytest.raises(InvalidArgument, match=r"bucket 'rel'.*needs an absolute path"):
        aiobucket.configure({"rel": url})


def test_the_config_file_shape_passed_to_configure_gets_a_hint() -> None:
    with pytest.raises(InvalidArgument, match=r"configure\(\) takes the buckets table itself"):
        aiobucket.configure({"buckets": {"avatars": "memory://"}})


def test_bad_default_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match=r"bucket '<default>'.*unknown scheme 'nope'"):
        aiobucket.configure(default="nope://x")


def test_configure_rejects_a_non_mapping() -> None:
    with pytest.raises(InvalidArgument, match="takes a mapping"):
        aiobucket.configure(["memory://"])  # type: ignore[arg-type]


def test_an_unknown_option_is_an_error_naming_the_valid_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt name (key_prefx) would otherwise be ignored: every key stored unprefixed."""
    write_config(tmp_path, monkeypatch, '[buckets.b]\nurl = "s3://cloud"\nkey_prefx = "pp/"\n')
    with pytest.raises(InvalidArgument) as info:
        config.resolve("b")
    message = str(info.value)
    assert message.startswith("bucket 'b': ")
    assert "unknown option 'key_prefx' (did you mean 'key_prefix'?)" in message
    assert (
        "a s3:// bucket takes: url, key_prefix, public_base_url, part_size, concurrency, region," in message
    )
    assert "secret_access_key_env" in message  # the S3 provider's own options are listed too


@pytest.mark.parametrize(
    ("url", "option", "accepted"),
    [
        ("s3://cloud", "access_key_id", True),
        ("s3://cloud", "service_file", False),  # a GCS option
        ("gs://cloud", "service_file", True),
        ("gs://cloud", "access_key_id", False),
        ("file:///srv/b", "dev_server_url", True),
        ("file:///srv/b", "public", True),
        ("file:///srv/b", "region", False),
        ("memory://", "region", False),  # memory takes no options at all
    ],
)
def test_options_are_checked_per_scheme(url: str, option: str, accepted: bool) -> None:
    settings = {"url": url, option: "x"}
    if accepted:
        aiobucket.configure({"b": settings})
        assert dict(config.resolve("b").options) == {option: "x"}
    else:
        with pytest.raises(InvalidArgument, match=rf"bucket 'b': unknown option '{option}'"):
            aiobucket.configure({"b": settings})


def test_checking_options_does_not_import_a_driver(tmp_path: Path) -> None:
    """The S3 and GCS packages declare OPTIONS without importing aiobotocore or gcloud."""
    script = (
        "import sys, aiobucket\n"
        "aiobucket.configure({'a': {'url': 's3://x', 'region': 'r'}, 'g': {'url': 'gs://y', 'retries': 2}})\n"
        "print(sorted(m for m in ('aiobotocore', 'gcloud', 'aiohttp') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n"


def test_registered_providers_declare_their_options_or_take_any(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_OPTIONS", {})
    config.register_provider("strict", lambda s, n, c: None, options=["colour"])  # type: ignore[arg-type,return-value]
    config.register_provider("loose", lambda s, n, c: None)  # type: ignore[arg-type,return-value]
    aiobucket.configure({"a": {"url": "strict://x", "colour": "red"}, "b": {"url": "loose://", "any": 1}})
    with pytest.raises(InvalidArgument, match=r"unknown option 'color' \(did you mean 'colour'\?\)"):
        aiobucket.configure({"a": {"url": "strict://x", "color": "red"}})


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        pytest.param("this is = = not toml", "is not valid TOML", id="invalid-toml"),
        pytest.param("bukets = {}\n", "unknown top-level keys ['bukets']", id="unknown-top-level"),
        pytest.param("default = 5\n", "'default' must be a URL string", id="default-int"),
    ],
)
def test_bad_config_file_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, hint: str
) -> None:
    path = write_config(tmp_path, monkeypatch, text)
    with pytest.raises(InvalidArgument) as info:
        config.resolve("any")
    assert repr(str(path)) in str(info.value)
    assert hint in str(info.value)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        pytest.param('[buckets]\nb = "ftp://x"\n', "unknown scheme 'ftp'", id="unknown-scheme"),
        pytest.param('[buckets.b]\nurl = "memory://"\npart_size = 0\n', "part_size", id="part-size"),
        pytest.param('[buckets.b]\nurl = "memory://"\nkey_prefix = "/x"\n', "key_prefix", id="key-prefix"),
        pytest.param('[buckets.b]\nregion = "x"\n', "needs a 'url'", id="no-url"),
    ],
)
def test_bad_bucket_in_config_file_names_the_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, hint: str
) -> None:
    write_config(tmp_path, monkeypatch, text)
    with pytest.raises(InvalidArgument) as info:
        config.resolve("b")
    assert "bucket 'b'" in str(info.value)
    assert hint in str(info.value)


def test_missing_config_file_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv(config.ENV_VAR, str(missing))
    with pytest.raises(InvalidArgument, match="cannot read config file") as info:
        config.resolve("b")
    assert str(missing) in str(info.value)


@pytest.mark.anyio
async def test_config_file_error_surfaces_from_bucket_operations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, monkeypatch, "not [ toml")
    with pytest.raises(InvalidArgument) as info:
        await Bucket("b").exists("k")
    assert str(path) in str(info.value)


# -- override() -------------------------------------------------------------------------------------


def test_override_nests_and_restores() -> None:
    aiobucket.configure({"a": "memory://code-a"})
    gen0 = config.generation()
    with config.override({"a": "memory://outer-a", "b": "memory://outer-b"}):
        assert config.resolve("a").url == "memory://outer-a"
        assert config.resolve("b").url == "memory://outer-b"
        with config.override({"b": "memory://inner-b"}):
            assert config.resolve("a").url == "memory://outer-a"  # falls through to the outer
            assert config.resolve("b").url == "memory://inner-b"
        assert config.resolve("b").url == "memory://outer-b"
        with config.override(default="memory://?ns=inner"):
            # An inner default routes every bucket, even ones an outer override names.
            assert config.resolve("a").url == "memory://a?ns=inner"
        assert config.resolve("a").url == "memory://outer-a"
    assert config.resolve("a").url == "memory://code-a"
    assert config.resolve("b").scheme == "file"
    assert config.generation() > gen0
    assert config._state.overrides == []


def test_override_restores_after_an_exception() -> None:
    with pytest.raises(RuntimeError, match="boom"), config.override({"a": "memory://x"}):
        assert config.resolve("a").url == "memory://x"
        raise RuntimeError("boom")
    assert config.resolve("a").scheme == "file"
    assert config._state.overrides == []


def test_override_validates_before_applying() -> None:
    with pytest.raises(InvalidArgument, match="bucket 'a'"), config.override({"a": "bogus"}):
        pass  # pragma: no cover
    assert config._state.overrides == []


def test_override_beats_configure_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, '[buckets]\na = "memory://file"\n')
    aiobucket.configure({"a": "memory://code"})
    with config.override({"a": "memory://override"}):
        assert config.resolve("a").url == "memory://override"
    assert config.resolve("a").url == "memory://code"


def test_reset_forgets_configure() -> None:
    aiobucket.configure({"a": "memory://x"}, default="memory://?ns=q")
    config.reset()
    assert config.resolve("a").scheme == "file"


# -- providers that cannot be loaded -----------------------------------------------------------


@pytest.mark.anyio
async def test_s3_bucket_with_missing_driver_module_says_what_to_install() -> None:
    aiobucket.register_provider("s3", "missing_s3_driver_xyz:create")
    aiobucket.configure({"cloud": "s3://cloud-name?region=eu-west-1"})
    with pytest.raises(InvalidArgument) as info:
        await Bucket("cloud").exists("k")
    msg = str(info.value)
    assert "bucket 'cloud'" in msg
    assert "s3:// needs an optional dependency (missing_s3_driver_xyz)" in msg
    assert "install aiobucket[s3]" in msg
    assert isinstance(info.value.__cause__, ImportError)


@pytest.mark.anyio
async def test_driver_module_whose_dependency_is_missing_names_the_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_s3_driver_mod.py").write_text("import aiobotocore_not_installed_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_s3_driver_mod", raising=False)
    aiobucket.register_provider("gs", "fake_s3_driver_mod:create")
    aiobucket.configure({"g": "gs://cloud"})
    with pytest.raises(InvalidArgument) as info:
        await Bucket("g").exists("k")
    assert "gs:// needs an optional dependency (aiobotocore_not_installed_xyz)" in str(info.value)
    assert "install aiobucket[gcs]" in str(info.value)


@pytest.mark.anyio
async def test_missing_aiobucket_provider_module_says_not_available() -> None:
    aiobucket.register_provider("s3", "aiobucket.providers.does_not_exist_xyz:create")
    aiobucket.configure({"cloud": "s3://cloud-name"})
    with pytest.raises(InvalidArgument, match=r"bucket 'cloud': s3:// is not available in this version"):
        await Bucket("cloud").attrs("k")


@pytest.mark.anyio
async def test_unknown_scheme_provider_missing_module_suggests_all_extra() -> None:
    aiobucket.register_provider("azb", "azure_missing_module_xyz:create")
    aiobucket.configure({"az": "azb://container"})
    with pytest.raises(InvalidArgument, match=r"install aiobucket\[all\]"):
        await Bucket("az").exists("k")


def test_registering_a_scheme_makes_it_valid() -> None:
    with pytest.raises(InvalidArgument, match="unknown scheme 'custom'"):
        aiobucket.configure({"c": "custom://x"})
    aiobucket.register_provider("custom", "aiobucket.providers.memory:create")
    aiobucket.configure({"c": "custom://x"})
    assert config.resolve("c").scheme == "custom"


@pytest.mark.anyio
async def test_missing_third_party_module_named_like_aiobucket_is_an_optional_dependency() -> None:
    aiobucket.register_provider("s3", "aiobucket_azure_plugin_xyz:create")
    aiobucket.configure({"cloud": "s3://cloud-name"})
    with pytest.raises(InvalidArgument, match=r"needs an optional dependency \(aiobucket_azure_plugin_xyz\)"):
        await Bucket("cloud").exists("k")
