"""The ``aiobucket`` console script, run for real in a subprocess.

Buckets live on the default local backend (``./.aiobucket`` under tmp_path) or on
file:// buckets named in an AIOBUCKET_CONFIG file: memory:// would not outlive
one process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiobucket import ObjectAttrs

SCRIPT = shutil.which("aiobucket", path=os.path.dirname(sys.executable))


def run(
    tmp_path: Path, *args: str, input: bytes | None = None, config: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    assert SCRIPT is not None, "the aiobucket console script is not installed in this venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOBUCKET")}
    if config is not None:
        env["AIOBUCKET_CONFIG"] = str(config)
    return subprocess.run(
        [SCRIPT, *args], cwd=tmp_path, env=env, input=input, capture_output=True, timeout=120
    )


def ok(tmp_path: Path, *args: str, **kw: object) -> bytes:
    proc = run(tmp_path, *args, **kw)  # type: ignore[arg-type]
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b"", proc.stderr.decode()  # in particular: no progress bar off a TTY
    return proc.stdout


def one_line_error(proc: subprocess.CompletedProcess[bytes], status: int, *needles: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == status, err
    assert err.startswith("aiobucket: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def two_buckets(tmp_path: Path) -> Path:
    cfg = tmp_path / "aiobucket.toml"
    cfg.write_text(
        f'default = "file://{tmp_path / "elsewhere"}"\n'
        "[buckets.photos]\n"
        f'url = "file://{tmp_path / "store" / "photos"}"\n'
        'public_base_url = "https://cdn.example.com/p"\n'
        'key_prefix = "pp/"\n'
        "[buckets]\n"
        f'archive = "file://{tmp_path / "store" / "archive"}"\n'
    )
    return cfg


def test_cp_file_to_bucket_and_back_streams_without_progress_off_a_tty(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # over the progress threshold
    (tmp_path / "big.bin").write_bytes(data)
    ok(tmp_path, "cp", "--create", "big.bin", "media:in/big.bin")
    assert (tmp_path / ".aiobucket" / "media").is_dir()  # the default local backend
    ok(tmp_path, "cp", "media:in/big.bin", "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == data
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.bin")]  # no temp left


def test_cp_keeps_the_name_for_bucket_dirs_and_local_dirs(tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("hi")
    ok(tmp_path, "cp", "--create", "note.txt", "docs:")
    ok(tmp_path, "cp", "note.txt", "docs:sub/")
    (tmp_path / "out").mkdir()
    ok(tmp_path, "cp", "docs:sub/note.txt", "out")
    assert (tmp_path / "out" / "note.txt").read_text() == "hi"
    names = [line.split()[-1] for line in ok(tmp_path, "ls", "docs", "-r").decode().splitlines()]
    assert names == ["note.txt", "sub/note.txt"]


def test_cp_stdin_to_bucket_and_bucket_to_stdout(tmp_path: Path) -> None:
    payload = b"from a pipe\x00\xff" * 1000
    ok(tmp_path, "cp", "--create", "-", "pipes:p.bin", "--content-type", "application/x-test", input=payload)
    assert ok(tmp_path, "cp", "pipes:p.bin", "-") == payload
    assert json.loads(ok(tmp_path, "stat", "pipes:p.bin", "--json"))["content_type"] == "application/x-test"


def test_cat(tmp_path: Path) -> None:
    ok(tmp_path, "cp", "--create", "-", "b:hello.txt", input=b"hello world\n")
    assert ok(tmp_path, "cat", "b:hello.txt") == b"hello world\n"


def test_ls_folders_recursive_prefix_and_json(tmp_path: Path) -> None:
    for key in ("a.txt", "dir/b.txt", "dir/sub/c.txt", "other/d.txt"):
        ok(tmp_path, "cp", "--create", "-", f"tree:{key}", input=key.encode())
    lines = ok(tmp_path, "ls", "tree").decode().splitlines()
    assert [line.split()[-1] for line in lines] == ["a.txt", "dir/", "other/"]
    assert lines[1].split()[0] == "DIR" and lines[0].split()[0] == "5"
    rec = ok(tmp_path, "ls", "tree", "-r").decode().splitlines()
    assert [line.split()[-1] for line in rec] == ["a.txt", "dir/b.txt", "dir/sub/c.txt", "other/d.txt"]
    assert ok(tmp_path, "ls", "tree", "dir/") == ok(tmp_path, "ls", "tree:dir/")
    entries = [json.loads(x) for x in ok(tmp_path, "ls", "tree:dir/", "--json").splitlines()]
    assert [(e["name"], e["is_prefix"], e["size"]) for e in entries] == [
        ("dir/b.txt", False, 9),
        ("dir/sub/", True, 0),
    ]


def test_ls_and_buckets_show_configured_buckets_and_the_default(tmp_path: Path, two_buckets: Path) -> None:
    text = ok(tmp_path, "buckets", config=two_buckets).decode()
    rows = [line.split() for line in text.splitlines()]
    assert rows[0] == ["NAME", "LOCATION", "NOTES"]
    assert rows[1] == ["archive", f"file://{tmp_path / 'store' / 'archive'}"]
    assert rows[2] == [
        "photos",
        f"file://{tmp_path / 'store' / 'photos'}",
        "key_prefix=pp/",
        "public_base_url=https://cdn.example.com/p",
    ]
    assert rows[3][:2] == ["(default)", f"file://{tmp_path / 'elsewhere'}/<name>"]
    assert ok(tmp_path, "ls", config=two_buckets) == text.encode()
    data = json.loads(ok(tmp_path, "buckets", "--json", config=two_buckets))
    assert data["config_file"] == str(two_buckets)
    assert [b["name"] for b in data["buckets"]] == ["archive", "photos"]


def test_buckets_without_config_lists_local_buckets_under_the_default(tmp_path: Path) -> None:
    ok(tmp_path, "cp", "--create", "-", "zeta:k", input=b"z")
    rows = [line.split()[:2] for line in ok(tmp_path, "buckets").decode().splitlines()]
    root = (tmp_path / ".aiobucket").resolve()
    assert rows[1:] == [["zeta", f"file://{root / 'zeta'}"], ["(default)", f"file://{root}/<name>"]]


def test_stat_text_and_json(tmp_path: Path) -> None:
    ok(tmp_path, "cp", "--create", "-", "s:x.json", input=b"{}")
    text = ok(tmp_path, "stat", "s:x.json").decode()
    fields = dict(line.split(":", 1) for line in text.splitlines())
    assert list(fields) == [f.name for f in dataclasses.fields(ObjectAttrs)]  # every field, in order
    assert list(fields) == [
        "name", "size", "etag", "content_type", "version",
        "cache_control", "content_disposition", "metadata", "last_modified", "crc32c", "md5",
        "crc32", "crc64nvme", "content_encoding",
    ]  # fmt: skip
    assert fields["size"].strip() == "2" and fields["content_type"].strip() == "application/json"
    assert (
        len({line.index(v.strip()) for line, v in zip(text.splitlines(), fields.values(), strict=True)}) == 1
    )
    data = json.loads(ok(tmp_path, "stat", "s:x.json", "--json"))
    assert data["name"] == "x.json" and data["size"] == 2 and data["version"] is None
    assert data["etag"] == "99914b932bd37a50b983c5e7c90ae93b"  # md5 of {}


def test_rm_then_the_object_is_missing(tmp_path: Path) -> None:
    ok(tmp_path, "cp", "--create", "-", "r:one", input=b"1")
    ok(tmp_path, "cp", "-", "r:two", input=b"2")
    assert ok(tmp_path, "rm", "r:one", "r:two") == b""
    one_line_error(run(tmp_path, "stat", "r:one"), 1, "not found", "'r'", "'one'")
    one_line_error(run(tmp_path, "rm", "r:one"), 1, "not found")


def test_missing_object_is_one_line_and_exit_1(tmp_path: Path) -> None:
    ok(tmp_path, "cp", "--create", "-", "nb:there", input=b"x")
    for args in (["cat", "nb:missing"], ["cp", "nb:missing", "out.bin"], ["cp", "nb:missing", "-"]):
        proc = run(tmp_path, *args)
        one_line_error(proc, 1, "object not found", "'missing'")
        assert proc.stdout == b""
    assert not (tmp_path / "out.bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == [".aiobucket"]  # no partial download left
    proc = run(tmp_path, "cp", "--create", "no-such-file", "new:k")
    one_line_error(proc, 1, "No such file", "no-such-file")
    assert not (tmp_path / ".aiobucket" / "new").exists()  # --create made nothing for a failed copy


# -- misspelt names and missing folders: a clear answer, and nothing created -----------------


def listing(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))


def test_a_misspelt_bucket_is_no_such_bucket_and_lists_the_real_ones(tmp_path: Path) -> None:
    ok(tmp_path, "cp", "--create", "-", "avatars:u/1.jpg", input=b"jpeg")
    ok(tmp_path, "cp", "--create", "-", "archive:a", input=b"a")
    before = listing(tmp_path)
    for args in (
        ["ls", "nosuchbucket"],
        ["ls", "avatrs:u/"],
        ["cat", "avatrs:u/1.jpg"],
        ["stat", "avatrs:u/1.jpg"],
        ["rm", "avatrs:u/1.jpg"],
        ["url", "avatrs:u/1.jpg", "--signed", "get"],
        ["cp", "avatrs:u/1.jpg", "out.jpg"],
    ):
        proc = run(tmp_path, *args)
        bad = args[1].partition(":")[0]
        one_line_error(proc, 1, f"no such bucket {bad!r}", "(buckets: archive, avatars;")
    # Writes say how to make a new bucket on purpose.
    (tmp_path / "x").write_bytes(b"x")
    one_line_error(
        run(tmp_path, "cp", "x", "avatrs:k"), 1, "no such bucket 'avatrs'", "archive, avatars", "--create"
    )
    one_line_error(run(tmp_path, "cp", "avatars:u/1.jpg", "avatrs:k"), 1, "no such bucket 'avatrs'")
    (tmp_path / "x").unlink()
    assert listing(tmp_path) == before  # nothing was created, not even an empty directory


def test_rm_checks_every_bucket_before_removing_anything(tmp_path: Path) -> None:
    ok(tmp_path, "cp", "--create", "-", "real:k", input=b"1")
    one_line_error(run(tmp_path, "rm", "real:k", "typo:k"), 1, "no such bucket 'typo'")
    assert ok(tmp_path, "cat", "real:k") == b"1"


def test_create_applies_to_a_bucket_destination(tmp_path: Path) -> None:
    ok(tmp_path, "cp", "--create", "-", "real:k", input=b"1")
    one_line_error(run(tmp_path, "cp", "--create", "real:k", "out"), 2, "--create applies")


def test_a_configured_bucket_exists_before_its_first_write(tmp_path: Path, two_buckets: Path) -> None:
    assert ok(tmp_path, "ls", "archive", config=two_buckets) == b""  # empty, not missing
    assert not (tmp_path / "store" / "archive").exists()  # and listing it created nothing
    ok(tmp_path, "cp", "-", "archive:k", input=b"1", config=two_buckets)  # no --create needed
    one_line_error(
        run(tmp_path, "ls", "archiv", config=two_buckets), 1, "no such bucket 'archiv'", "archive, photos"
    )


def test_serve_shows_a_named_bucket_that_was_never_written(tmp_path: Path) -> None:
    """serve takes a name the app has yet to write (it may do so through the server), but a
    misspelt one shows: nothing written yet. Serving it creates nothing either."""
    from test_devserver import Server

    ok(tmp_path, "cp", "--create", "-", "avatars:u/1.jpg", input=b"jpeg")
    (tmp_path / "aiobucket.toml").write_text("")
    before = listing(tmp_path)
    srv = Server(tmp_path, "avatars", "avatrs")
    try:
        srv.wait_listening()
        for _ in range(600):  # bounded: the bucket lines follow the URL
            if "Press Ctrl-C" in srv.log():
                break
            time.sleep(0.05)
        lines = {line.split()[0]: line for line in srv.log().splitlines() if line.startswith("  ")}
    finally:
        assert srv.stop() == 0, srv.log()
    assert not lines["avatars"].endswith("(nothing written yet)"), lines
    assert lines["avatrs"].endswith("/.aiobucket/avatrs  (nothing written yet)"), lines
    assert [p for p in listing(tmp_path) if p not in before] == ["serve.log"]


def test_download_into_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    ok(tmp_path, "cp", "--create", "-", "avatars:u/1.jpg", input=b"jpeg")
    for dest, folder in (("./downloads/", "downloads/"), ("downloads/1.jpg", "downloads/")):
        proc = run(tmp_path, "cp", "avatars:u/1.jpg", dest)
        err = one_line_error(proc, 1, f"the folder {folder!r} does not exist")
        assert ".aiobucket-" not in err  # never the name of the temporary file
    (tmp_path / "file").write_text("")
    one_line_error(run(tmp_path, "cp", "avatars:u/1.jpg", "file/1.jpg"), 1, "'file/' is not a folder")
    (tmp_path / "downloads").mkdir()
    ok(tmp_path, "cp", "avatars:u/1.jpg", "./downloads/")
    assert (tmp_path / "downloads" / "1.jpg").read_bytes() == b"jpeg"


def test_bad_usage_exits_2_with_one_line(tmp_path: Path) -> None:
    for args, needle in [
        ([], "required: COMMAND"),
        (["frobnicate"], "invalid choice"),
        (["cp", "a.txt", "b.txt"], "BUCKET:KEY"),
        (["cat", "no-colon"], "expected BUCKET:KEY"),
        (["cat", "b:"], "expected BUCKET:KEY"),
        (["cp", "b:", "x"], "name the source key"),
        (["cp", "-", "b:"], "name the destination key"),
        (["url", "b:k", "--ttl", "5"], "--ttl and --version need --signed"),
        (["url", "b:k", "--signed", "post"], "invalid choice"),
        (["url", "b:k", "--signed", "get", "--create-only"], "--create-only applies to --signed put"),
        (["ls", "b:pre", "fix"], "not both"),
        (["infra", "does/not/exist"], "no such file or directory"),
    ]:
        one_line_error(run(tmp_path, *args), 2, needle, "--help")


def test_bad_config_is_one_line_and_exit_1(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[buckets]\nx = "ftp://nope"\n')
    one_line_error(run(tmp_path, "ls", "x", config=cfg), 1, "unknown scheme 'ftp'")


def test_cp_between_buckets_and_within_one(tmp_path: Path, two_buckets: Path) -> None:
    data = os.urandom(200_000)
    (tmp_path / "pic.jpg").write_bytes(data)
    ok(tmp_path, "cp", "pic.jpg", "photos:u/1.jpg", config=two_buckets)
    # photos keeps keys under its key_prefix "pp/"
    assert json.loads(ok(tmp_path, "stat", "photos:u/1.jpg", "--json", config=two_buckets))["size"] == 200_000
    ok(tmp_path, "cp", "photos:u/1.jpg", "archive:2024/", config=two_buckets)
    attrs = json.loads(ok(tmp_path, "stat", "archive:2024/1.jpg", "--json", config=two_buckets))
    assert attrs["content_type"] == "image/jpeg" and attrs["size"] == 200_000
    ok(tmp_path, "cp", "photos:u/1.jpg", "photos:u/1-copy.jpg", config=two_buckets)
    assert ok(tmp_path, "cat", "archive:2024/1.jpg", config=two_buckets) == data
    assert ok(tmp_path, "cat", "photos:u/1-copy.jpg", config=two_buckets) == data
    names = ok(tmp_path, "ls", "photos", "-r", config=two_buckets).decode().split()
    assert names[-1] == "u/1.jpg" and "u/1-copy.jpg" in names
    # Copies go through Bucket.copy, so on the "server" where the backend can: the local
    # backend hard-links the immutable blob instead of writing the bytes again.
    ok(tmp_path, "cp", "archive:2024/1.jpg", "photos:from-archive.jpg", config=two_buckets)
    blobs = [p for p in (tmp_path / "store").rglob("blobs/*/*") if p.is_file()]
    assert blobs and all(p.stat().st_nlink >= 2 for p in blobs), [p.stat().st_nlink for p in blobs]


def test_versioned_buckets(tmp_path: Path) -> None:
    ok(tmp_path, "cp", "--create", "-", "v:k", "--versioned", input=b"first")
    ok(tmp_path, "cp", "-", "v:k", "--versioned", input=b"second")
    entries = [json.loads(x) for x in ok(tmp_path, "ls", "v", "--versions", "--json").splitlines()]
    assert [e["is_latest"] for e in entries] == [True, False]
    old = entries[1]["version"]
    assert ok(tmp_path, "cat", "v:k", "--version", old) == b"first"
    assert ok(tmp_path, "cat", "v:k") == b"second"
    assert json.loads(ok(tmp_path, "stat", "v:k", "--version", old, "--json"))["size"] == 5


def test_versioned_true_in_the_config_is_read_as_the_dev_server_reads_it(tmp_path: Path) -> None:
    cfg = tmp_path / "aiobucket.toml"
    cfg.write_text(f'[buckets.v]\nurl = "{(tmp_path / "v").as_uri()}"\nversioned = true\n')
    for data in (b"first", b"second"):
        ok(tmp_path, "cp", "-", "v:k", input=data, config=cfg)  # no --versioned needed
    entries = [
        json.loads(x) for x in ok(tmp_path, "ls", "v", "--versions", "--json", config=cfg).splitlines()
    ]
    assert ok(tmp_path, "cat", "v:k", "--version", entries[1]["version"], config=cfg) == b"first"


def test_url_public_and_signed(tmp_path: Path, two_buckets: Path) -> None:
    out = ok(tmp_path, "url", "photos:u/a b.jpg", config=two_buckets)
    assert out == b"https://cdn.example.com/p/pp/u/a%20b.jpg\n"
    # Without public_base_url the bucket does not count as public.
    one_line_error(run(tmp_path, "url", "archive:x", config=two_buckets), 1, "public_base_url", "--signed")
    # Signing needs no network on S3: point a bucket at a closed port with fake keys.
    cfg = tmp_path / "s3.toml"
    cfg.write_text(
        "[buckets.cdn]\n"
        'url = "s3://acme-cdn?region=eu-west-1&endpoint=http://127.0.0.1:9"\n'
        'access_key_id = "AKIDEXAMPLE"\nsecret_access_key = "not-a-secret"\n'
    )
    get = ok(tmp_path, "url", "cdn:a/b.jpg", "--signed", "get", "--ttl", "60", config=cfg).decode()
    assert get.startswith("http://127.0.0.1:9/acme-cdn/a/b.jpg?") and "X-Amz-Expires=60&" in get
    put = ok(tmp_path, "url", "cdn:a/b.jpg", "--signed", "put", config=cfg).decode()
    assert "X-Amz-Expires=3600&" in put and "X-Amz-Signature=" in put
    # An unknown endpoint's profile ("other") does not promise If-None-Match; MinIO's does.
    one_line_error(
        run(tmp_path, "url", "cdn:a", "--signed", "put", "--create-only", config=cfg), 1, "conditional_put"
    )
    cfg.write_text(cfg.read_text().replace("endpoint=", "provider=minio&endpoint="))
    once = ok(tmp_path, "url", "cdn:a/b.jpg", "--signed", "put", "--create-only", config=cfg).decode()
    assert "X-Amz-SignedHeaders=host%3Bif-none-match&" in once  # the uploader sends If-None-Match: *
    one_line_error(
        run(tmp_path, "url", "cdn:a", "--signed", "get", "--ttl", "0", config=cfg), 1, "ttl must be"
    )


def test_url_follows_the_one_public_rule(tmp_path: Path) -> None:
    """`aiobucket url` and `aiobucket serve` agree on what is public (config.public_reason)."""
    cfg = tmp_path / "aiobucket.toml"
    cfg.write_text(
        f'[buckets.pub]\nurl = "file://{tmp_path / "pub"}"\npublic = true\n'
        f'dev_server_url = "http://127.0.0.1:9999"\n'
        f'[buckets.priv]\nurl = "file://{tmp_path / "priv"}"\n'
    )
    # A local bucket without public_base_url: the dev server's URL, as public_url() gives.
    assert ok(tmp_path, "url", "pub:a b.jpg", config=cfg) == b"http://127.0.0.1:9999/o/pub/a%20b.jpg\n"
    one_line_error(run(tmp_path, "url", "priv:k", config=cfg), 1, "not public", "public = true")
    # Code that declared it BucketConfig(public=True) and wrote to it makes it public too
    # (the provider leaves a marker when it opens the bucket; public_url() does no I/O).
    script = (
        "import asyncio, aiobucket\n"
        "b = aiobucket.Bucket('priv', aiobucket.BucketConfig(public=True))\n"
        "async def main():\n"
        "    async with b.upload('k') as w:\n"
        "        await w.write(b'v')\n"
        "    await aiobucket.aclose()\n"
        "asyncio.run(main())\n"
        "print(b.public_url('k'))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOBUCKET")}
    env["AIOBUCKET_CONFIG"] = str(cfg)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert ok(tmp_path, "url", "priv:k", config=cfg) == proc.stdout


def test_help_documents_the_public_rule(tmp_path: Path) -> None:
    text = ok(tmp_path, "url", "--help").decode()
    assert "public_base_url" in text and "--ttl" in text
    top = ok(tmp_path, "--help").decode()
    for name in ("ls", "cp", "cat", "rm", "stat", "url", "buckets", "infra"):
        assert f"    {name} " in top


def test_progress_bar_renders_on_a_tty(tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: rich draws bytes, rate and ETA."""
    assert SCRIPT is not None
    (tmp_path / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOBUCKET")}
    env.update(COLUMNS="120", TERM="xterm")
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [SCRIPT, "cp", "--create", "big.bin", "bar:big.bin"], cwd=tmp_path, env=env, stderr=secondary,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(secondary)
    out = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(primary)
    assert proc.wait(timeout=120) == 0
    text = out.decode(errors="replace")
    assert "bar:big.bin" in text and "3.1/3.1 MB" in text and "MB/s" in text
    assert "━" in text
