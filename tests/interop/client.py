"""A Python client generated from proto/authgate/v1/private.proto with
grpcio-tools, calling authgate with bearer metadata.

usage: client.py ADDR TOKEN TOKEN_WITHOUT_SCOPE
"""

import sys

import grpc

from authgate.v1 import private_pb2, private_pb2_grpc


def call(stub, token=None):
    metadata = [("authorization", f"Bearer {token}")] if token is not None else []
    return stub.GetPrivate(private_pb2.GetPrivateRequest(), metadata=metadata, timeout=10)


def expect_code(stub, token, code, says):
    try:
        call(stub, token)
    except grpc.RpcError as error:
        assert error.code() == code, f"{token!r:.20}: got {error.code()}, want {code}"
        assert says in error.details(), f"{error.details()!r} does not say {says!r}"
        print(f"ok: {code.name}: {error.details()}")
        return
    raise AssertionError(f"a call that should fail with {code} succeeded")


def main():
    addr, token, unscoped = sys.argv[1:4]
    with grpc.insecure_channel(addr) as channel:
        stub = private_pb2_grpc.PrivateServiceStub(channel)
        response = call(stub, token)
        assert response.message == "This is private", response
        assert response.subject == "authgate-dev@clients", response
        assert list(response.scopes) == ["read:private", "other"], response
        print(f"ok: GetPrivate -> {response.message!r} for {response.subject}")
        expect_code(stub, None, grpc.StatusCode.UNAUTHENTICATED, "missing authorization")
        expect_code(stub, token[:-4] + "AAAA", grpc.StatusCode.UNAUTHENTICATED, "signature is invalid")
        expect_code(stub, "not-a-jwt", grpc.StatusCode.UNAUTHENTICATED, "malformed")
        expect_code(stub, unscoped, grpc.StatusCode.PERMISSION_DENIED, "missing required scope `read:private`")


if __name__ == "__main__":
    main()
