"""Where a reply's text goes while the model writes it.

Whoever listens (a chat's WebSocket) sets a sink around the call, in the thread that runs the
flow; the driver hands it to the call's context, and an adapter that can stream (an
OpenAI-compatible endpoint, the dummy) passes each piece of text to it as it arrives. The
recorded output is still the whole answer: the pieces are a preview, and a retried call sends
its pieces again (a listener replaces them with the final message). A context variable, not
module state: each request sets and resets its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

TextSink = Callable[[str], None]

text_sink: ContextVar[TextSink | None] = ContextVar("sandloop_text_sink", default=None)


@contextmanager
def streaming_to(sink: TextSink) -> Iterator[None]:
    token = text_sink.set(sink)
    try:
        yield
    finally:
        text_sink.reset(token)
