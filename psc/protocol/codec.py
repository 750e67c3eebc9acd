"""Deterministic, versioned encoding of protocol messages: canonical CBOR (RFC 8949 §4.2).

A message ``M`` with fields ``f_1 .. f_k`` is the CBOR map::

    {"@t": M.TYPE, "@v": PROTOCOL_VERSION, "f_1": ..., "f_k": ...}

encoded canonically (``cbor2.dumps(..., canonical=True)``: shortest integer forms, map keys
sorted), so one message has exactly one encoding.  Nested messages are maps of their fields
only (no ``@t``/``@v``).  Field values: ``int`` (CBOR integer), ``str`` (text), ``bytes``
(byte string), ``bool``, ``tuple[X, ...]`` (array), a nested message (map).

Decoding is strict and is the only door into a message object: it refuses anything that is
not the canonical encoding of a well-typed message of the expected type and version (extra
or missing keys, wrong types, floats, tags, indefinite lengths, trailing bytes, a
non-canonical form), then runs :meth:`Message.check`.  Every failure raises
:class:`~psc.exceptions.InvalidMessage`.  Encoding is apart from all protocol logic.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

import cbor2

from psc.exceptions import InvalidMessage
from psc.protocol.messages import MESSAGE_TYPES, PROTOCOL_VERSION, Message

M = TypeVar("M", bound=Message)

#: Largest encoded message accepted (bytes): bounds memory before any parsing.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


_FIELDS: dict[type[Message], tuple[tuple[str, Any], ...]] = {}


def _fields(cls: type[Message]) -> tuple[tuple[str, Any], ...]:
    out = _FIELDS.get(cls)
    if out is None:
        hints = typing.get_type_hints(cls)
        out = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        _FIELDS[cls] = out
    return out


def _to_cbor(value: Any) -> Any:
    if isinstance(value, Message):
        return {name: _to_cbor(getattr(value, name)) for name, _ in _fields(type(value))}
    if isinstance(value, tuple):
        return [_to_cbor(v) for v in value]
    if isinstance(value, bool | int | str | bytes):
        return value
    raise TypeError(f"cannot encode a {type(value).__name__} in a protocol message")


def _check_all(value: Any) -> None:
    """Run :meth:`Message.check` on a message and every message nested in it."""
    if isinstance(value, Message):
        value.check()
        for name, _ in _fields(type(value)):
            _check_all(getattr(value, name))
    elif isinstance(value, tuple):
        for v in value:
            _check_all(v)


def encode(message: Message) -> bytes:
    """The canonical CBOR encoding of ``message`` (see module doc).

    Raises ``TypeError`` for a field of an unsupported type (a programming error) and
    :class:`InvalidMessage` if the message or a message nested in it fails its value
    checks, so nothing malformed is ever sent.
    """
    _check_all(message)
    body = _to_cbor(message)
    body["@t"] = message.TYPE
    body["@v"] = PROTOCOL_VERSION
    out: bytes = cbor2.dumps(body, canonical=True)
    return out


def _from_cbor(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise InvalidMessage(f"{where}: expected an array")
        return tuple(_from_cbor(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(hint, type) and issubclass(hint, Message):
        return _message(value, hint, where, top=False)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint in (str, bytes):
        ok = type(value) is hint
    else:  # pragma: no cover - guarded by the message definitions
        raise TypeError(f"unsupported field type {hint!r}")
    if not ok:
        raise InvalidMessage(f"{where}: expected {getattr(hint, '__name__', hint)}")
    return value


def _message(value: Any, cls: type[M], where: str, *, top: bool) -> M:
    if not isinstance(value, dict):
        raise InvalidMessage(f"{where}: expected a map")
    fields = _fields(cls)
    expected = {name for name, _ in fields}
    if top:
        expected |= {"@t", "@v"}
    if set(value) != expected:
        raise InvalidMessage(f"{where}: fields differ from a {cls.TYPE} message")
    kwargs = {name: _from_cbor(value[name], hint, f"{where}.{name}") for name, hint in fields}
    msg = cls(**kwargs)
    msg.check()
    return msg


def peek_type(data: bytes) -> str:
    """The ``@t`` of an encoded message, without trusting anything else in it."""
    obj = _load(data)
    t = obj.get("@t") if isinstance(obj, dict) else None
    if not isinstance(t, str) or t not in MESSAGE_TYPES:
        raise InvalidMessage("not a psc protocol message")
    return t


def message_type(data: bytes) -> str:
    """The ``@t`` of an encoded message of any psc protocol (including the committee's
    and the rights workflow's, which :data:`MESSAGE_TYPES` does not list).  Raises
    :class:`InvalidMessage` for anything that is not an encoded message."""
    obj = _load(data)
    t = obj.get("@t") if isinstance(obj, dict) else None
    if not isinstance(t, str):
        raise InvalidMessage("not a psc protocol message")
    return t


def _load(data: bytes) -> Any:
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_MESSAGE_BYTES:
        raise InvalidMessage("message too large or not bytes")
    try:
        return cbor2.loads(bytes(data))
    except Exception as exc:  # cbor2 raises several types; all mean "malformed"
        raise InvalidMessage("malformed CBOR") from exc


def decode(data: bytes, cls: type[M]) -> M:
    """Parse ``data`` as a canonical ``cls`` message of this protocol version.

    Raises :class:`InvalidMessage` for anything else (see module doc).
    """
    obj = _load(data)
    if not isinstance(obj, dict) or obj.get("@t") != cls.TYPE:
        raise InvalidMessage(f"expected a {cls.TYPE} message")
    if obj.get("@v") != PROTOCOL_VERSION or type(obj.get("@v")) is not int:
        raise InvalidMessage(f"unsupported protocol version (this is version {PROTOCOL_VERSION})")
    try:
        msg = _message(obj, cls, cls.TYPE, top=True)
    except (TypeError, ValueError) as exc:  # a dataclass refusing the values
        raise InvalidMessage(f"{cls.TYPE}: {exc}") from exc
    # one message, one encoding: refuse non-canonical forms and trailing bytes
    if encode(msg) != bytes(data):
        raise InvalidMessage(f"{cls.TYPE}: not the canonical encoding")
    return msg


__all__ = ["MAX_MESSAGE_BYTES", "decode", "encode", "peek_type"]
