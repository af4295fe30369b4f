"""Where buckets live: a mapping from bucket name to a provider URL, kept out of code.

Resolution order for a bucket name:
1. an active override (``aiobucket.testing`` uses this for per-test isolation);
2. ``configure(...)`` from code;
3. the TOML file named by ``AIOBUCKET_CONFIG``;
4. the default: the local filesystem under ``./.aiobucket/<bucket name>``.

TOML format::

    default = "file:///srv/objects"          # optional: where unlisted buckets live

    [buckets.profile-pictures]
    url = "s3://cloud-name?region=eu-west-1&endpoint=http://127.0.0.1:8333"
    key_prefix = "pp/"                        # optional
    public_base_url = "https://cdn.example.com/pp/"   # optional
    part_size = 8388608                       # optional, bytes
    concurrency = 8                           # optional, parts in flight
    # other keys are the provider's options, e.g. access_key_id, secret_access_key_env

A bucket may also be a plain string: ``profile-pictures = "memory://"``.

Option names are checked when the configuration is read: besides the fields
above, a bucket takes the options its provider declares (the ``OPTIONS`` tuple
of the provider's module, or ``register_provider(..., options=...)``), so a
misspelt ``key_prefx`` is an error naming the valid ones, never silently ignored.
"""

from __future__ import annotations

import difflib
import importlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .errors import InvalidArgument
from .keys import validate_prefix

if TYPE_CHECKING:
    from .providers.base import Provider
    from .types import BucketConfig

    Factory = Callable[["BucketSettings", str, BucketConfig], Provider]

__all__ = [
    "BucketSettings",
    "configure",
    "load_config_file",
    "register_provider",
    "resolve",
]

DEFAULT_ROOT = ".aiobucket"
ENV_VAR = "AIOBUCKET_CONFIG"

_KNOWN_FIELDS = ("url", "key_prefix", "public_base_url", "part_size", "concurrency")

# Provider modules are imported on first use so `import aiobucket` stays cheap.
_PROVIDERS: dict[str, str | Factory] = {
    "memory": "aiobucket.providers.memory:create",
    "file": "aiobucket.providers.local:create",
    "s3": "aiobucket.providers.s3:create",
    "gs": "aiobucket.providers.gcs:create",
    "az": "aiobucket.providers.azure:create",
}
# Option names of providers registered with a callable (string factories declare OPTIONS).
_OPTIONS: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class BucketSettings:
    """The resolved configuration of one bucket."""

    url: str
    key_prefix: str = ""
    public_base_url: str | None = None
    part_size: int | None = None
    concurrency: int | None = None
    options: Mapping[str, object] = field(default_factory=dict)
    """Provider-specific settings from the config (credentials, timeouts, ...)."""

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme


def register_provider(
    scheme: str, factory: str | Factory, *, options: tuple[str, ...] | list[str] | None = None
) -> None:
    """Route ``scheme://`` URLs to a provider factory (a callable or "module:attr").

    ``options`` names the config options the provider takes; with it, any other
    name is refused when the configuration is read. A "module:attr" factory may
    instead declare them as ``OPTIONS`` in its module. With neither, any name passes.
    """
    _PROVIDERS[scheme] = factory
    _OPTIONS.pop(scheme, None)
    if options is not None:
        _OPTIONS[scheme] = tuple(options)


def _declared_options(scheme: str) -> tuple[str, ...] | None:
    """The option names ``scheme``'s provider declares; None when it declares none."""
    if scheme in _OPTIONS:
        return _OPTIONS[scheme]
    factory = _PROVIDERS.get(scheme)
    if not isinstance(factory, str):
        return None
    try:  # provider packages keep their drivers out of this import
        module = importlib.import_module(factory.partition(":")[0])
    except ImportError:
        return None  # reported when the provider is built, with the extra to install
    declared = getattr(module, "OPTIONS", None)
    return tuple(declared) if isinstance(declared, tuple | list) else None


def _check_options(name: str, s: BucketSettings) -> None:
    declared = _declared_options(s.scheme) if s.options else None
    if declared is None:
        return
    unknown = sorted(k for k in s.options if k not in declared)
    if not unknown:
        return
    valid = [*_KNOWN_FIELDS, *declared]
    hints = [m for k in unknown for m in difflib.get_close_matches(k, valid, n=1)]
    guess = f" (did you mean {' or '.join(repr(h) for h in hints)}?)" if hints else ""
    raise InvalidArgument(
        f"bucket {name!r}: unknown option{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(repr(k) for k in unknown)}{guess}; a {s.scheme}:// bucket takes: {', '.join(valid)}"
    )


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = 0
        self.code: dict[str, BucketSettings] = {}
        self.code_default: str | None = None
        self.file: dict[str, BucketSettings] | None = None
        self.file_default: str | None = None
        self.overrides: list[Callable[[str], BucketSettings | None]] = []

    def bump(self) -> None:
        self.generation += 1


_state = _State()


def generation() -> int:
    """Changes whenever the configuration changes; providers are cached per generation."""
    return _state.generation


def _settings(name: str, value: object) -> BucketSettings:
    if isinstance(value, BucketSettings):
        settings = value
    elif isinstance(value, str):
        settings = BucketSettings(url=value)
    elif isinstance(value, Mapping):
        if "url" not in value:
            hint = ""
            if name == "buckets":  # the TOML file's shape passed to configure()/override()
                hint = "; configure() takes the buckets table itself: configure({'NAME': 'URL'}, default=...)"
            raise InvalidArgument(f"bucket {name!r}: config needs a 'url'{hint}")
        known = {k: value[k] for k in _KNOWN_FIELDS if k in value}
        options = {k: v for k, v in value.items() if k not in _KNOWN_FIELDS}
        try:
            settings = BucketSettings(**known, options=MappingProxyType(options))
        except TypeError as exc:
            raise InvalidArgument(f"bucket {name!r}: bad config: {exc}") from None
    else:
        raise InvalidArgument(
            f"bucket {name!r}: config must be a URL string or a table with 'url', got {type(value).__name__}"
        )
    settings = _url_prefix(name, settings)
    _check(name, settings)
    return settings


def _url_prefix(name: str, s: BucketSettings) -> BucketSettings:
    """A URL's ``?prefix=`` is the key prefix: move it to ``key_prefix``, the one place
    prefixes are applied (PrefixedProvider), so both spellings behave the same."""
    if not isinstance(s.url, str) or "prefix=" not in s.url:
        return s
    parts = urlsplit(s.url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [v for k, v in query if k == "prefix"]
    if not prefixes:
        return s
    if len(prefixes) > 1 or s.key_prefix:
        raise InvalidArgument(
            f"bucket {name!r}: set the key prefix once, either in the URL (?prefix=) or as key_prefix"
        )
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return replace(s, url=parts._replace(query=rest).geturl(), key_prefix=prefixes[0])


def _check(name: str, s: BucketSettings) -> None:
    if not isinstance(s.url, str) or "://" not in s.url:
        raise InvalidArgument(
            f"bucket {name!r}: url {s.url!r} is not a URL; use memory://, file:///abs/path, "
            "s3://cloud-name or gs://cloud-name"
        )
    if s.scheme not in _PROVIDERS:
        raise InvalidArgument(
            f"bucket {name!r}: unknown scheme {s.scheme!r} in {s.url!r}; "
            f"known: {', '.join(sorted(_PROVIDERS))}"
        )
    parts = urlsplit(s.url)
    if s.scheme == "file" and (parts.netloc or not parts.path.startswith("/")):
        raise InvalidArgument(
            f"bucket {name!r}: file URL {s.url!r} needs an absolute path, like file:///srv/objects"
        )
    try:
        validate_prefix(s.key_prefix)
    except InvalidArgument as exc:
        raise InvalidArgument(f"bucket {name!r}: key_prefix: {exc.message}") from None
    for fld in ("part_size", "concurrency"):
        v = getattr(s, fld)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise InvalidArgument(f"bucket {name!r}: {fld} must be a positive int, got {v!r}")
    if s.public_base_url is not None and not isinstance(s.public_base_url, str):
        raise InvalidArgument(f"bucket {name!r}: public_base_url must be a str")
    _check_options(name, s)


def _parse_tables(
    buckets: Mapping[str, object] | None, default: str | None
) -> tuple[dict[str, BucketSettings], str | None]:
    if buckets is not None and not isinstance(buckets, Mapping):
        raise InvalidArgument("configure(buckets=...) takes a mapping of bucket name to URL")
    parsed = {name: _settings(name, v) for name, v in (buckets or {}).items()}
    if default is not None:
        _check("<default>", BucketSettings(url=default))
    return parsed, default


def configure(buckets: Mapping[str, object] | None = None, *, default: str | None = None) -> None:
    """Set bucket locations from code, replacing any earlier ``configure`` call (the
    clients made for that one are dropped at the next operation: ``_runtime``).

    ``buckets`` maps names to a URL, a mapping as in the TOML file, or a
    BucketSettings. ``default`` is where unlisted buckets live.
    """
    parsed, default = _parse_tables(buckets, default)
    with _state.lock:
        _state.code, _state.code_default = parsed, default
        _state.bump()


def load_config_file(path: str | os.PathLike[str]) -> tuple[dict[str, BucketSettings], str | None]:
    """Parse a TOML config file; errors name the file."""
    import tomllib  # here, not at the top: most processes never read a config file

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise InvalidArgument(f"cannot read config file {os.fspath(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"config file {os.fspath(path)!r} is not valid TOML: {exc}") from None
    unknown = set(data) - {"default", "buckets"}
    if unknown:
        raise InvalidArgument(
            f"config file {os.fspath(path)!r}: unknown top-level keys {sorted(unknown)}; "
            "expected 'default' and [buckets.NAME] tables"
        )
    default = data.get("default")
    if default is not None and not isinstance(default, str):
        raise InvalidArgument(f"config file {os.fspath(path)!r}: 'default' must be a URL string")
    return _parse_tables(data.get("buckets", {}), default)


def _file_config() -> tuple[dict[str, BucketSettings], str | None]:
    if _state.file is None:
        path = os.environ.get(ENV_VAR)
        _state.file, _state.file_default = load_config_file(path) if path else ({}, None)
    return _state.file, _state.file_default


def _from_default(url: str, name: str) -> BucketSettings:
    # file: each bucket is a directory under the root; other schemes use the
    # bucket name as the cloud/store name when the URL leaves it out.
    parts = urlsplit(url)
    if parts.scheme == "file":
        root = Path(parts.path) / name
        settings = BucketSettings(url=f"file://{root}" + (f"?{parts.query}" if parts.query else ""))
    elif not parts.netloc:
        settings = BucketSettings(url=parts._replace(netloc=name).geturl())
    else:
        settings = BucketSettings(url=url)
    return _url_prefix(name, settings)


def resolve(name: str) -> BucketSettings:
    """Where bucket ``name`` lives right now."""
    with _state.lock:
        for route in reversed(_state.overrides):
            found = route(name)
            if found is not None:
                return found
        if name in _state.code:
            return _state.code[name]
        file_table, file_default = _file_config()
        if name in file_table:
            return file_table[name]
        default = _state.code_default or file_default
        if default is None:
            default = f"file://{Path(DEFAULT_ROOT).resolve()}"
        return _from_default(default, name)


def public_reason(name: str, settings: BucketSettings | None = None) -> str:
    """Why the tools treat bucket ``name`` as public ("" when they do not).

    The CLI and ``aiobucket serve`` cannot see the code's ``BucketConfig(public=...)``,
    so this is their one rule: the bucket's config has ``public_base_url`` or
    ``public = true``, or (local buckets) code that declared it ``BucketConfig(public=True)``
    has opened it, which leaves a marker file. The library itself follows the BucketConfig.
    """
    s = settings or resolve(name)
    if s.public_base_url:
        return "public_base_url in the config"
    if s.options.get("public") is True:
        return "public = true in the config"
    if s.scheme == "file":
        from .providers.local import _signing, root_of

        if _signing.is_marked_public(root_of(s.url)):
            return "declared BucketConfig(public=True) (marker file)"
    return ""


def configured_buckets() -> dict[str, BucketSettings]:
    """Every bucket named in configuration (code, file, overrides)."""
    with _state.lock:
        out = dict(_file_config()[0])
        out.update(_state.code)
        return out


@contextmanager
def override(buckets: Mapping[str, object] | None = None, *, default: str | None = None) -> Iterator[None]:
    """Temporarily route buckets elsewhere; nests, and restores on exit."""
    table, default = _parse_tables(buckets, default)

    def route(name: str) -> BucketSettings | None:
        if name in table:
            return table[name]
        return None if default is None else _from_default(default, name)

    with routed(route):
        yield


@contextmanager
def routed(route: Callable[[str], BucketSettings | None]) -> Iterator[None]:
    """Temporarily let ``route(name)`` decide where buckets live (None: ask the next layer)."""
    with _state.lock:
        _state.overrides.append(route)
        _state.bump()
    try:
        yield
    finally:
        with _state.lock:
            _state.overrides.remove(route)
            _state.bump()


def settings_from(name: str, value: object) -> BucketSettings:
    """Validate one bucket's settings given as in configure() (URL, mapping or BucketSettings)."""
    return _settings(name, value)


def reset() -> None:
    """Forget configure() and the cached config file (the file is re-read on next use)."""
    with _state.lock:
        _state.code, _state.code_default = {}, None
        _state.file = _state.file_default = None
        _state.bump()


def build_provider(name: str, settings: BucketSettings, bucket_config: BucketConfig) -> Provider:
    factory = _PROVIDERS[settings.scheme]
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        try:  # a provider package may import its driver lazily, on getattr
            module = importlib.import_module(module_name)
            loaded = getattr(module, attr, None)
        except ImportError as exc:
            if exc.name == "aiobucket" or (exc.name or "").startswith("aiobucket."):
                raise InvalidArgument(
                    f"bucket {name!r}: {settings.scheme}:// is not available in this version"
                ) from exc
            extra = {"s3": "s3", "gs": "gcs", "az": "azure"}.get(settings.scheme, "all")
            raise InvalidArgument(
                f"bucket {name!r}: {settings.scheme}:// needs an optional dependency "
                f"({exc.name}); install aiobucket[{extra}]"
            ) from exc
        if loaded is None:
            raise InvalidArgument(f"bucket {name!r}: provider {factory!r} has no attribute {attr!r}")
        factory = loaded
    fn: Callable[[BucketSettings, str, BucketConfig], Any] = factory
    provider: Provider = fn(settings, name, bucket_config)
    return provider
