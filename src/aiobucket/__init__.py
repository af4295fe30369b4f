"""aiobucket: asyncio-native object storage.

One typed API over S3, Google Cloud Storage, S3-compatible stores, the local
filesystem and memory. Declare buckets at module level; configuration decides
where they live.
"""

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
from .writer import Writer

__version__ = "0.1.0"

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
