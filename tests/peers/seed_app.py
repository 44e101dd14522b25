"""The seed FastAPI app, without its own token check: the HTTP/1.1 upstream that
`authgate proxy --upstream-protocol http1` guards in tests.

    seed_app.py [--host 127.0.0.1] [--port 0] [--events FILE]

Prints `listening 127.0.0.1:<port>` as its first stdout line once the port is
bound (0 picks a free one), then serves with uvicorn (h11, HTTP/1.1 only) until
SIGTERM or SIGINT. Routes:
  GET /            {"message": "This is private"}   (the seed's route)
  GET /admin/stats {"admin": true}
  GET /whoami      the x-authgate-* headers received, {name: value}
  GET /healthz     {"status": "ok"}                  (for --public tests)
  any  /request/...  {"method", "path", "query", "headers", "body_bytes"}: what
                   arrived, `authorization` redacted
With `--events FILE` each request that arrives appends one JSON line, flushed:
  {"event": "request", "method": "GET", "path": "/", "query": "", "headers": {...}}
(`authorization` as "<scheme> <redacted sha256:HEX16>"), so that a test can
tell that a refused request never reached the upstream.
"""

import argparse
import hashlib
import json
import signal
import socket
import sys
import threading

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


def redact(key, value):
    """Never write a credential: keep its scheme and a short hash to compare with."""
    if key.lower() != "authorization":
        return value
    scheme, _, credential = value.partition(" ")
    if not credential:
        scheme, credential = "", value
    digest = hashlib.sha256(credential.encode("utf-8")).hexdigest()[:16]
    return f"{scheme} <redacted sha256:{digest}>".lstrip()


def headers_of(request):
    out = {}
    for key, value in request.headers.items():
        value = redact(key, value)
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


class Events:
    def __init__(self):
        self.file = None
        self.lock = threading.Lock()

    def write(self, **event):
        if self.file is None:
            return
        with self.lock:
            self.file.write(json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n")
            self.file.flush()


events = Events()


@app.middleware("http")
async def record(request: Request, call_next):
    events.write(
        event="request",
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        headers=headers_of(request),
    )
    return await call_next(request)


@app.get("/")
def private():
    return {"message": "This is private"}


@app.get("/admin/stats")
def admin_stats():
    return {"admin": True}


@app.get("/whoami")
def whoami(request: Request):
    return {k: v for k, v in request.headers.items() if k.startswith("x-authgate-")}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.api_route("/request/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def request_info(request: Request, rest: str):
    body = await request.body()
    return {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": headers_of(request),
        "body_bytes": len(body),
    }


def serve(app_, host, port, events_path=None, name="seed_app"):
    """Binds first, so that port 0 works and the printed port is the real one."""
    if events_path:
        events.file = open(events_path, "a", encoding="utf-8")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sys.exit(f"{name}: cannot bind {host}:{port}: {error}")
    sock.listen(128)
    print(f"listening {host}:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app_, http="h11", log_level="warning", access_log=False)
    # uvicorn shuts down gracefully on SIGTERM or SIGINT, then raises the
    # signal again under the handlers it found: let that be a clean exit.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    uvicorn.Server(config).run(sockets=[sock])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--events", help="append one JSON line per request to this file")
    args = parser.parse_args()
    serve(app, args.host, args.port, args.events)


if __name__ == "__main__":
    main()
