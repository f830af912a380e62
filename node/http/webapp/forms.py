"""The fields of a posted form, urlencoded or multipart/form-data (a file upload).

The node's body middleware (node/http/app.py) reads every body whole, within its
timeout, before any handler runs. aiohttp keeps those bytes for ``request.post()`` of
an urlencoded form, but parses multipart/form-data from the connection's stream, which
is empty by then. So a multipart form is parsed here from the bytes already read, with
aiohttp's own multipart reader, once per request; the gate (its form token) and the
handler (its fields and files) read the same result.
"""

from __future__ import annotations

import asyncio
import io

from aiohttp import BodyPartReader, MultipartReader, StreamReader, web
from multidict import MultiDict, MultiDictProxy

Field = str | bytes | bytearray | web.FileField
FORM = web.RequestKey("form", MultiDictProxy[Field])
# Fields of one form at most: the pages' forms have a handful (the round's subject rows
# the most, 64 rows of 8 fields).
MAX_FIELDS = 1000


async def form(request: web.Request) -> MultiDictProxy[Field]:
    """The posted fields (files as ``web.FileField``), parsed once per request."""
    if FORM not in request:
        if request.content_type == "multipart/form-data":
            request[FORM] = await _multipart(request)
        else:
            request[FORM] = await request.post()
    return request[FORM]


async def _multipart(request: web.Request) -> MultiDictProxy[Field]:
    body = await request.read()  # the bytes the body middleware read, within its limit
    # A limit above the body's size: the stream never asks the connection to pause.
    stream = StreamReader(request.protocol, limit=len(body) + 1, loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    out: MultiDict[Field] = MultiDict()
    try:
        reader = MultipartReader(request.headers, stream)
        while (part := await reader.next()) is not None:
            if len(out) >= MAX_FIELDS:
                raise web.HTTPBadRequest(text="te veel velden")
            if not isinstance(part, BodyPartReader) or part.name is None:
                raise web.HTTPBadRequest(text="onleesbaar formulier")
            if part.filename:
                data = await part.read(decode=True)
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                out.add(
                    part.name,
                    web.FileField(
                        part.name, part.filename, io.BytesIO(data), content_type, part.headers
                    ),
                )
            else:
                out.add(part.name, await part.text())
    except ValueError as e:
        # A boundary missing or a part cut short: a broken form, not a node failure.
        raise web.HTTPBadRequest(text="onleesbaar formulier") from e
    return MultiDictProxy(out)
