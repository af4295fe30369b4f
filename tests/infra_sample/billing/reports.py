# ruff: noqa
from .archive import InvoiceReader


async def report() -> list[str]:
    names = []
    async for err, entry in InvoiceReader.list():
        names.append(entry.name)
    await InvoiceReader.remove("old.pdf")
    return names
