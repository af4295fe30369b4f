"""The bucket browser end to end, in headless Chromium driven by Playwright.

Debian's ``chromium`` package (``/usr/bin/chromium``) is used, never a browser
downloaded by ``playwright install``. Without it (or without the ``playwright``
package) the test is skipped locally with an install hint, and fails in CI.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from pathlib import Path

import pytest
from test_devserver import Server, write_config

import aiobucket
from aiobucket import Bucket, config

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HINT = "needs Chromium and Playwright: apt-get install -y chromium && pip install -e '.[dev]'"


def _require_browser() -> None:
    missing = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(CHROMIUM)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if missing:
        message = f"missing {', '.join(missing)}; {HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _stored(tmp_path: Path, key: str) -> bytes | None:
    async def read() -> bytes | None:
        try:
            return await Bucket("priv").download(key).read()
        except aiobucket.ObjectNotFound:
            return None
        finally:
            await aiobucket.aclose()

    # Playwright's sync API owns this thread's event loop: ask the library from another thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result(timeout=60)


def test_upload_list_download_delete_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    cfg = write_config(tmp_path)
    monkeypatch.setenv("AIOBUCKET_CONFIG", str(cfg))
    config.reset()
    server = Server(tmp_path)
    picked = os.urandom(100_000) + b"\x00 end"
    dropped = b"dropped onto the page\n"
    problems: list[str] = []
    try:
        url = server.wait_listening()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                context = browser.new_context(accept_downloads=True)
                page = context.new_page()
                page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
                page.on(
                    "console",
                    lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
                )
                page.on(
                    "response",
                    lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
                )
                page.on("dialog", lambda dialog: dialog.accept())  # the delete confirmation

                page.goto(url + "/")
                page.click('a[href="/b/priv"]')
                expect(page.locator("main[data-bucket=priv]")).to_be_visible()
                expect(page.locator("tr.object")).to_have_count(0)

                # Upload through the file input (the drag-and-drop fallback) ...
                page.set_input_files(
                    "#file-input",
                    files=[{"name": "photo 1.bin", "mimeType": "application/x-test", "buffer": picked}],
                )
                row = page.locator('tr.object[data-key="photo 1.bin"]')
                expect(row).to_be_visible()
                expect(row).to_contain_text("application/x-test")
                expect(row).to_contain_text("97.7 KiB")

                # ... and by dropping a file on the drop zone.
                page.evaluate(
                    """(text) => {
                        const data = new DataTransfer();
                        data.items.add(new File([text], "notes.txt", { type: "text/plain" }));
                        const zone = document.getElementById("drop");
                        zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, bubbles: true }));
                        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true }));
                    }""",
                    dropped.decode(),
                )
                expect(page.locator('tr.object[data-key="notes.txt"]')).to_be_visible()
                expect(page.locator("tr.object")).to_have_count(2)
                assert _stored(tmp_path, "photo 1.bin") == picked
                assert _stored(tmp_path, "notes.txt") == dropped

                # Download through the link.
                with page.expect_download() as info:
                    row.locator("a.download").click()
                download = info.value
                assert download.suggested_filename == "photo 1.bin"
                assert Path(download.path()).read_bytes() == picked

                # Delete with the button; the row goes, and stays gone after a reload.
                row.locator("button.delete").click()
                expect(row).to_have_count(0)
                expect(page.locator("#status")).to_contain_text("Deleted photo 1.bin")
                page.reload()
                expect(page.locator('tr.object[data-key="notes.txt"]')).to_be_visible()
                expect(page.locator('tr.object[data-key="photo 1.bin"]')).to_have_count(0)
                assert _stored(tmp_path, "photo 1.bin") is None
            finally:
                browser.close()
    finally:
        rc = server.stop()
        config.reset()
        log = server.log()
        print(f"----- aiobucket serve log (exit {rc}) -----\n{log}")
    assert rc == 0
    assert "Traceback" not in log and "ResourceWarning" not in log
    assert not problems, problems
