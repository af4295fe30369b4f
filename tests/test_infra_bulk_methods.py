"""``aiobucket infra`` knows the methods added for web backends: remove_many needs
Remover, download_to needs Downloader (else it would guess, and the IAM policy would
grant the wrong actions)."""

from __future__ import annotations

from pathlib import Path

from aiobucket import infra


def test_remove_many_and_download_to_map_to_their_permissions(tmp_path: Path) -> None:
    pkg = tmp_path / "janitor"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "jobs.py").write_text(
        "from aiobucket import Bucket\n"
        "Uploads = Bucket('uploads')\n"
        "Videos = Bucket('videos')\n"
        "async def sweep(keys):\n"
        "    async for err, key in Uploads.remove_many(keys):\n"
        "        pass\n"
        "async def fetch():\n"
        "    await Videos.download_to('talk.mp4', '/tmp/talk.mp4')\n"
    )
    manifest = infra.analyse(str(tmp_path))
    assert manifest.services["janitor"] == {"uploads": {"Remover"}, "videos": {"Downloader"}}
    assert manifest.warnings == []
