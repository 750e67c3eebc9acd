"""What every party's HTTP API shares: sealed CBOR bodies, limits, and errors on the wire.

Normative: ``protocols/service.md``.  A route takes the exact sealed bytes a party's
transport-neutral core takes (``application/cbor``) and returns the exact bytes it returns;
HTTP adds nothing to a message and removes nothing from it, so every check the core makes
(signature, binding to the logged request, proofs) is the same in process and over the
network.

Limits: a body longer than the route's limit is refused with 413 before the party sees a
byte of it (``Content-Length`` first, then while streaming); a body that does not arrive
within :data:`BODY_TIMEOUT` seconds is refused with 408.  Errors: a psc exception becomes a
4xx response whose JSON body names the exception class and its message
(:func:`status_of`); the client raises the same class again (:mod:`psc.service.client`),
so a party cannot tell a remote peer's refusal from a local one.  Any other exception is a
bug: 500 with an opaque body, never a traceback.  Every rejected request leaves the
party's state as it was (the cores check everything before they write).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from psc import exceptions as exc

#: The media type of every message body (canonical CBOR, as :mod:`psc.protocol.codec` writes).
MEDIA_TYPE = "application/cbor"
#: Default body limit (bytes): envelopes with validity proofs are the largest messages.
DEFAULT_MAX_BODY = 64 * 1024 * 1024
#: Seconds a client has to deliver a request body.
BODY_TIMEOUT = 60.0

#: psc exception class -> HTTP status.  Order matters: the first match wins (subclasses first).
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (exc.BudgetExhausted, 403),
    (exc.ConsentRefused, 403),
    (exc.StalePeriod, 409),
    (exc.PolicyViolation, 403),
    (exc.UnknownParty, 403),
    (exc.CatalogMismatch, 409),
    (exc.ReplayedNonce, 409),
    (exc.DuplicateSubmission, 409),
    (exc.InsufficientShares, 503),
    (ConnectionError, 503),  # a peer this party needed did not answer (PeerUnavailable)
    (exc.InvalidMessage, 400),
    (exc.PscError, 400),
    (ValueError, 400),
    (KeyError, 404),
)

#: Names a client may raise again; anything else comes back as :class:`RemoteError`.
RAISABLE: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in vars(exc).values()
    if isinstance(cls, type) and issubclass(cls, exc.PscError)
} | {"ValueError": ValueError, "KeyError": KeyError}

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["error", "detail"],
}


class BodyTooLarge(Exception):
    """A request body over the route's limit (413)."""


def status_of(error: BaseException) -> int:
    """The HTTP status for an exception a party raised (500 for anything not psc's)."""
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def error_response(error: BaseException) -> JSONResponse:
    """The response for ``error``: its class name and message, or an opaque 500."""
    status = status_of(error)
    if status == 500:
        print(f"psc service: internal error {type(error).__name__}: {error}", file=sys.stderr)
        return JSONResponse({"error": "InternalError", "detail": "internal error"}, 500)
    if isinstance(error, KeyError):
        return JSONResponse({"error": "KeyError", "detail": str(error.args[0])}, status)
    if isinstance(error, ConnectionError):  # not a refusal: retry the same bytes (§4)
        return JSONResponse({"error": "PeerUnavailable", "detail": str(error)}, status)
    name = type(error).__name__ if type(error).__name__ in RAISABLE else "ValueError"
    body = {"error": name, "detail": str(error)}
    if isinstance(error, exc.ConsentRefused):
        body["reason"] = error.reason
    return JSONResponse(body, status)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with :class:`BodyTooLarge` past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of a CBOR route: 200 with bytes, and JSON errors."""
    out: dict[int | str, dict[str, Any]] = {
        200: {"description": "the party's sealed answer", "content": {MEDIA_TYPE: _BINARY}}
    }
    for s in (*statuses, 413, 408, 415):
        out[s] = {
            "description": "refused; nothing changed",
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        }
    return out


def cbor_post(
    app: FastAPI,
    path: str,
    handler: Callable[[bytes], bytes],
    *,
    summary: str,
    description: str,
    errors: tuple[int, ...] = (400,),
    max_body: int = DEFAULT_MAX_BODY,
) -> None:
    """Add ``POST path``: sealed CBOR in, ``handler(body)`` out as sealed CBOR.

    The handler runs on the event loop's thread, one request at a time per party: a core
    keeps SQLite connections that must not cross threads, and its checks and writes are
    one transaction each, so serial execution is also the simplest correct one.
    """

    async def route(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != MEDIA_TYPE:
            return JSONResponse(
                {"error": "UnsupportedMediaType", "detail": f"send {MEDIA_TYPE}"}, 415
            )
        try:
            body = await asyncio.wait_for(read_body(request, max_body), BODY_TIMEOUT)
        except BodyTooLarge as e:
            return JSONResponse({"error": "BodyTooLarge", "detail": str(e)}, 413)
        except TimeoutError:
            return JSONResponse({"error": "Timeout", "detail": "request body too slow"}, 408)
        try:
            out = handler(body)
        except Exception as e:  # every refusal becomes a 4xx; a bug an opaque 500
            return error_response(e)
        return Response(content=out, media_type=MEDIA_TYPE)

    app.add_api_route(
        path,
        route,
        methods=["POST"],
        summary=summary,
        description=description,
        responses=responses(*errors),
        response_class=Response,
        openapi_extra={
            "requestBody": {"required": True, "content": {MEDIA_TYPE: _BINARY}},
        },
    )


def cbor_get(
    app: FastAPI,
    path: str,
    handler: Callable[..., bytes],
    *,
    summary: str,
    description: str,
    errors: tuple[int, ...] = (400,),
    patterns: dict[str, str] | None = None,
) -> None:
    """Add ``GET path`` returning sealed CBOR (path parameters go to ``handler``;
    ``patterns`` documents each parameter's regular expression in the schema)."""

    async def route(request: Request) -> Response:
        try:
            out = handler(**request.path_params)
        except Exception as e:  # every refusal becomes a 4xx; a bug an opaque 500
            return error_response(e)
        return Response(content=out, media_type=MEDIA_TYPE)

    patterns = patterns or {}
    params = [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": {
                "type": "string",
                **({"pattern": patterns[n]} if n in patterns else {}),
            },
        }
        for n in _path_names(path)
    ]
    app.add_api_route(
        path,
        route,
        methods=["GET"],
        summary=summary,
        description=description,
        responses=responses(*errors),
        response_class=Response,
        openapi_extra={"parameters": params} if params else None,
    )


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def new_app(title: str, description: str) -> FastAPI:
    """A party's app: its OpenAPI schema at ``/openapi.json``, a ``/v1/health`` route."""
    from importlib import metadata

    try:
        version = metadata.version("psc")
    except metadata.PackageNotFoundError:
        version = "unknown"
    app = FastAPI(title=title, description=description, version=version)

    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app.add_api_route(
        "/v1/health",
        health,
        methods=["GET"],
        summary="liveness",
        description="200 while the party serves requests.",
        responses={
            200: {
                "description": "serving",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"status": {"type": "string"}},
                            "required": ["status"],
                        }
                    }
                },
            }
        },
    )
    return app
