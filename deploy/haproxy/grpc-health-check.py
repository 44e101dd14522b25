#!/usr/bin/env python3
"""Prints the bytes of haproxy.cfg's `tcp-check send-binary`, in hex.

HAProxy 2.6 has no gRPC health check, and its `http-check send` cannot carry
the five zero bytes of an empty gRPC message (a NUL ends the string). So the
check speaks HTTP/2 itself: the client preface, an empty SETTINGS frame, one
HEADERS frame (HPACK literals, no Huffman, no dynamic table) for
`POST /grpc.health.v1.Health/Check` with `content-type: application/grpc` and
`te: trailers`, and one DATA frame holding an empty HealthCheckRequest
(service "": the server as a whole). The answer holds the gRPC message
`00 00000002 0801` (HealthCheckResponse{status: SERVING}) only when serving;
NOT_SERVING is `0802`, and a refusal has no message at all.
"""


def literal(index: int, value: str) -> bytes:
    """Literal header field without indexing, name from the static table."""
    v = value.encode()
    return bytes([index, len(v)]) + v


def literal_new_name(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return bytes([0, len(n)]) + n + bytes([len(v)]) + v


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


headers = (
    bytes([0x83, 0x86])  # :method POST, :scheme http (static table 3 and 6)
    + literal(4, "/grpc.health.v1.Health/Check")  # :path
    + literal(1, "authgate")  # :authority
    + bytes([0x0F, 0x10]) + bytes([16]) + b"application/grpc"  # content-type (static 31)
    + literal_new_name("te", "trailers")
)
request = (
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    + frame(0x4, 0x0, 0, b"")  # SETTINGS, empty
    + frame(0x1, 0x4, 1, headers)  # HEADERS, END_HEADERS
    + frame(0x0, 0x1, 1, bytes(5))  # DATA, END_STREAM: an empty message
)
print(request.hex())
