"""The HTTP request path the S3 and Azure providers share; nothing in it knows either protocol.

* ``transport.py``: per provider, the lean client for small requests and one aiohttp
  session for the rest (pool, timeouts, proxies, CA bundle, ``Expect: 100-continue``,
  writes on the wire shielded), ``Response``, ``<Error>`` bodies.
* ``h1.py``: the lean HTTP/1.1 client (asyncio protocol, httptools' llhttp), held equal to
  aiohttp by ``tests/unit/test_h1.py``.
* ``retry.py``: the retry loop, its backoff, deadline and retry quota; a protocol says
  what its error codes mean in a ``RetryRules`` (``s3/_retry.py``, ``azure/_errors.py``).
* ``ratelimit.py``: the adaptive send rate (``SendRate``) after throttling.
* ``body.py``: GET bodies handed to the caller, counted against their length.
* ``headers.py``: ETags, HTTP dates, ``Content-Range``, ``If-Match``/``If-None-Match``.

Signing, error-code tables, object headers and XML documents stay with their protocol
(``s3/``, ``azure/``). GCS has its own path (``gcs/_http.py``, ``gcs/_retry.py``).
"""
