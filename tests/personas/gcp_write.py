"""GCS's write preconditions where fake-gcs-server skips them: resumable uploads and rewrites.

fake-gcs-server checks ``ifGenerationMatch`` only on ``uploadType=multipart`` (quirks
``gcs_resumable_upload_ignores_preconditions`` and ``gcs_rewrite_ignores_preconditions``).
Installed as rules on a ``FaultProxy`` in front of it, this persona answers as GCS does:

* ``ifGenerationMatch`` on a resumable upload is checked when the session starts and again
  when its final chunk completes the upload; a failed check is 412 conditionNotMet, and
  nothing is stored.
  https://cloud.google.com/storage/docs/json_api/v1/objects/insert (ifGenerationMatch:
  "Makes the operation conditional on whether the object's current generation matches the
  given value. Setting to 0 makes the operation succeed only if there are no live versions")
  https://cloud.google.com/storage/docs/request-preconditions#json-resumable ("the
  precondition is checked ... when the upload is initiated and when it completes")
* the same parameter on ``objects.rewrite`` applies to the destination.
  https://cloud.google.com/storage/docs/json_api/v1/objects/rewrite
* an offset query (``Content-Range: bytes */N``) is answered 308 with the committed range
  (``Range: bytes=0-K``), never as a completion (fake-gcs-server finalizes the object on it:
  quirk ``gcs_resumable_status_query_finalizes``); the persona counts a chunk as committed
  when it passes on its way to the server.
  https://cloud.google.com/storage/docs/performing-resumable-uploads#status-check
* the error body is the JSON API's.
  https://cloud.google.com/storage/docs/json_api/v1/status-codes#412_Precondition_Failed

A session URI names its object but not the precondition it was started with, so the persona
remembers the precondition by object name: one pending precondition per name at a time. A
final chunk that passes a ``not_exists`` check claims the name at once, so two completions
in flight together are judged one after the other, as GCS judges them (a claim is never
released: one race per name per persona).
The object's current generation is read from fake-gcs-server itself (a metadata GET).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from urllib.parse import parse_qsl, quote, unquote

from faultproxy import Answer, FaultProxy, Request, Respond, gcs_error

__all__ = ["GcsWritePreconditions"]


class GcsWritePreconditions:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._pending: dict[tuple[str, str], str] = {}  # (bucket, name) -> ifGenerationMatch
        self._committed: dict[str, int] = {}  # upload_id -> bytes committed
        self._claimed: set[tuple[str, str]] = set()  # completed (or completing) by a not_exists upload
        self._lock = threading.RLock()
        self.refused: list[Request] = []

    def install(self, proxy: FaultProxy) -> None:
        """Add the rules (after any already there: those come first)."""
        message = "At least one of the pre-conditions you specified did not hold."
        proxy.add_rule(
            Answer(lambda r: gcs_error(412, message, "conditionNotMet")), when=self._fails, times=None
        )
        proxy.add_rule(Answer(self._offset), when=self._is_query, times=None)

    def _is_query(self, r: Request) -> bool:
        return (
            r.method == "PUT"
            and "upload_id=" in r.query
            and (r.header("Content-Range") or "").startswith("bytes */")
        )

    def _offset(self, r: Request) -> Respond:
        upload = dict(parse_qsl(r.query))["upload_id"]
        with self._lock:
            done = self._committed.get(upload, 0)
        return Respond(308, b"", {"Range": f"bytes=0-{done - 1}"} if done else {})

    def _generation(self, bucket: str, name: str) -> str:
        url = f"{self.upstream}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return str(json.loads(resp.read())["generation"])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return "0"
            raise

    def _fails(self, r: Request) -> bool:
        """Whether GCS would refuse this request for its precondition (and record it if so)."""
        q = dict(parse_qsl(r.query))
        parts = r.path.split("/")
        if r.method == "POST" and "/rewriteTo/" in r.path and "ifGenerationMatch" in q:
            # /storage/v1/b/{src}/o/{src}/rewriteTo/b/{dst bucket}/o/{dst}
            at = parts.index("rewriteTo")
            target = (unquote(parts[at + 2]), unquote("/".join(parts[at + 4 :])))
            return self._refused(r, target, q["ifGenerationMatch"])
        if "uploadType" not in q or q.get("uploadType") != "resumable" or "name" not in q:
            return False
        target = (unquote(parts[parts.index("b") + 1]), q["name"])
        if r.method == "POST":  # the session starts
            if "ifGenerationMatch" not in q:
                return False
            with self._lock:
                self._pending[target] = q["ifGenerationMatch"]
            return self._refused(r, target, q["ifGenerationMatch"])
        span = r.header("Content-Range") or ""
        if r.method != "PUT" or span.startswith("bytes */"):
            return False  # a query: answered by _offset
        if span.endswith("/*"):  # a chunk that does not complete the upload
            m = re.fullmatch(r"bytes (\d+)-(\d+)/\*", span)
            if m is not None and "upload_id" in q:
                with self._lock:
                    self._committed[q["upload_id"]] = int(m.group(2)) + 1
            return False
        with self._lock:  # checked and claimed at once: GCS completes one upload of a key at a time
            wanted = self._pending.get(target)
            if wanted is None:
                return False
            if self._refused(r, target, wanted):
                return True
            if wanted == "0":
                self._claimed.add(target)  # the next not_exists completion meets this one
            return False

    def _refused(self, r: Request, target: tuple[str, str], wanted: str) -> bool:
        current = "claimed" if wanted == "0" and target in self._claimed else self._generation(*target)
        if current == wanted:
            return False
        self.refused.append(r)
        return True
