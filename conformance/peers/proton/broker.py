"""A small AMQP 1.0 server on Qpid Proton (python3-qpid-proton 0.37; run it with
/usr/bin/python3): the peer none of us wrote that hubwire's device engine connects to.
It is not an IoT Hub: it accepts any SASL ANONYMOUS or SASL-less connection and any
link, answers CBS put-token requests (iothub-protocols.md 5.2) with status-code 200
(or --cbs-status),
pushes the --send messages to receivers and settles what it receives per --outcome.

Usage: broker.py --listen HOST:PORT [--tls-cert PEM --tls-key PEM]
         [--send ADDRESS=JSON]... [--outcome SPEC]... [--credit N]
         [--max-message-size BYTES] [--cbs-status CODE] [--expect N] [--timeout S]
  --listen        port 0 picks a free port (see the "listening" line)
  --send          a message for every receiver that attaches from source ADDRESS; JSON
                  keys (all optional): body (text, sent as one data section) or
                  body_value (amqp-value), message_id, correlation_id (JSON int = ulong),
                  content_type, content_encoding, to, reply_to, subject, user_id (hex),
                  durable, application_properties, annotations (symbol keys),
                  lock_token (uuid: delivery tag = its .NET byte order) or delivery_tag
                  (hex); either must be valid UTF-8 (all Proton can send; no v4 GUID
                  is), default 16 random ASCII bytes. A value may be {"type":"ubyte","value":1}
                  (types: see amqpjson.py); plain ints are long.
  --outcome       the disposition for the next received delivery (one flag each, in
                  order; then "accepted"): accepted | released |
                  rejected[:CONDITION[:DESCRIPTION]] | modified[:failed][:undeliverable]
  --cbs-status    the put-token reply's status-code (200; "OK", other codes get a
                  made-up status-description)
  --max-message-size  what the broker's receiving links put in their attach (1 MiB)
  --credit        credit window per receiving link, topped up by one per message (100)
  --expect N      exit 0 once N messages (CBS requests not counted) were received and
                  every --send message was sent and settled; --timeout (30) exits 1
                  (without --expect: exits 0 at --timeout)

Stdout, one JSON object a line, flushed: listening {port}; connection {container_id,
hostname, sasl}; attach {name, role (the peer's), source, target, snd_settle_mode,
rcv_settle_mode, max_message_size, properties}; cbs {message_id, to, reply_to,
operation, type, name, token, status}; message {address, delivery_tag, settled,
message_format (null: not exposed by Proton's Python binding), durable, message_id,
correlation_id, ..., application_properties, annotations, body, outcome}; sent
{address, delivery_tag, message_id}; outcome {address, delivery_tag, outcome,
condition, delivery_failed, undeliverable_here}; detach {name, closed, condition};
closed {container_id, clean (the peer sent close), condition}; done {} or
timeout {received, unsettled, unsent}.
Typed values are {"type","value"} (amqpjson.py).

Tested with (throwaway cert, not committed):
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout /tmp/k.pem -out /tmp/c.pem
  /usr/bin/python3 broker.py --listen 127.0.0.1:0 --tls-cert /tmp/c.pem --tls-key /tmp/k.pem \
    --send '/devices/d1/messages/devicebound={"body":"hi","message_id":"m1",
      "annotations":{"iothub-deliverycount":{"type":"ubyte","value":0}}}' \
    --outcome rejected:amqp:not-allowed:nope --expect 3 --credit 1
  /usr/bin/python3 device.py --url amqps://127.0.0.1:PORT --ca /tmp/c.pem --host-name localhost \
    --device d1 --token 'SharedAccessSignature sr=h%2Fdevices%2Fd1&sig=x&se=1' \
    --send 3 --receive 1 --expect-outcome rejected,accepted,accepted
"""

import argparse
import json
import random
import sys
import uuid

from proton import Condition, Delivery, Endpoint, Link, Message, SSLDomain, int32, symbol
from proton.handlers import MessagingHandler
from proton.reactor import Container

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
from amqpjson import (condition, describe, emit, outcome, tag_bytes, tag_for_send, typed, typed_id,
                      typed_map, value)

CBS = "$cbs"
SETTLE = {Link.SND_UNSETTLED: "unsettled", Link.SND_SETTLED: "settled", Link.SND_MIXED: "mixed"}
RCV_SETTLE = {Link.RCV_FIRST: "first", Link.RCV_SECOND: "second"}


def message_from_json(spec):
    """A Message and its delivery tag from a --send JSON object."""
    m = Message()
    if "body_value" in spec:
        m.body = value(spec["body_value"])
    else:
        m.body = spec.get("body", "").encode()
        m.inferred = True  # bytes as a data section, not an amqp-value binary
    if "message_id" in spec:
        m.id = value(spec["message_id"], "ulong")
    if "correlation_id" in spec:
        m.correlation_id = value(spec["correlation_id"], "ulong")
    for key, attr in [("content_type", "content_type"), ("content_encoding", "content_encoding"),
                      ("to", "address"), ("reply_to", "reply_to"), ("subject", "subject"),
                      ("durable", "durable")]:
        if key in spec:
            setattr(m, attr, spec[key])
    if "user_id" in spec:
        m.user_id = bytes.fromhex(spec["user_id"])
    m.properties = {k: value(v) for k, v in spec.get("application_properties", {}).items()} or None
    m.annotations = {symbol(k): value(v) for k, v in spec.get("annotations", {}).items()} or None
    if "delivery_tag" in spec:
        tag = bytes.fromhex(spec["delivery_tag"])
    elif "lock_token" in spec:
        tag = uuid.UUID(spec["lock_token"]).bytes_le
    else:
        # A real lock token (a v4 GUID in .NET byte order) is never valid UTF-8, which is
        # all Proton can send as a tag: 16 random ASCII bytes stand in for one.
        tag = bytes(random.randint(1, 0x7F) for _ in range(16))
    tag_for_send(tag)
    return m, tag


def parse_args(argv):
    p = argparse.ArgumentParser(prog="broker.py")
    p.add_argument("--listen", required=True)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--send", action="append", default=[])
    p.add_argument("--outcome", action="append", default=[])
    p.add_argument("--credit", type=int, default=100)
    p.add_argument("--max-message-size", type=int, default=1 << 20)
    p.add_argument("--expect", type=int)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--cbs-status", type=int, default=200)
    a = p.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    a.host, a.port = host or "0.0.0.0", int(port)
    a.messages = []
    for s in a.send:
        address, _, text = s.partition("=")
        a.messages.append((address, json.loads(text)))
    if bool(a.tls_cert) != bool(a.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return a


class Broker(MessagingHandler):
    def __init__(self, args):
        super().__init__(prefetch=0, auto_accept=False, auto_settle=True, peer_close_is_error=False)
        self.args = args
        self.outcomes = list(args.outcome)
        self.received = 0
        self.queues = {}  # sender link -> [(message, tag)] still to send
        self.unsettled = {}  # delivery -> address, for --send messages awaiting an outcome
        self.served = set()  # --send addresses fully sent to at least one receiver
        self.cbs = {}  # connection -> (sender link with source $cbs, [replies waiting for it])
        self.connections = set()
        self.timer = None
        self.finished = False
        self.status = 1

    # --- lifecycle ---------------------------------------------------------------
    def on_start(self, event):
        acceptor = event.container.acceptor(self.args.host, self.args.port)
        if self.args.tls_cert:
            domain = SSLDomain(SSLDomain.MODE_SERVER)
            domain.set_credentials(self.args.tls_cert, self.args.tls_key, None)
            acceptor.set_ssl_domain(domain)
        self.acceptor = acceptor
        # Proton's Acceptor does not expose its socket; port 0 needs the bound port.
        port = acceptor._selectable._delegate.getsockname()[1]
        emit("listening", port=port)
        self.timer = event.container.schedule(self.args.timeout, self)

    def on_timer_task(self, event):
        if self.finished:
            event.container.stop()
            return
        if self.args.expect is None:
            self.status = 0
            emit("done")
        else:
            emit("timeout", received=self.received, unsettled=len(self.unsettled),
                 unsent=sorted({a for a, _ in self.args.messages} - self.served))
        self.finish(event.container)

    def finish(self, container):
        self.finished = True
        for conn in list(self.connections):
            conn.close()
        self.acceptor.close()
        if self.timer:
            self.timer.cancel()
        # Give peers a moment to answer the close, then stop regardless.
        self.timer = container.schedule(2, self)

    def check_done(self, event):
        if self.finished or self.args.expect is None or self.received < self.args.expect:
            return
        if self.unsettled or self.served != {a for a, _ in self.args.messages}:
            return
        self.status = 0
        emit("done")
        self.finish(event.container)

    # --- connections -------------------------------------------------------------
    def on_connection_bound(self, event):
        # SASL ANONYMOUS offered; Proton's server transport still accepts the plain
        # AMQP header (no SASL layer) from clients that skip SASL.
        sasl = event.transport.sasl()
        sasl.allowed_mechs("ANONYMOUS")
        sasl.allow_insecure_mechs = True
        event.transport.require_auth(False)

    def on_connection_opening(self, event):
        conn = event.connection
        self.connections.add(conn)
        mech = event.transport.sasl().mech if event.transport else None
        emit("connection", container_id=conn.remote_container, hostname=conn.remote_hostname,
             sasl=mech or "none")

    def on_transport_closed(self, event):
        conn = event.connection
        if conn is None:
            return
        self.connections.discard(conn)
        self.cbs.pop(conn, None)
        # After the peer's close frame, the transport's own "connection aborted" (EOF) is noise.
        clean = bool(conn.state & Endpoint.REMOTE_CLOSED)
        cond = conn.remote_condition if clean else event.transport.condition
        emit("closed", container_id=conn.remote_container, clean=clean, condition=condition(cond))
        if self.finished and not self.connections:
            event.container.stop()

    # --- links -------------------------------------------------------------------
    def on_link_opening(self, event):
        link = event.link
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        emit("attach", name=link.name, role="sender" if link.is_receiver else "receiver",
             source=link.remote_source.address, target=link.remote_target.address,
             snd_settle_mode=SETTLE.get(link.remote_snd_settle_mode),
             rcv_settle_mode=RCV_SETTLE.get(link.remote_rcv_settle_mode),
             max_message_size=link.remote_max_message_size,
             properties=typed_map(link.remote_properties))
        if link.is_receiver:
            link.max_message_size = self.args.max_message_size
            link.flow(self.args.credit)
            return
        address = link.remote_source.address
        if address == CBS:
            self.cbs[link.connection] = (link, self.cbs.get(link.connection, (None, []))[1])
        else:
            self.queues[link] = [message_from_json(spec) for a, spec in self.args.messages
                                 if a == address]

    def on_link_remote_detach(self, event):
        self.report_detach(event.link, False)

    def on_link_remote_close(self, event):
        self.report_detach(event.link, True)

    def report_detach(self, link, closed):
        emit("detach", name=link.name, closed=closed, condition=condition(link.remote_condition))
        self.queues.pop(link, None)

    # --- receiving ---------------------------------------------------------------
    def on_message(self, event):
        link, dlv, msg = event.receiver, event.delivery, event.message
        target = link.remote_target.address
        if target == CBS:
            self.put_token(event, msg)
            self.dispose(dlv, "accepted")
            return
        fields = describe(msg)
        settled = dlv.settled
        result = self.dispose(dlv, self.outcomes.pop(0) if self.outcomes else "accepted")
        emit("message", address=target, delivery_tag=tag_bytes(dlv).hex(), settled=settled,
             message_format=None, **fields, outcome=result)
        link.flow(1)
        self.received += 1
        self.check_done(event)

    def dispose(self, dlv, spec):
        if dlv.settled:  # sent pre-settled: nothing to answer
            dlv.settle()
            return None
        kind, _, rest = spec.partition(":")
        state = {"accepted": Delivery.ACCEPTED, "rejected": Delivery.REJECTED,
                 "released": Delivery.RELEASED, "modified": Delivery.MODIFIED}[kind]
        if kind == "rejected" and rest:
            # condition names contain ':' (amqp:not-allowed): description after the last part
            parts = rest.split(":")
            name, desc = (rest, None) if len(parts) <= 2 else (":".join(parts[:2]), ":".join(parts[2:]))
            dlv.local.condition = Condition(name, desc)
        if kind == "modified":
            flags = rest.split(":")
            dlv.local.failed = "failed" in flags
            dlv.local.undeliverable = "undeliverable" in flags
        dlv.update(state)
        # rcv-settle-mode second: settle once the sender settled (on_settled below)
        if dlv.link.rcv_settle_mode == Link.RCV_FIRST:
            dlv.settle()
        return spec

    def on_settled(self, event):
        if event.link.is_receiver:
            event.delivery.settle()

    # --- CBS ---------------------------------------------------------------------
    def put_token(self, event, msg):
        props, status = msg.properties or {}, self.args.cbs_status
        emit("cbs", message_id=typed_id(msg.id), to=msg.address, reply_to=msg.reply_to,
             operation=props.get("operation"), type=props.get("type"), name=props.get("name"),
             token=msg.body if isinstance(msg.body, str) else typed(msg.body), status=status)
        reply = Message(correlation_id=msg.id, address=msg.reply_to,
                        properties={"status-code": int32(status),
                                    "status-description": "OK" if status == 200 else "refused by --cbs-status"})
        link, waiting = self.cbs.get(event.connection, (None, []))
        waiting.append(reply)
        if link is None:
            self.cbs[event.connection] = (None, waiting)
        else:
            self.flush_cbs(link)

    def flush_cbs(self, link):
        _, waiting = self.cbs[link.connection]
        while waiting and link.credit > 0:
            link.send(waiting.pop(0))

    # --- sending -----------------------------------------------------------------
    def on_sendable(self, event):
        link = event.sender
        if link.remote_source.address == CBS:
            if link.connection in self.cbs:
                self.flush_cbs(link)
            return
        queue = self.queues.get(link)
        while queue and link.credit > 0:
            msg, tag = queue.pop(0)
            dlv = link.send(msg, tag=tag_for_send(tag))
            address = link.remote_source.address
            emit("sent", address=address, delivery_tag=tag.hex(), message_id=typed_id(msg.id))
            if link.snd_settle_mode == Link.SND_SETTLED:  # Proton settled it on send
                emit("outcome", address=address, delivery_tag=tag.hex(), outcome=None,
                     presettled=True)
            else:
                self.unsettled[dlv] = address
            if not queue:
                self.served.add(address)
        self.check_done(event)

    def on_accepted(self, event):
        self.report_outcome(event)

    def on_rejected(self, event):
        self.report_outcome(event)

    def on_released(self, event):  # Proton calls this for released and modified
        self.report_outcome(event)

    def report_outcome(self, event):
        dlv = event.delivery
        address = self.unsettled.pop(dlv, None)
        if address is None:
            return  # a CBS reply
        remote = dlv.remote
        emit("outcome", address=address, delivery_tag=tag_bytes(dlv).hex(),
             outcome=outcome(dlv.remote_state), condition=condition(remote.condition),
             delivery_failed=remote.failed, undeliverable_here=remote.undeliverable)
        self.check_done(event)


def main():
    args = parse_args(sys.argv[1:])
    broker = Broker(args)
    Container(broker).run()
    sys.exit(broker.status)


if __name__ == "__main__":
    main()
