"""One module per library: the same five S3 operations, each written as that library's docs recommend.

Every driver module has ``open(env) -> ctx``, ``close(ctx)`` and
``upload(ctx, key, source, size)``, ``download(ctx, key) -> bytes read``,
``put_small(ctx, key, data)``, ``get_small(ctx, key) -> bytes read`` and
``list_keys(ctx, prefix) -> count``. Scenarios 6 and 8 are in local.py and memory.py.
"""
