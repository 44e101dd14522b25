"""A grpcio client for echo.v1.Echo, health and reflection, for tests of the peers and the proxy.

    echo_client.py --target HOST:PORT [--metadata K=V]... [--token T | --token-env VAR]
                   [--timeout-ms N] [--ca PEM [--server-name NAME]] [--expect-code CODE]
                   COMMAND [options]

Each command makes its call(s), prints one JSON object on stdout and exits 0 when
the result is the expected one, 1 when it is not (the JSON's `problems` say why),
2 on a usage error. `--expect-code` (a name such as UNAUTHENTICATED, or a number)
says which status the call should end with; the default is each command's own
(OK for the echo calls, the requested code for `fail`, CANCELLED for `cancel`,
DEADLINE_EXCEEDED for the `Hang` half of `deadline`). Contents are checked only
when OK is expected. Authorization values are printed redacted, as the servers
report them: `Bearer <redacted sha256:16 hex>`.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("PEERS_GEN", os.path.join(HERE, "..", "..", "target", "peers-gen")))

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from echo.v1 import echo_pb2, echo_pb2_grpc  # noqa: E402

CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def code_of(text):
    """A status code from its name (any case) or its number."""
    try:
        return CODES_BY_NUMBER[int(text)] if text.isdigit() else grpc.StatusCode[text.upper()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"{text!r} is no gRPC status code") from None


def redact(key, value):
    """Never print a credential: keep its scheme and a short hash to compare with."""
    if key.lower() != "authorization" or "<redacted sha256:" in value:
        return value
    scheme, _, credential = value.partition(" ")
    if not credential:
        scheme, credential = "", value
    digest = hashlib.sha256(credential.encode("utf-8")).hexdigest()[:16]
    return f"{scheme} <redacted sha256:{digest}>".lstrip()


def metadata_json(pairs):
    out = {}
    for key, value in pairs or ():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        value = redact(key, value)
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def reply_json(reply):
    return {
        "message": reply.message,
        "metadata": {k: redact(k, v) for k, v in sorted(reply.metadata.items())},
        "deadline": reply.deadline,
    }


class Result:
    """What one command saw, printed as JSON, with what was not as expected."""

    def __init__(self, command):
        self.data = {"command": command, "calls": []}
        self.problems = []

    def call(self, method, want, code, details="", replies=(), trailing=None, extra=None):
        entry = {
            "method": method,
            "expected_code": want.name,
            "code": code.name,
            "details": details,
            "replies": [reply_json(r) for r in replies],
            "trailing_metadata": metadata_json(trailing),
        }
        entry.update(extra or {})
        self.data["calls"].append(entry)
        return entry

    def check(self, condition, problem):
        if not condition:
            self.problems.append(problem)

    def finish(self):
        self.data["problems"] = self.problems
        self.data["ok"] = not self.problems
        print(json.dumps(self.data, sort_keys=True), flush=True)
        return 0 if not self.problems else 1


def run_call(result, method, invoke, expect):
    """Runs `invoke()`, which returns (replies, trailing metadata), and records its status."""
    try:
        replies, trailing = invoke()
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        replies, trailing = getattr(error, "replies", []), error.trailing_metadata()
        code, details = error.code(), error.details() or ""
    entry = result.call(method, expect, code, details, replies, trailing)
    result.check(code == expect, f"{method}: want {expect.name}, got {code.name} ({details})")
    return entry, replies


def streamed(call, collected):
    """Collects a response stream's replies, keeping those read before an error."""
    try:
        for reply in call:
            collected.append(reply)
    except grpc.RpcError as error:
        error.replies = collected
        raise
    return collected, call.trailing_metadata()


def requests_from(messages, interval_ms):
    for i, message in enumerate(messages):
        if i and interval_ms:
            time.sleep(interval_ms / 1000)
        yield echo_pb2.EchoRequest(message=message)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", required=True, help="HOST:PORT")
    parser.add_argument("--metadata", action="append", default=[], metavar="K=V",
                        help="request metadata, repeatable (a -bin key's value in base64)")
    parser.add_argument("--token", help="sent as `authorization: Bearer T`")
    parser.add_argument("--token-env", metavar="VAR", help="like --token, read from this variable")
    parser.add_argument("--timeout-ms", type=int, help="deadline of each call")
    parser.add_argument("--ca", help="use TLS, trusting this PEM CA")
    parser.add_argument("--server-name", help="TLS name to check (default: the target's host)")
    parser.add_argument("--expect-code", type=code_of, help="status every call should end with")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("unary", help="Unary; checks the echo")
    p.add_argument("--message", default="hello")
    p = commands.add_parser("server-stream", help="ServerStream; checks `count` echoes")
    p.add_argument("--message", default="hello")
    p.add_argument("--count", type=int, default=3)
    p = commands.add_parser("client-stream", help="ClientStream; checks the concatenation")
    p.add_argument("--message", action="append", help="repeatable (default: a b c)")
    p.add_argument("--interval-ms", type=int, default=0, help="pause between sends")
    p = commands.add_parser("bidi", help="Bidi; checks one echo per message, in order")
    p.add_argument("--message", action="append", help="repeatable (default: a b c)")
    p.add_argument("--interval-ms", type=int, default=0, help="pause between sends")
    p = commands.add_parser("fail", help="Fail; checks code, message and trailer")
    p.add_argument("--code", type=code_of, required=True, help="name or number")
    p.add_argument("--message", default="failed on purpose")
    p.add_argument("--trailer-key", default="")
    p.add_argument("--trailer-value", default="")
    p = commands.add_parser("hang", help="Hang; it ends only by --timeout-ms (expects DEADLINE_EXCEEDED)")
    p = commands.add_parser("cancel", help="starts a call, cancels it once the server has it")
    p.add_argument("--method", choices=("hang", "server-stream", "bidi"), default="hang")
    p = commands.add_parser("deadline", help="Unary must see the deadline; Hang must exceed it")
    p.add_argument("--deadline-ms", type=int, default=5000, help="the Unary call's deadline")
    p.add_argument("--hang-ms", type=int, default=300, help="the Hang call's deadline")
    p = commands.add_parser("health", help="grpc.health.v1.Health/Check")
    p.add_argument("--service", default="")
    p.add_argument("--want", default="SERVING", help="the expected serving status")
    commands.add_parser("list", help="services listed by reflection (v1alpha); wants echo.v1.Echo")
    args = parser.parse_args()

    metadata = []
    for pair in args.metadata:
        key, sep, value = pair.partition("=")
        if not sep:
            parser.error(f"--metadata {pair!r}: want K=V")
        key = key.lower()
        # grpcio sends binary metadata from bytes: take a -bin value as base64.
        metadata.append((key, base64.b64decode(value) if key.endswith("-bin") else value))
    token = args.token
    if args.token_env:
        token = os.environ.get(args.token_env)
        if token is None:
            parser.error(f"--token-env: {args.token_env} is not set")
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    timeout = args.timeout_ms / 1000 if args.timeout_ms is not None else None

    if args.ca:
        with open(args.ca, "rb") as ca:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
        options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
        channel = grpc.secure_channel(args.target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(args.target)
    stub = echo_pb2_grpc.EchoStub(channel)
    kw = {"metadata": metadata, "timeout": timeout}
    command = args.command

    def expect(default):
        return args.expect_code or default

    OK = grpc.StatusCode.OK
    result = Result(command)

    if command == "unary":
        want = expect(OK)
        _, replies = run_call(
            result, "Unary", lambda: ([stub.Unary(echo_pb2.EchoRequest(message=args.message), **kw)], None), want
        )
        if want == OK and replies:
            result.check(replies[0].message == args.message, f"Unary echoed {replies[0].message!r}")

    elif command == "server-stream":
        want = expect(OK)
        request = echo_pb2.EchoRequest(message=args.message, count=args.count)
        _, replies = run_call(result, "ServerStream", lambda: streamed(stub.ServerStream(request, **kw), []), want)
        if want == OK:
            result.check(len(replies) == max(args.count, 0), f"ServerStream: {len(replies)} replies, want {args.count}")
            result.check(all(r.message == args.message for r in replies), "ServerStream: a reply is not the echo")

    elif command == "client-stream":
        want = expect(OK)
        messages = args.message or ["a", "b", "c"]

        def invoke():
            reply, call = stub.ClientStream.with_call(requests_from(messages, args.interval_ms), **kw)
            return [reply], call.trailing_metadata()

        _, replies = run_call(result, "ClientStream", invoke, want)
        if want == OK and replies:
            result.check(replies[0].message == "".join(messages), f"ClientStream answered {replies[0].message!r}")

    elif command == "bidi":
        want = expect(OK)
        messages = args.message or ["a", "b", "c"]
        _, replies = run_call(
            result, "Bidi", lambda: streamed(stub.Bidi(requests_from(messages, args.interval_ms), **kw), []), want
        )
        if want == OK:
            got = [r.message for r in replies]
            result.check(got == messages, f"Bidi echoed {got}, want {messages}")

    elif command == "fail":
        want = expect(args.code)
        request = echo_pb2.FailRequest(
            code=args.code.value[0], message=args.message,
            trailer_key=args.trailer_key, trailer_value=args.trailer_value,
        )

        def invoke():
            reply, call = stub.Fail.with_call(request, **kw)
            return [reply], call.trailing_metadata()

        entry, _ = run_call(result, "Fail", invoke, want)
        if args.expect_code is None:
            result.check(entry["details"] == args.message, f"Fail: message {entry['details']!r}")
            if args.trailer_key and args.trailer_value:
                got = entry["trailing_metadata"].get(args.trailer_key.lower())
                want_value = base64.b64encode(args.trailer_value.encode()).decode() if args.trailer_key.endswith("-bin") else args.trailer_value
                result.check(got == want_value, f"Fail: trailer {args.trailer_key}={got!r}")

    elif command == "hang":
        if timeout is None:
            parser.error("hang: give --timeout-ms, or use `cancel`")
        run_call(result, "Hang", lambda: ([stub.Hang(echo_pb2.EchoRequest(message="hang"), **kw)], None),
                 expect(grpc.StatusCode.DEADLINE_EXCEEDED))

    elif command == "cancel":
        want = expect(grpc.StatusCode.CANCELLED)
        # Cancel only once the server has the call: Hang sends its headers at
        # once, and the streams send a first reply.
        if args.method == "hang":
            method = "Hang"
            # grpcio's unary calls get headers only with the answer, so call
            # the unary method as a server stream (the same on the wire) to
            # see the headers it sends on arrival.
            hang = channel.unary_stream(
                "/echo.v1.Echo/Hang",
                request_serializer=echo_pb2.EchoRequest.SerializeToString,
                response_deserializer=echo_pb2.EchoReply.FromString,
            )
            call = hang(echo_pb2.EchoRequest(message="cancel me"), **kw)
            call.initial_metadata()
            arrived = []
        elif args.method == "server-stream":
            method = "ServerStream"
            call = stub.ServerStream(echo_pb2.EchoRequest(message="cancel me", count=1_000_000), **kw)
            arrived = []
        else:
            method = "Bidi"
            more = threading.Event()

            def requests():
                yield echo_pb2.EchoRequest(message="cancel me")
                more.wait()

            call = stub.Bidi(requests(), **kw)
            arrived = []
        started = time.monotonic()
        try:
            if args.method != "hang":
                arrived.append(next(call))
            call.cancel()
            code, details = call.code(), call.details() or ""
        except grpc.RpcError as error:
            code, details = error.code(), error.details() or ""
        if args.method == "bidi":
            more.set()
        result.call(method, want, code, details, arrived,
                    extra={"cancelled_after_ms": int((time.monotonic() - started) * 1000)})
        result.check(code == want, f"{method}: want {want.name}, got {code.name} ({details})")

    elif command == "deadline":
        want = expect(OK)
        deadline_ms = args.deadline_ms
        request = echo_pb2.EchoRequest(message="deadline")
        _, replies = run_call(
            result, "Unary",
            lambda: ([stub.Unary(request, metadata=metadata, timeout=deadline_ms / 1000)], None), want,
        )
        if want == OK and replies:
            seen = replies[0].deadline
            result.check(seen.isdigit() and 0 < int(seen) <= deadline_ms,
                         f"Unary saw deadline {seen!r}, want 1..{deadline_ms} ms")
        run_call(result, "Hang",
                 lambda: ([stub.Hang(request, metadata=metadata, timeout=args.hang_ms / 1000)], None),
                 expect(grpc.StatusCode.DEADLINE_EXCEEDED))

    elif command == "health":
        health_stub = health_pb2_grpc.HealthStub(channel)
        status = []

        def invoke():
            answer = health_stub.Check(health_pb2.HealthCheckRequest(service=args.service), **kw)
            status.append(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
            return [], None

        entry, _ = run_call(result, "Health/Check", invoke, expect(OK))
        entry["status"] = status[0] if status else None
        if expect(OK) == OK:
            result.check(entry["status"] == args.want, f"health: {entry['status']}, want {args.want}")

    elif command == "list":
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        services = []

        def invoke():
            stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), **kw
            )
            for answer in stream:
                services.extend(s.name for s in answer.list_services_response.service)
            return [], stream.trailing_metadata()

        entry, _ = run_call(result, "ServerReflectionInfo", invoke, expect(OK))
        entry["services"] = sorted(services)
        if expect(OK) == OK:
            result.check("echo.v1.Echo" in services, f"reflection lists {sorted(services)}")

    channel.close()
    return result.finish()


if __name__ == "__main__":
    sys.exit(main())
