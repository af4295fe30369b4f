"""aiobucket: asyncio-native object storage.

One typed API over S3, Google Cloud Storage, S3-compatible stores, the local
filesystem and memory. Declare buckets at module level; configuration decides
where they live.
"""

import types as _types

from . import tracing
from ._parallel import ParallelReader
from ._runtime import aclose, lifespan
from .bucket import Bucket
from .config import BucketSettings, configure, register_provider
from .errors import (
    BackendError,
    BucketError,
    ConnectionLost,
    IntegrityError,
    InvalidArgument,
    NotModified,
    NotSupported,
    ObjectChanged,
    ObjectNotFound,
    OutcomeUnknown,
    PermissionDenied,
    PreconditionFailed,
    RangeNotSatisfiable,
    UploadAborted,
    WriterClosed,
)
from .listing import ListItem
from .providers.base import Capabilities
from .reader import Reader
from .refs import (
    Attrser,
    BucketRef,
    Downloader,
    Lister,
    PublicURLer,
    ReadWriter,
    Remover,
    SignedDownloader,
    SignedUploader,
    Uploader,
)
from .removing import RemoveItem
from .types import BucketConfig, ListEntry, ObjectAttrs, Preconditions, Query, UploadAttrs, UploadForm
from .writer import PendingWrite, Writer

__version__ = "0.1.0"

# Submodules reachable as attributes without an import of their own, loaded on first
# use so `import aiobucket` stays cheap: aiobucket.testing.memory_buckets(), ...
_LAZY_SUBMODULES = frozenset({"http", "testing"})


def __getattr__(name: str) -> _types.ModuleType:
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Attrser",
    "BackendError",
    "Bucket",
    "BucketConfig",
    "BucketError",
    "BucketRef",
    "BucketSettings",
    "Capabilities",
    "ConnectionLost",
    "Downloader",
    "IntegrityError",
    "InvalidArgument",
    "ListEntry",
    "ListItem",
    "Lister",
    "NotModified",
    "NotSupported",
    "ObjectAttrs",
    "ObjectChanged",
    "ObjectNotFound",
    "OutcomeUnknown",
    "PendingWrite",
    "PermissionDenied",
    "PreconditionFailed",
    "ParallelReader",
    "Preconditions",
    "PublicURLer",
    "Query",
    "RangeNotSatisfiable",
    "ReadWriter",
    "Reader",
    "RemoveItem",
    "Remover",
    "SignedDownloader",
    "SignedUploader",
    "UploadAborted",
    "UploadAttrs",
    "UploadForm",
    "Uploader",
    "Writer",
    "WriterClosed",
    "aclose",
    "configure",
    "lifespan",
    "register_provider",
    "tracing",
]
