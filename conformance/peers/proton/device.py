"""An IoT Hub device on Qpid Proton (python3-qpid-proton 0.37; run it with
/usr/bin/python3), for hubwire's hub role: the Node SDK's AMQP sequence
(iothub-protocols.md 5.9) on a client none of us wrote. Connect (TLS with --ca and
SNI/open hostname = --host-name, or plain amqp://), no SASL or SASL ANONYMOUS; one
session; CBS sender (target $cbs) and receiver (source $cbs); put-token in the Node
form (5.2); then --send telemetry messages and --receive C2D messages.

Usage: device.py --url amqps://HOST:PORT|amqp://HOST:PORT [--ca PEM] [--host-name NAME]
         --device ID --token 'SharedAccessSignature sr=...&sig=...&se=...'
         [--sasl none|anonymous] [--send N] [--settle-mode unsettled|settled]
         [--body TEXT] [--content-type T] [--message-id-type string|uuid|ulong]
         [--property K=V]... [--expect-outcome accepted[,rejected,...]]
         [--receive N] [--dispositions accept,reject,release,modify] [--credit N]
         [--timeout S]
  audience (put-token "name") = the token's sr value as-is; message ids: string
  "<device>-<i>", a random uuid, or ulong i+1 (i from 0); body defaults to {"n":<i>};
  --expect-outcome (cycled, default accepted) is what each unsettled send must get;
  --dispositions (cycled, default accept): accept, reject, release (released, not
  modified), modify (modified delivery-failed); --credit: C2D credit window (10).

Stdout, one JSON object a line, flushed:
  cbs {status, description, correlation_id (typed)}
  sent {index, message_id, outcome (null when sent settled), condition,
        delivery_failed, undeliverable_here (the last two only for unsettled sends)}
  received {index, delivery_tag (hex), lock_token (uuid from a 16-byte tag, .NET order),
            settled, durable, message_id, correlation_id, user_id, to, reply_to, subject,
            content_type, content_encoding, application_properties, annotations, body}
  disposed {index, disposition}
  closed {}                                          exit 0
  error {stage, message, condition}                  exit 1 (2 for bad arguments)
        stage: args | connect | cbs | link (awaiting outcomes/C2D) | send (an outcome
        differed from --expect-outcome) | close | timeout (message says what was awaited)
Typed values are {"type","value"} (amqpjson.py). Exit 0 only when the put-token got
200, every send got its expected outcome and every C2D message was received and disposed.

Tested against broker.py with the commands at the top of broker.py, and:
  /usr/bin/python3 broker.py --listen 127.0.0.1:0 --expect 2
  /usr/bin/python3 device.py --url amqp://127.0.0.1:PORT --sasl anonymous --device d1 \
    --token 'SharedAccessSignature sr=h%2Fdevices%2Fd1&sig=x&se=1' --send 2 --settle-mode settled
"""

import argparse
import sys
import uuid
from urllib.parse import urlparse

from proton import Delivery, Endpoint, Link, Message, SSLDomain, symbol, ulong
from proton.handlers import MessagingHandler
from proton.reactor import AtLeastOnce, AtMostOnce, Container, LinkOption

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
from amqpjson import condition, describe, emit, outcome, tag_bytes, typed_id

CLIENT_VERSION = "hubwire-conformance/proton-device"


class Properties(LinkOption):
    def __init__(self, properties):
        self.properties = properties

    def apply(self, link):
        link.properties = self.properties


class Args(argparse.ArgumentParser):
    def error(self, message):
        emit("error", stage="args", message=message)
        sys.exit(2)


def parse_args(argv):
    p = Args(prog="device.py")
    p.add_argument("--url", required=True)
    p.add_argument("--ca")
    p.add_argument("--host-name")
    p.add_argument("--sasl", choices=["none", "anonymous"], default="none")
    p.add_argument("--device", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--settle-mode", choices=["unsettled", "settled"], default="unsettled")
    p.add_argument("--body")
    p.add_argument("--content-type", default="application/json")
    p.add_argument("--message-id-type", choices=["string", "uuid", "ulong"], default="string")
    p.add_argument("--property", action="append", default=[])
    p.add_argument("--expect-outcome", default="accepted")
    p.add_argument("--receive", type=int, default=0)
    p.add_argument("--dispositions", default="accept")
    p.add_argument("--credit", type=int, default=10)
    p.add_argument("--timeout", type=float, default=30)
    a = p.parse_args(argv)
    url = urlparse(a.url)
    if url.scheme not in ("amqp", "amqps"):
        p.error("--url must be amqp:// or amqps://")
    if url.scheme == "amqps" and not a.ca:
        p.error("amqps needs --ca")
    a.host_name = a.host_name or url.hostname
    fields = dict(f.partition("=")[::2] for f in a.token.removeprefix("SharedAccessSignature ").split("&"))
    if not fields.get("sr"):
        p.error("--token has no sr=")
    a.audience = fields["sr"]
    a.properties = dict(kv.partition("=")[::2] for kv in a.property)
    a.expect_outcome = a.expect_outcome.split(",")
    a.dispositions = a.dispositions.split(",")
    bad = set(a.dispositions) - {"accept", "reject", "release", "modify"}
    if bad:
        p.error(f"unknown dispositions {sorted(bad)}")
    return a


class Device(MessagingHandler):
    def __init__(self, args):
        super().__init__(prefetch=0, auto_accept=False, auto_settle=True, peer_close_is_error=True)
        self.args = args
        self.stage = "connect"
        self.awaiting = "the connection to open"
        self.status = 1
        self.request_id = None
        self.telemetry = self.c2d = None
        self.sent = 0  # messages handed to Proton
        self.outcomes = {}  # delivery -> index, awaiting an outcome
        self.settled = 0  # sends finished (outcome received or sent settled)
        self.received = 0
        self.mismatch = False
        self.closing = False
        self.failed = False

    def on_start(self, event):
        a = self.args
        domain = None
        if a.url.startswith("amqps:"):
            domain = SSLDomain(SSLDomain.MODE_CLIENT)
            domain.set_trusted_ca_db(a.ca)
            domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
        sasl = {"sasl_enabled": False} if a.sasl == "none" else {"allowed_mechs": "ANONYMOUS"}
        c = event.container
        self.conn = c.connect(a.url, ssl_domain=domain, reconnect=False, virtual_host=a.host_name,
                              sni=a.host_name, **sasl)
        self.cbs_sender = c.create_sender(self.conn, target="$cbs", name="cbs-sender")
        self.cbs_receiver = c.create_receiver(self.conn, source="$cbs", name="cbs-receiver")
        self.cbs_receiver.flow(1)
        self.timer = c.schedule(a.timeout, self)

    def on_timer_task(self, event):
        if self.status == 0 or self.failed:
            return event.container.stop()
        self.fail(event, "timeout", f"timed out after {self.args.timeout} s awaiting {self.awaiting}")

    def fail(self, event, stage, message, cond=None):
        if self.failed:
            return
        self.failed = True
        emit("error", stage=stage, message=message, condition=condition(cond))
        self.status = 1
        # Close politely when the connection still stands; stop in a second regardless.
        if self.conn.state & Endpoint.LOCAL_ACTIVE:
            self.conn.close()
        self.timer.cancel()
        self.timer = event.container.schedule(1, self)

    # --- CBS ---------------------------------------------------------------------
    def on_connection_opened(self, event):
        self.stage, self.awaiting = "cbs", "the CBS links and the put-token reply"

    def on_sendable(self, event):
        if event.sender == self.cbs_sender and self.request_id is None:
            self.request_id = str(uuid.uuid4())
            self.cbs_sender.send(Message(
                id=self.request_id, address="$cbs", reply_to="cbs", body=self.args.token,
                properties={"operation": "put-token", "type": "servicebus.windows.net:sastoken",
                            "name": self.args.audience}))
        elif event.sender == self.telemetry:
            self.send_telemetry(event)

    def on_cbs_reply(self, event, msg):
        props = msg.properties or {}
        status, desc = props.get("status-code"), props.get("status-description")
        emit("cbs", status=status, description=desc,
             correlation_id=typed_id(msg.correlation_id))
        if msg.correlation_id != self.request_id:
            return self.fail(event, "cbs", f"reply correlation-id {msg.correlation_id!r} is not {self.request_id!r}")
        if status != 200:
            return self.fail(event, "cbs", f"put-token status {status if status is None else int(status)}: {desc}")
        c, a = event.container, self.args
        props = Properties({symbol("com.microsoft:client-version"): CLIENT_VERSION})
        if a.send:
            mode = AtMostOnce() if a.settle_mode == "settled" else AtLeastOnce()
            self.telemetry = c.create_sender(self.conn, target=f"/devices/{a.device}/messages/events",
                                             name=f"events-{uuid.uuid4()}", options=[mode, props])
        if a.receive:
            self.c2d = c.create_receiver(self.conn, source=f"/devices/{a.device}/messages/devicebound",
                                         name=f"c2d-{uuid.uuid4()}", options=[AtLeastOnce(), props])
            self.c2d.flow(min(a.credit, a.receive))
        self.progress(event)

    # --- telemetry ---------------------------------------------------------------
    def send_telemetry(self, event):
        a = self.args
        while self.sent < a.send and self.telemetry.credit > 0:
            i = self.sent
            mid = {"string": f"{a.device}-{i}", "uuid": uuid.uuid4(), "ulong": ulong(i + 1)}[a.message_id_type]
            body = a.body if a.body is not None else f'{{"n":{i}}}'
            msg = Message(id=mid, content_type=a.content_type, body=body.encode(),
                          properties=dict(a.properties) or None)
            msg.inferred = True  # a data section (the default would be an amqp-value binary)
            dlv = self.telemetry.send(msg)
            self.sent += 1
            if self.telemetry.snd_settle_mode == Link.SND_SETTLED:  # Proton settled it on send
                emit("sent", index=i, message_id=str(mid), outcome=None, condition=None)
                self.settled += 1
            else:
                self.outcomes[dlv] = (i, str(mid))
        self.progress(event)

    def on_accepted(self, event):
        self.on_outcome(event)

    def on_rejected(self, event):
        self.on_outcome(event)

    def on_released(self, event):  # Proton calls this for released and modified
        self.on_outcome(event)

    def on_outcome(self, event):
        dlv = event.delivery
        if dlv not in self.outcomes:
            return  # the put-token request
        i, mid = self.outcomes.pop(dlv)
        got = outcome(dlv.remote_state)
        emit("sent", index=i, message_id=mid, outcome=got, condition=condition(dlv.remote.condition),
             delivery_failed=dlv.remote.failed, undeliverable_here=dlv.remote.undeliverable)
        if got != self.args.expect_outcome[i % len(self.args.expect_outcome)]:
            self.mismatch = True
        self.settled += 1
        self.progress(event)

    # --- C2D ---------------------------------------------------------------------
    def on_message(self, event):
        if event.receiver == self.cbs_receiver:
            self.accept(event.delivery)
            return self.on_cbs_reply(event, event.message)
        if event.receiver != self.c2d:
            return
        dlv, i = event.delivery, self.received
        presettled, tag = dlv.settled, tag_bytes(dlv)
        emit("received", index=i, delivery_tag=tag.hex(),
             lock_token=str(uuid.UUID(bytes_le=tag)) if len(tag) == 16 else None,
             settled=presettled, **describe(event.message))
        how = self.args.dispositions[i % len(self.args.dispositions)]
        if not presettled:
            if how == "accept":
                self.accept(dlv)
            elif how == "reject":
                self.reject(dlv)
            elif how == "release":
                self.release(dlv, delivered=False)  # delivered=True would send modified
            else:
                dlv.local.failed = True
                self.settle(dlv, Delivery.MODIFIED)
        emit("disposed", index=i, disposition=None if presettled else how)
        self.received += 1
        if self.received + self.c2d.credit < self.args.receive:
            self.c2d.flow(1)
        self.progress(event)

    # --- progress and errors -----------------------------------------------------
    def progress(self, event):
        a = self.args
        waits = []
        if self.settled < a.send:
            waits.append(f"telemetry outcomes ({self.settled} of {a.send})")
        if self.received < a.receive:
            waits.append(f"C2D messages ({self.received} of {a.receive})")
        if waits:
            self.stage, self.awaiting = "link", " and ".join(waits)
            return
        if self.mismatch:
            return self.fail(event, "send", "a telemetry outcome differed from --expect-outcome")
        self.stage, self.awaiting, self.closing = "close", "the connection to close", True
        self.conn.close()

    def on_connection_closed(self, event):
        if self.closing and not self.failed:
            emit("closed")
            self.status = 0
            # Let Proton flush the close frame and shut the socket; run() then returns.
            self.timer.cancel()
            self.timer = event.container.schedule(2, self)

    def on_transport_error(self, event):
        cond = event.transport.condition
        self.fail(event, self.stage, cond.description if cond else "transport error", cond)

    def on_connection_error(self, event):
        cond = event.connection.remote_condition
        self.fail(event, self.stage, "the peer closed the connection", cond)

    def on_session_error(self, event):
        self.fail(event, self.stage, "the peer ended the session", event.session.remote_condition)

    def on_link_error(self, event):
        self.fail(event, self.stage, f"the peer detached link {event.link.name}", event.link.remote_condition)

    def on_transport_closed(self, event):
        if self.failed:
            return event.container.stop()
        if self.status != 0 and not self.closing:
            self.fail(event, self.stage, f"the connection ended awaiting {self.awaiting}")


def main():
    args = parse_args(sys.argv[1:])
    device = Device(args)
    Container(device).run()
    sys.exit(device.status)


if __name__ == "__main__":
    main()
