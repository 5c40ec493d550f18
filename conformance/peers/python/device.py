"""One device session with Microsoft's Azure IoT device SDK for Python, driven by
hubwire's interop tests (conformance/src/peers.rs). Stdout carries one JSON object
per line, flushed as it happens:

  {"event":"connected"}  after CONNACK and the SUBACK of the C2D subscription
  {"event":"sent"}       after the telemetry message is acknowledged
  {"event":"c2d",...}    per cloud-to-device message (the SDK acknowledges on arrival);
                         always after "sent", even for messages that came earlier
  {"event":"twin","desired":{..},"reported":{..}}  with --twin, after "sent"; then
                         {"event":"reported"} once --report's patch is taken, and
                         {"event":"twinReady"}
  {"event":"desired","patch":{..}}  per desired-property update (--desired N waits
                         for N before closing)
  {"event":"method","name":..,"payload":..}  per direct method, answered as
                         --method says (--methods N waits for N)
  {"event":"closed"}     after the client shut down; exit status 0
  {"event":"error","stage":"args|connect|send|c2d|close","message":...}; exit status 1
                         (2 for "args"); a stage that outlasts --timeout-ms is one.

Usage: device.py --connection-string CS --ca FILE [--transport mqtt|mqtt-ws]
         [--properties JSON] [--body TEXT] [--message-id ID] [--c2d N] [--timeout-ms MS]
         [--twin] [--report JSON] [--desired N] [--method NAME=STATUS:JSON] [--methods N]
         [--keep-alive S] [--linger-ms MS]
--keep-alive sets the MQTT keep-alive (the SDK's default is 60 s); --linger-ms idles
that long before closing, so a short keep-alive shows PINGREQ and PINGRESP.
"""

import argparse
import json
import os
import queue
import sys
import threading
import time

from azure.iot.device import IoTHubDeviceClient, Message, MethodResponse

_lock = threading.Lock()
_stage = "args"


def emit(event):
    with _lock:
        sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def fail(message):
    emit({"event": "error", "stage": _stage, "message": str(message)})
    # The SDK's threads may be blocked inside the failing call: leave without them.
    os._exit(2 if _stage == "args" else 1)


class _Args(argparse.ArgumentParser):
    def error(self, message):
        fail(message)


def parse_args(argv):
    parser = _Args(prog="device.py")
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--transport", choices=["mqtt", "mqtt-ws"], default="mqtt")
    parser.add_argument("--properties", default="{}")
    parser.add_argument("--body", default="")
    parser.add_argument("--message-id")
    parser.add_argument("--c2d", type=int, default=1)
    parser.add_argument("--timeout-ms", type=int, default=10000)
    parser.add_argument("--twin", action="store_true")
    parser.add_argument("--report")
    parser.add_argument("--desired", type=int, default=0)
    parser.add_argument("--method")
    parser.add_argument("--methods", type=int, default=0)
    parser.add_argument("--keep-alive", type=int)
    parser.add_argument("--linger-ms", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        args.properties = json.loads(args.properties)
        args.report = None if args.report is None else json.loads(args.report)
        if args.method is not None:
            name, rest = args.method.split("=", 1)
            status, payload = rest.split(":", 1)
            args.method = (name, int(status), json.loads(payload))
        with open(args.ca, encoding="utf-8") as f:
            args.ca = f.read()
    except (OSError, ValueError) as e:
        fail(e)
    if not isinstance(args.properties, dict):
        fail("--properties must be a JSON object")
    if args.c2d < 0 or args.timeout_ms < 0:
        fail("--c2d and --timeout-ms must be non-negative")
    return args


def is_json(text):
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def telemetry(args):
    message = Message(args.body, message_id=args.message_id)
    if is_json(args.body):
        message.content_type = "application/json"
        message.content_encoding = "utf-8"
    message.custom_properties = {k: str(v) for k, v in args.properties.items()}
    return message


def describe(message):
    data = message.data
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    return {
        "event": "c2d",
        "body": data,
        "messageId": message.message_id,
        "correlationId": message.correlation_id,
        "contentType": message.content_type,
        "contentEncoding": message.content_encoding,
        "properties": dict(message.custom_properties),
    }


def explain(error):
    """The error and its causes: the SDK wraps the socket's or TLS's own error."""
    parts = []
    while error is not None and len(parts) < 5:
        parts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return " <- ".join(parts)


def session(args, stage_done, received):
    """Runs on a worker thread: the sync client's calls have no deadline of their own."""
    global _stage
    options = {} if args.keep_alive is None else {"keep_alive": args.keep_alive}
    client = IoTHubDeviceClient.create_from_connection_string(
        args.connection_string,
        server_verification_cert=args.ca,
        websockets=args.transport == "mqtt-ws",
        connection_retry=False,
        **options,
    )
    # The handler goes in first: the SDK keeps messages that arrive before it in an
    # inbox the handler never reads, and a hub may deliver queued C2D messages right
    # after CONNACK. Setting it connects (the client's auto-connect) and returns
    # once the subscription is acknowledged; connect() then has nothing left to do.
    client.on_message_received = received.put
    desired = queue.Queue()
    methods = queue.Queue()
    if args.twin:
        client.on_twin_desired_properties_patch_received = desired.put
    if args.method is not None:
        name, status, payload = args.method

        def answer(request):
            emit({"event": "method", "name": request.name, "payload": request.payload})
            if request.name == name:
                response = MethodResponse.create_from_method_request(request, status, payload)
            else:
                response = MethodResponse.create_from_method_request(request, 501, None)
            client.send_method_response(response)
            methods.put(request.name)

        client.on_method_request_received = answer
    client.connect()
    stage_done.put("connected")
    client.send_message(telemetry(args))
    stage_done.put("sent")
    if args.twin:
        twin = client.get_twin()
        emit({"event": "twin", "desired": twin["desired"], "reported": twin["reported"]})
        if args.report is not None:
            client.patch_twin_reported_properties(args.report)
            emit({"event": "reported"})
        emit({"event": "twinReady"})
    for _ in range(args.c2d):
        emit(describe(received.get()))
    for _ in range(args.desired):
        emit({"event": "desired", "patch": desired.get()})
    for _ in range(args.methods):
        methods.get()
    stage_done.put("c2d")
    # Idle, so that the keep-alive (--keep-alive) sends PINGREQs before the close.
    time.sleep(args.linger_ms / 1000)
    client.shutdown()
    stage_done.put("closed")


def main():
    global _stage
    args = parse_args(sys.argv[1:])
    stage_done = queue.Queue()
    received = queue.Queue()

    def worker():
        try:
            session(args, stage_done, received)
        except Exception as e:  # noqa: BLE001 - every SDK error ends the session
            fail(explain(e))

    threading.Thread(target=worker, daemon=True).start()
    timeout = args.timeout_ms / 1000
    for stage, done in [("connect", "connected"), ("send", "sent"), ("c2d", "c2d"), ("close", "closed")]:
        _stage = stage
        try:
            stage_done.get(timeout=timeout)
        except queue.Empty:
            fail(f"timed out after {args.timeout_ms} ms")
        if done != "c2d":
            emit({"event": done})
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
