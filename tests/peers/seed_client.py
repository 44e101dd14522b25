"""The seed's client: one GET with `Authorization: Bearer <token>`.

    seed_client.py [--expect STATUS] [--header 'NAME: VALUE']... [URL [TOKEN]]

URL defaults to $SEED_URL, TOKEN to $AUTHGATE_TOKEN (prefer the variable: argv
shows in `ps`); with no token at all it sends no Authorization header. Prints
the status on the first line and the body on the second (JSON, compact, keys
sorted; the raw text if the body is not JSON). Exits 0 when the status is
STATUS (default: any 2xx), 1 otherwise, 2 on a usage or connection error.
"""

import argparse
import json
import os
import sys

import requests


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect", type=int, help="the status wanted (default: any 2xx)")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="another request header, repeatable")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("url", nargs="?", default=os.environ.get("SEED_URL"))
    parser.add_argument("token", nargs="?", default=os.environ.get("AUTHGATE_TOKEN"))
    args = parser.parse_args()
    if not args.url:
        parser.error("give URL or set SEED_URL")

    headers = {"Authorization": "Bearer " + args.token} if args.token else {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            parser.error(f"--header {header!r}: want 'NAME: VALUE'")
        headers[name.strip()] = value.strip()
    try:
        response = requests.get(args.url, headers=headers, timeout=args.timeout)
    except requests.RequestException as error:
        # The message names the URL, never the headers.
        print(f"seed_client: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(response.status_code)
    try:
        print(json.dumps(response.json(), sort_keys=True))
    except ValueError:
        print(response.text)
    if args.expect is not None:
        return 0 if response.status_code == args.expect else 1
    return 0 if 200 <= response.status_code < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
