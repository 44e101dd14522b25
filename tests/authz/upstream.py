"""A plain HTTP upstream for tests/authz/run.sh: answers every request with
the method, path and headers it received, as JSON, and appends the same to
an events file (one JSON line per request), so the script can tell what
reached it and what never did. Standard library only."""

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--events", required=True)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self):
            seen = {
                "method": self.command,
                "path": self.path,
                # Lowercase names; a repeated header keeps every value.
                "headers": {},
            }
            for name, value in self.headers.items():
                seen["headers"].setdefault(name.lower(), []).append(value)
            line = json.dumps(seen)
            with open(args.events, "a") as events:
                events.write(line + "\n")
            body = (line + "\n").encode()
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = answer

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    host, port = server.server_address
    print(f"listening {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
