"""A minimal issuer for testing seed_app_jwt.py without authgate: one RSA key,
served as a JWKS, and tokens signed with it.

    jwks_stub.py --audience AUD --tokens FILE [--host 127.0.0.1] [--port 0]

Binds, writes FILE with one `NAME TOKEN` line per token (good, expired,
wrong-audience, other-key), then prints `listening 127.0.0.1:<port>` and
`issuer http://127.0.0.1:<port>/`, and serves GET /.well-known/jwks.json until
SIGTERM or SIGINT. Each JWKS fetch is counted on stderr as `jwks fetch N`,
showing that the seed app fetches the key set on every request. The tokens go
to FILE only, never to stdout.
"""

import argparse
import http.server
import json
import os
import signal
import sys
import threading
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--tokens", required=True, help="file for the `NAME TOKEN` lines")
    args = parser.parse_args()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="stub-1", use="sig", alg="RS256")
    jwks = json.dumps({"keys": [jwk]}).encode()
    fetches = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            fetches[0] += 1
            print(f"jwks fetch {fetches[0]}", file=sys.stderr, flush=True)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    issuer = f"http://{args.host}:{server.server_address[1]}/"
    now = int(time.time())

    def token(signer=key, **claims):
        body = {"iss": issuer, "aud": args.audience, "sub": "stub@clients", "iat": now,
                "exp": now + 3600, "scope": "read:private"}
        body.update(claims)
        return jwt.encode(body, signer, algorithm="RS256", headers={"kid": "stub-1"})

    tokens = {
        "good": token(),
        "expired": token(exp=now - 600, iat=now - 4200),
        "wrong-audience": token(aud="someone-else"),
        "other-key": token(signer=other),
    }
    fd = os.open(args.tokens, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{name} {value}\n" for name, value in tokens.items())

    print(f"listening {args.host}:{server.server_address[1]}", flush=True)
    print(f"issuer {issuer}", flush=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


if __name__ == "__main__":
    main()
