"""tracing.annotate: a provider's diagnostics land on the operation in progress, or nowhere."""

from __future__ import annotations

from aiobucket import tracing


def test_annotate_sets_attributes_on_the_live_span_and_skips_none() -> None:
    events: list[tracing.TraceEvent] = []
    remove = tracing.add_listener(events.append)
    try:
        tracing.annotate(aws_request_id="nobody listens")  # no operation in progress: no effect
        span = tracing.start_span("download", "b", "k")
        tracing.annotate(aws_request_id="R1", aws_extended_request_id=None)
        span.end()
    finally:
        remove()
    (end,) = [e for e in events if e.phase == "end"]
    assert end.attributes["aws_request_id"] == "R1"
    assert "aws_extended_request_id" not in end.attributes
