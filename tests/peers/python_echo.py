"""A grpcio upstream for `authgate proxy` tests: echo.v1.Echo, reflection and health.

Prints `listening 127.0.0.1:<port>` as its first stdout line once the port is
bound (port 0 picks a free one), then serves until SIGTERM or SIGINT.

With `--events FILE` it appends one JSON object per line, flushed at once, so a
test can see what reached the upstream through the proxy:
  {"event": "call", "method": "/echo.v1.Echo/Unary", "metadata": {...}}
      every call that arrives, health and reflection included;
  {"event": "deadline", "method": ..., "remaining_ms": N}
      an Echo call that came with a deadline (as seen on arrival);
  {"event": "cancelled", "method": ..., "deadline_passed": bool}
      an Echo call that ended before its handler finished: the caller
      cancelled it, or its deadline passed (then `deadline_passed` is true).

Run it with target/peers-venv/bin/python after tests/peers/install.sh, which
generates the stubs into target/peers-gen (or set PEERS_GEN to where they are).
"""

import argparse
import base64
import hashlib
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("PEERS_GEN", os.path.join(HERE, "..", "..", "target", "peers-gen")))

import grpc  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection  # noqa: E402

from echo.v1 import echo_pb2, echo_pb2_grpc  # noqa: E402

SERVICE = echo_pb2.DESCRIPTOR.services_by_name["Echo"].full_name
# grpcio reports "no deadline" as a deadline far in the future.
NO_DEADLINE_AFTER_S = 10 * 365 * 24 * 3600
CODES = {code.value[0]: code for code in grpc.StatusCode}


class Events:
    """The JSON-lines events file, written whole lines at a time from any thread."""

    def __init__(self, path):
        self._file = open(path, "a", encoding="utf-8") if path else None
        self._lock = threading.Lock()

    def write(self, **event):
        if self._file is None:
            return
        line = json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()


def redact(key, value):
    """Never write a credential: keep its scheme and a short hash to compare with."""
    if key.lower() != "authorization":
        return value
    scheme, _, credential = value.partition(" ")
    if not credential:
        scheme, credential = "", value
    digest = hashlib.sha256(credential.encode("utf-8")).hexdigest()[:16]
    return f"{scheme} <redacted sha256:{digest}>".lstrip()


def metadata_dict(pairs):
    """Every key the call carried; binary values base64, repeated keys joined,
    `authorization` redacted."""
    out = {}
    for key, value in pairs or ():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        value = redact(key, value)
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


class RecordCalls(grpc.ServerInterceptor):
    """Writes a `call` event for every call, whichever service it is for."""

    def __init__(self, events):
        self._events = events

    def intercept_service(self, continuation, details):
        self._events.write(
            event="call", method=details.method, metadata=metadata_dict(details.invocation_metadata)
        )
        return continuation(details)


class Call:
    """One Echo call: its deadline event, and a `cancelled` event if it ends unfinished."""

    def __init__(self, events, method, context):
        self.metadata = metadata_dict(context.invocation_metadata())
        self.deadline = ""
        self.ended = threading.Event()
        self._finished = False
        self._stream_ended = False
        self._context = context
        self._events = events
        self._method = method
        remaining = context.time_remaining()
        self._deadline_at = None
        if remaining is not None and remaining < NO_DEADLINE_AFTER_S:
            self._deadline_at = time.monotonic() + remaining
            self.deadline = str(int(remaining * 1000))
            events.write(event="deadline", method=method, remaining_ms=int(remaining * 1000))
        if not context.add_callback(self._on_end):
            self._on_end()

    def _on_end(self):
        if not self._finished or (self._stream_ended and self._cancelled_by_client()):
            passed = self._deadline_at is not None and time.monotonic() >= self._deadline_at - 0.05
            self._events.write(event="cancelled", method=self._method, deadline_passed=passed)
        self.ended.set()

    def finish(self):
        """The handler is done: its end from here on is no cancellation."""
        self._finished = True

    def stream_ended(self):
        """The request stream ended and the handler is done. A caller's cancel
        can look like that for a moment (the read ends empty before the cancel
        is seen), so the call's end decides."""
        self._stream_ended = True
        self._finished = True

    def _cancelled_by_client(self):
        # grpcio has no public way to ask once the call is over; its state
        # says "cancelled" when the caller cancelled or the deadline passed.
        state = getattr(self._context, "_state", None)
        return getattr(state, "client", None) == "cancelled"

    def reply(self, message):
        return echo_pb2.EchoReply(message=message, metadata=self.metadata, deadline=self.deadline)


class Echo(echo_pb2_grpc.EchoServicer):
    def __init__(self, events):
        self._events = events

    def _call(self, name, context):
        return Call(self._events, f"/{SERVICE}/{name}", context)

    def Unary(self, request, context):
        call = self._call("Unary", context)
        call.finish()
        return call.reply(request.message)

    def ServerStream(self, request, context):
        call = self._call("ServerStream", context)
        for _ in range(max(request.count, 0)):
            yield call.reply(request.message)
        call.finish()

    def ClientStream(self, request_iterator, context):
        call = self._call("ClientStream", context)
        joined = "".join(request.message for request in request_iterator)
        call.stream_ended()
        return call.reply(joined)

    def Bidi(self, request_iterator, context):
        call = self._call("Bidi", context)
        for request in request_iterator:
            yield call.reply(request.message)
        call.stream_ended()

    def Fail(self, request, context):
        call = self._call("Fail", context)
        code = CODES.get(request.code)
        if code is None or code is grpc.StatusCode.OK:
            call.finish()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Fail: code {request.code} is not 1..16")
        if request.trailer_key and request.trailer_value:
            value = request.trailer_value
            if request.trailer_key.endswith("-bin"):
                value = value.encode("utf-8")
            context.set_trailing_metadata(((request.trailer_key, value),))
        call.finish()
        context.abort(code, request.message)

    def Hang(self, request, context):
        call = self._call("Hang", context)
        # Headers at once, so that a caller can tell the call has arrived.
        context.send_initial_metadata(())
        call.ended.wait()
        return call.reply(request.message)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--events", help="append JSON-lines events to this file")
    parser.add_argument("--tls-cert", help="serve TLS with this PEM certificate chain")
    parser.add_argument("--tls-key", help="the PEM private key for --tls-cert")
    args = parser.parse_args()

    events = Events(args.events)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=64), interceptors=[RecordCalls(events)]
    )
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(events), server)
    health_servicer = health.HealthServicer()
    for name in ("", SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )

    address = f"{args.host}:{args.port}"
    if args.tls_cert:
        with open(args.tls_key, "rb") as key, open(args.tls_cert, "rb") as cert:
            credentials = grpc.ssl_server_credentials(((key.read(), cert.read()),))
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        sys.exit(f"python_echo: cannot bind {address}")
    server.start()
    print(f"listening {args.host}:{port}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    # Ends calls in flight (a Hang among them) so that the process can exit.
    server.stop(grace=0).wait()


if __name__ == "__main__":
    main()
