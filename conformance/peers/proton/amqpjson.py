"""AMQP values <-> JSON for broker.py and device.py (Qpid Proton 0.37, /usr/bin/python3).

Out: typed(v) = {"type": AMQP type name, "value": JSON value}; binary values are hex,
uuids their canonical string, timestamps milliseconds since the epoch, maps a list
of [typed key, typed value] pairs, lists/arrays a list of typed values.

In: value(j) takes a plain JSON value (string -> string, int -> long, or ulong when
int_type="ulong", float -> double, bool -> boolean) or {"type": T, "value": V} with T
one of the names typed() emits.
"""

import base64
import json
import sys
import uuid

from cproton import pn_message_get_content_encoding, pn_message_get_content_type
from proton import (Array, Described, byte, char, float32, int32, short, symbol, timestamp,
                    ubyte, uint, ulong, ushort)

# Exact Python type -> AMQP name. Subclasses first: symbol is a str, ulong an int, ...
_NAMES = [
    (symbol, "symbol"), (str, "string"), (bool, "boolean"), (ulong, "ulong"),
    (timestamp, "timestamp"), (ubyte, "ubyte"), (ushort, "ushort"), (uint, "uint"),
    (byte, "byte"), (short, "short"), (int32, "int"), (char, "char"), (int, "long"),
    (float32, "float"), (float, "double"), (uuid.UUID, "uuid"), (bytes, "binary"),
    (dict, "map"), (list, "list"), (Array, "array"), (Described, "described"),
]

_MAKERS = {
    "string": str, "symbol": symbol, "boolean": bool, "ulong": ulong, "long": int,
    "uint": uint, "int": int32, "ushort": ushort, "short": short, "ubyte": ubyte,
    "byte": byte, "char": char, "double": float, "float": float32,
    "timestamp": timestamp, "uuid": uuid.UUID, "binary": bytes.fromhex,
}


def type_name(v):
    for cls, name in _NAMES:
        if type(v) is cls:
            return name
    for cls, name in _NAMES:
        if isinstance(v, cls):
            return name
    return type(v).__name__


def typed(v):
    if v is None:
        return None
    name = type_name(v)
    if name == "binary":
        out = v.hex()
    elif name == "uuid":
        out = str(v)
    elif name == "map":
        out = [[typed(k), typed(x)] for k, x in v.items()]
    elif name in ("list", "array"):
        out = [typed(x) for x in (v.elements if name == "array" else v)]
    elif name == "described":
        out = {"descriptor": typed(v.descriptor), "value": typed(v.value)}
    elif name in ("double", "float"):
        out = float(v)
    elif name in ("string", "symbol", "char"):
        out = str(v)
    elif name == "boolean":
        out = bool(v)
    else:
        out = int(v)
    return {"type": name, "value": out}


def typed_id(v):
    """A message-id or correlation-id. Proton hands a ulong id back as a plain int, and
    ulong is the only integer type an id may have."""
    if type(v) is int:
        v = ulong(v)
    return typed(v)


def typed_map(m):
    """A map with string or symbol keys (application properties, annotations)."""
    if m is None:
        return None
    return {str(k): typed(v) for k, v in m.items()}


def value(j, int_type="long"):
    if isinstance(j, dict) and "type" in j:
        if j["type"] not in _MAKERS:
            raise ValueError(f"unknown AMQP type {j['type']!r}")
        return _MAKERS[j["type"]](j["value"])
    if isinstance(j, bool) or isinstance(j, (str, float)) or j is None:
        return j
    if isinstance(j, int):
        return _MAKERS[int_type](j)
    raise ValueError(f"no AMQP value for {j!r}")


def body(message):
    """The body and the kind of section Proton decoded it from."""
    b = message.body
    if message.inferred and isinstance(b, (bytes, memoryview)):
        kind = "data"
    elif message.inferred and isinstance(b, list):
        kind = "sequence"
    else:
        kind = "value"
    out = {"section": kind}
    if isinstance(b, (bytes, memoryview)):
        out["base64"] = base64.b64encode(bytes(b)).decode()
    elif isinstance(b, str):
        out["base64"] = base64.b64encode(b.encode()).decode()
    if kind != "data":
        out["value"] = typed(b)
    return out


def describe(message):
    """The fields of a received message, for a JSON line."""
    return {
        "durable": message.durable,
        "message_id": typed_id(message.id),
        "correlation_id": typed_id(message.correlation_id),
        "user_id": message.user_id.hex() if message.user_id else None,
        "to": message.address,
        "reply_to": message.reply_to,
        "subject": message.subject,
        # Message.content_type turns an absent field into symbol("None"): ask the C API.
        "content_type": pn_message_get_content_type(message._msg),
        "content_encoding": pn_message_get_content_encoding(message._msg),
        "application_properties": typed_map(message.properties),
        "annotations": typed_map(message.annotations),
        "body": body(message),
    }


def tag_bytes(delivery):
    """A delivery tag's bytes. Proton 0.37's Python binding hands tags over as str decoded
    from UTF-8 with surrogateescape; this undoes that."""
    tag = delivery.tag
    return tag.encode("utf-8", "surrogateescape") if isinstance(tag, str) else bytes(tag)


def tag_for_send(raw):
    """The str Proton's Sender.delivery() wants for the tag `raw`. Its binding takes only
    str and sends it as UTF-8, so only tags that are valid UTF-8 can be sent."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"delivery tag {raw.hex()} is not valid UTF-8: Proton's Python "
                         "binding cannot send it") from None


def outcome(disposition_type):
    from proton import Delivery
    return {Delivery.ACCEPTED: "accepted", Delivery.REJECTED: "rejected",
            Delivery.RELEASED: "released", Delivery.MODIFIED: "modified",
            Delivery.RECEIVED: "received"}.get(disposition_type)


def condition(c):
    if c is None:
        return None
    return {"name": str(c.name), "description": c.description,
            "info": typed_map(c.info) if isinstance(c.info, dict) else typed(c.info)}


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()
