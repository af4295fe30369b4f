# ruff: noqa
from typing import Protocol

from aiobucket import Attrser, Downloader, Lister, Uploader


class AvatarStore(Downloader, Uploader, Protocol): ...


class Browsable(Lister, Protocol): ...


class InvoiceArchive(Browsable, Attrser, Protocol):
    """Inherits Lister through Browsable."""
