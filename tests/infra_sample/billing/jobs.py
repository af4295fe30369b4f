# ruff: noqa
import shared.storage as s
from shared import storage


async def nightly() -> None:
    data = await s.Invoices.download("latest.pdf").read()
    async for err, entry in s.Invoices.list_versions():
        pass
    await s.Invoices.copy("latest.pdf", "2024/latest.pdf", dst_bucket=s.Exports)
    await storage.Exports.signed_download_url("2024/latest.pdf", ttl=600)
