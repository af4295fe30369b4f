"""AWS S3 answers that fail after the status line: 200 OK with an error body, and corrupted bodies.

Each function returns a faultproxy fault; add it with ``proxy.add_rule(fault, ...)``.

* ``late_error``: CompleteMultipartUpload, CopyObject and UploadPartCopy answer
  ``200 OK`` at once, then may send whitespace to keep the connection open while they
  work, and the document that follows may be an ``<Error>``:

  - https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html
    ("Amazon S3 begins sending white space characters to prevent time-outs ... a 200 OK
    response can contain either a success or an error")
  - https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html ("If the error
    occurs during the copy operation, the error response is embedded in the 200 OK
    response")
  - https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html (the same)

* ``truncated_200``: the same 200 whose document stops part-way (the server or a
  middlebox gave up after the status line, with a Content-Length that matches what
  was sent); ``truncated_200(0)`` is an empty body.
* ``bad_digest``: a body that arrived corrupted: "The Content-MD5 or checksum value
  that you specified did not match what the server received" (BadDigest, 400;
  https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html). S3 stores
  nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from faultproxy import FaultProxy, Request, Respond, s3_error

__all__ = ["PERSONAS", "Once", "bad_digest", "late_error", "truncated_200"]

_XML = {"Content-Type": "application/xml"}
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_NS = b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def late_error(
    code: str = "InternalError",
    message: str = "We encountered an internal error. Please try again.",
    *,
    whitespace: int = 700,
) -> Respond:
    """200 OK, ``whitespace`` bytes of keep-alive white space, then an S3 <Error> document."""
    pad = (b" " * 99 + b"\n") * (whitespace // 100) + b" " * (whitespace % 100)
    body = (
        pad
        + _DECLARATION
        + f"<Error><Code>{code}</Code><Message>{message}</Message>".encode()
        + b"<RequestId>persona</RequestId><HostId>persona</HostId></Error>"
    )
    return Respond(200, body, _XML)


def truncated_200(keep: int = 60, result: str = "CompleteMultipartUploadResult") -> Respond:
    """200 OK whose ``result`` document is cut after ``keep`` bytes (0: an empty body)."""
    whole = (
        _DECLARATION
        + f"<{result} ".encode()
        + _NS
        + b"><Location>http://persona/bucket/key</Location><Bucket>bucket</Bucket>"
        + b'<Key>key</Key><ETag>"3858f62230ac3c915f300c664312c11f-2"</ETag>'
        + f"</{result}>".encode()
    )
    assert 0 <= keep < len(whole), "keep must cut the document short"
    return Respond(200, whole[:keep], _XML)


def bad_digest() -> Respond:
    """400 BadDigest: the body S3 received does not match the checksum that came with it."""
    return s3_error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")


def _complete(req: Request) -> bool:
    return req.method == "POST" and "uploadId=" in req.query


def _copy(req: Request) -> bool:
    return req.method == "PUT" and req.header("x-amz-copy-source") is not None


def _put(req: Request) -> bool:
    return req.method == "PUT" and req.header("x-amz-copy-source") is None


@dataclass(frozen=True)
class Once:
    """A ready-made persona: ``fault`` on the first request that ``where`` picks."""

    fault: Respond
    where: str

    def install(self, proxy: FaultProxy) -> None:
        pick = {"complete": _complete, "copy": _copy, "put": _put}[self.where]
        proxy.add_rule(self.fault, when=pick)


PERSONAS = {
    "late-error-on-complete": Once(late_error(), "complete"),
    "truncated-complete": Once(truncated_200(), "complete"),
    "late-error-on-copy": Once(late_error(), "copy"),
    "bad-digest-once": Once(bad_digest(), "put"),
}
