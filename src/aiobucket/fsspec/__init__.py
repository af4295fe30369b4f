"""fsspec for aiobucket: ``aiobucket://<bucket>/<key>`` in pandas, pyarrow, polars,
duckdb, zarr and dask, with aiobucket's configuration and guarantees.

Install ``aiobucket[fsspec]``. The ``fsspec.specs`` entry point registers the
protocol, so ``fsspec.filesystem("aiobucket")`` and ``aiobucket://`` URLs work
without importing this module; ``import aiobucket`` never imports fsspec.

A thin adapter on the public ``Bucket`` API: it never reaches into providers.
See ``_filesystem`` (the filesystem, its loop and cache invariants) and
``_files`` (files that never commit a partial object).
"""

from ._errors import FileExpired
from ._files import AiobucketFile, AiobucketStreamedFile
from ._filesystem import AiobucketFileSystem

__all__ = ["AiobucketFile", "AiobucketFileSystem", "AiobucketStreamedFile", "FileExpired"]
