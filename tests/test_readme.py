"""Every README line works as written: its Python blocks, TOML blocks, CLI and curl
commands, and every example.

Blocks are extracted from README.md itself, so the README cannot drift from what
works. Each Python block runs as a script in a subprocess, in an empty temporary
directory: twice on the default local backend (so it must be re-runnable) and
once with every bucket in memory (``AIOBUCKET_CONFIG`` with a ``memory://``
default). A block that is a pytest module runs under pytest, with anyio's plugin
as written and with pytest-asyncio. TOML blocks must load with the config loader.
The CLI block runs in bash; the curl block runs against both example web apps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers._proc import missing
from servers.seaweedfs_server import S3Server
from webapp_harness import AppServer

from aiobucket import config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
BIN = os.path.dirname(sys.executable)  # the venv's scripts: aiobucket


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # of the opening fence, 1-based
    text: str

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def blocks(lang: str) -> list[Block]:
    found, current, start = [], None, 0
    for n, line in enumerate(README.read_text().splitlines(), 1):
        if current is None:
            m = re.fullmatch(r"```(\w+)\s*", line)
            if m:
                current, start, body = m[1], n, []
        elif line.strip() == "```":
            if current == lang:
                found.append(Block(lang, start, "\n".join(body) + "\n"))
            current = None
        else:
            body.append(line)
    return found


PYTHON = blocks("python")
# Blocks using aiobucket:// need pandas, duckdb, zarr: tests/test_fsspec_ecosystem.py runs
# them, the same way, from .venv-eco.
ECO_BLOCKS = [b for b in PYTHON if "aiobucket://" in b.text]
SCRIPTS = [b for b in PYTHON if "def test_" not in b.text and b not in ECO_BLOCKS]
TEST_MODULES = [b for b in PYTHON if "def test_" in b.text]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOBUCKET")}
    env.update(HOME=str(tmp_path), PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}", **extra)
    return env


def run_python(path: Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-W", "always::ResourceWarning", "-W", "always::RuntimeWarning", str(path)]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_readme_has_the_blocks_this_file_checks() -> None:
    assert len(SCRIPTS) >= 4 and len(TEST_MODULES) == 1
    assert ECO_BLOCKS and (ROOT / "tests" / "test_fsspec_ecosystem.py").is_file()  # run there
    assert [b.text.count("```") for b in PYTHON] == [0] * len(PYTHON)
    assert len(blocks("toml")) >= 4


def test_the_errors_list_describes_every_public_error() -> None:
    """One sub-bullet per direct subclass of BucketError; its subclasses in the same bullet."""
    import aiobucket

    text = README.read_text()
    section = text[text.index("- **Errors.**") :]
    section = section[: section.index("\n\n")]
    public = {
        n: getattr(aiobucket, n)
        for n in aiobucket.__all__
        if isinstance(getattr(aiobucket, n), type) and issubclass(getattr(aiobucket, n), Exception)
    }
    described = []
    for bullet in re.split(r"\n  - ", section)[1:]:
        first, *subclasses = [n for n in re.findall(r"`(\w+)`", bullet) if n in public]
        assert public[first].__bases__[0] is aiobucket.BucketError, bullet
        assert all(issubclass(public[n], public[first]) for n in subclasses), bullet
        described += [first, *subclasses]
    assert sorted(described) == sorted(set(public) - {"BucketError"})


# -- Python blocks -------------------------------------------------------------------------


@pytest.mark.parametrize("block", SCRIPTS, ids=str)
def test_python_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(block.text)
    work = tmp_path / "work"
    work.mkdir()
    outputs = []
    for attempt in (1, 2):  # the default local backend; a second run must work too
        proc = run_python(script, work, clean_env(tmp_path))
        assert proc.returncode == 0, f"{block}, run {attempt}:\n{proc.stderr}"
        assert proc.stderr == "", f"{block}, run {attempt}: {proc.stderr}"  # no warning either
        outputs.append(proc.stdout)
    assert sorted(p.name for p in work.iterdir()) in ([], [".aiobucket"])  # nothing else written

    memory = tmp_path / "memory.toml"
    memory.write_text('default = "memory://"\n')
    proc = run_python(script, tmp_path, clean_env(tmp_path, AIOBUCKET_CONFIG=str(memory)))
    if "signed_upload_url" in block.text:  # memory declares Capabilities(signed_urls=False)
        assert proc.stderr.endswith(
            "NotSupported: the memory backend cannot sign URLs (bucket 'avatars', key 'u/1.jpg')\n"
        ), proc.stderr
    elif "signed_upload_form" in block.text:  # and Capabilities(signed_forms=False)
        assert proc.stderr.endswith(
            "NotSupported: the memory backend cannot sign upload forms (bucket 'avatars', key 'u/1.jpg')\n"
        ), proc.stderr
    else:
        assert proc.returncode == 0 and proc.stderr == "", f"{block}, on memory:\n{proc.stderr}"
    assert not (tmp_path / ".aiobucket").exists()

    if 'ProfilePictures.upload("u/2.jpg"' in block.text:  # the tour: re-runnable as it says
        assert outputs[0].startswith("stored u/2.jpg 3 ") and "exists already" not in outputs[0]
        assert outputs[1].startswith("u/2.jpg exists already\n")
    if "signed_upload_url" in block.text:
        assert outputs[0].startswith("http://127.0.0.1:8787/o/avatars/u/1.jpg?expires=")


@pytest.mark.parametrize("block", TEST_MODULES, ids=str)
@pytest.mark.parametrize("runner", ["anyio", "pytest-asyncio"])
def test_pytest_block_passes_with_either_async_runner(block: Block, runner: str, tmp_path: Path) -> None:
    text, disabled = block.text, "asyncio"
    if runner == "pytest-asyncio":  # the README's one-word change for pytest-asyncio
        assert "pytest.mark.anyio" in text
        text, disabled = text.replace("pytest.mark.anyio", "pytest.mark.asyncio"), "anyio"
    (tmp_path / "test_block.py").write_text(text)
    n = text.count("\nasync def test_")
    proc = subprocess.run(
        # The other runner is switched off, so this one must be what runs the tests.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", f"no:{disabled}"],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(rf"^{n} passed in ", proc.stdout, re.MULTILINE), proc.stdout
    assert "warning" not in proc.stdout.lower(), proc.stdout
    assert not (tmp_path / ".aiobucket").exists()  # every bucket was in memory


# -- TOML blocks ------------------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks("toml"), ids=str)
def test_toml_block_is_a_valid_config_file(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "aiobucket.toml"
    path.write_text(block.text)
    buckets, _default = config.load_config_file(path)  # raises on unknown keys and options
    assert buckets


# -- the CLI block ---------------------------------------------------------------------------


def cli_block() -> Block:
    (found,) = [b for b in blocks("bash") if "aiobucket cp --create photo.jpg" in b.text]
    return found


def test_the_cli_block_runs_as_written(tmp_path: Path) -> None:
    photo = os.urandom(5000)
    (tmp_path / "photo.jpg").write_bytes(photo)
    (tmp_path / "downloads").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("tar me")
    # `aiobucket url` without --signed needs a public bucket; the README says so.
    cfg = tmp_path / "aiobucket.toml"
    cfg.write_text(
        "[buckets.avatars]\n"
        f'url = "{(tmp_path / ".aiobucket" / "avatars").as_uri()}"\n'
        'public_base_url = "https://cdn.example.com"\n'
    )
    script = tmp_path / "cli.sh"
    script.write_text(cli_block().text)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", str(script)],
        cwd=tmp_path,
        env=clean_env(tmp_path, AIOBUCKET_CONFIG=str(cfg)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert (tmp_path / "downloads" / "1.jpg").read_bytes() == photo
    out = proc.stdout.splitlines()
    assert f"{len(photo)}" in [line.strip() for line in out]  # cat | wc -c
    assert "https://cdn.example.com/u/1.jpg" in out
    assert any(line.startswith("http://127.0.0.1:8787/o/avatars/u/1.jpg?expires=") for line in out)
    buckets = [line.split()[0] for line in out if line.startswith(("archive ", "avatars ", "backups "))]
    assert buckets == ["avatars", "archive", "backups"]  # configured first, then found on disk
    assert out[-1] == "0 problem(s) repaired (0 bytes reclaimed)"  # fsck: a healthy bucket


# -- the curl block, against both example apps ---------------------------------------------


@pytest.fixture(params=["fastapi_app", "aiohttp_app"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppServer]:
    srv = AppServer(request.param, tmp_path)
    try:
        srv.wait_listening()
        yield srv
    finally:
        srv.stop()
        print(srv.log())


def test_the_curl_commands_work_against_both_examples(app: AppServer, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        missing("curl", "install it: apt-get install curl")
    (block,) = [b for b in blocks("bash") if "curl -T photo.jpg" in b.text]
    curls = [line for line in block.text.splitlines() if line.startswith("curl ")]
    assert [c.split()[1] for c in curls] == ["-T", "-r", "-X"]  # upload (PUT), range, delete
    photo = os.urandom(300_000)
    (tmp_path / "photo.jpg").write_bytes(photo)
    outputs = []
    for line in curls:
        line = line.replace("127.0.0.1:8000", f"127.0.0.1:{app.port}")
        proc = subprocess.run(
            ["bash", "-c", line + " --fail --silent --show-error"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"{line}\n{proc.stderr}\n{app.log()}"
        outputs.append(proc.stdout)
    stored = json.loads(outputs[0])  # the upload answers with the stored attributes
    assert (stored["name"], stored["size"], stored["content_type"]) == ("users/42", len(photo), "image/jpeg")
    assert (tmp_path / "head.bin").read_bytes() == photo[:100]
    after = subprocess.run(
        ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}", app.url("42")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert after.stdout == "404"  # the DELETE removed it


# -- the development block ---------------------------------------------------------------------


def test_the_development_block_checks_what_ci_checks() -> None:
    (block,) = [b for b in blocks("bash") if "# Lint, format and types" in b.text]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    checks = [line for line in ci if line.startswith((".venv/bin/ruff", ".venv/bin/mypy"))]
    assert checks and all(line in block.text.splitlines() for line in checks), checks


# -- every example runs -----------------------------------------------------------------------

# Where each example is run: a new example must be added here and run somewhere.
RUN_BY = {
    "quickstart.py": "tests/test_quickstart.py",
    "fastapi_app.py": "test_the_curl_commands_work_against_both_examples, tests/test_examples_web.py",
    "aiohttp_app.py": "test_the_curl_commands_work_against_both_examples, tests/test_examples_web.py",
    "s3_minio.py": "test_the_s3_example_runs_against_a_real_s3_server",
    "upload_form_app.py": "tests/test_upload_forms.py, tests/test_upload_forms_browser.py",
}


def test_every_example_is_run_by_a_test() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(RUN_BY)
    for where in RUN_BY.values():
        for name in where.split(", "):
            if name.startswith("tests/"):
                assert (ROOT / name).is_file(), name
            else:
                assert name in globals(), name


def test_the_s3_example_runs_against_a_real_s3_server(s3_server: S3Server, tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        AIOBUCKET_S3_ENDPOINT=s3_server.endpoint,
        AIOBUCKET_S3_BUCKET=s3_server.bucket,
        AWS_ACCESS_KEY_ID=s3_server.access_key,
        AWS_SECRET_ACCESS_KEY=s3_server.secret_key,
        AWS_REGION=s3_server.region,
    )
    proc = run_python(EXAMPLES / "s3_minio.py", tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no unclosed-session noise
    out = proc.stdout
    assert "uploaded hello.txt: 21 bytes" in out
    assert "listed hello.txt 21" in out
    assert "downloaded: ['line 0', 'line 1', 'line 2']" in out
    assert f"signed URL (1 h): {s3_server.endpoint}" in out
    assert out.endswith("removed; exists now: False\n")
