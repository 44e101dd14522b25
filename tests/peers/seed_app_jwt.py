"""The seed app as the blog post wrote it: FastAPI checking the token itself.

    AUTHGATE_ISSUER=https://issuer/ AUTHGATE_AUDIENCE=aud seed_app_jwt.py [--host H] [--port 0]

The baseline that benchmarks compare `authgate proxy` in front of seed_app.py
with. Kept as the post had it, costs included: every request builds a new
PyJWKClient for `{issuer}.well-known/jwks.json` (so fetches the key set again)
and runs jwt.decode(RS256, audience, issuer). A missing or non-Bearer header is
FastAPI's HTTPBearer answer (403 "Not authenticated" in older FastAPI, 401 in
newer); a token that fails to verify is 401 with {"detail": <PyJWT's reason>}.

Prints `listening 127.0.0.1:<port>` first, as seed_app.py does.
"""

import argparse
import os

import jwt
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from seed_app import serve

ISSUER = os.environ.get("AUTHGATE_ISSUER", "")
AUDIENCE = os.environ.get("AUTHGATE_AUDIENCE", "")

app = FastAPI()
token_auth_scheme = HTTPBearer()


class VerifyToken:
    """Does the token verification using PyJWT, as the post's utils.py did."""

    def __init__(self, token):
        self.token = token
        # This gets the JWKS from the issuer, for each request.
        jwks_url = f"{ISSUER}.well-known/jwks.json"
        self.jwks_client = jwt.PyJWKClient(jwks_url)

    def verify(self):
        # This gets the 'kid' from the passed token.
        try:
            self.signing_key = self.jwks_client.get_signing_key_from_jwt(self.token).key
        except jwt.exceptions.PyJWKClientError as error:
            return {"status": "error", "msg": str(error)}
        except jwt.exceptions.DecodeError as error:
            return {"status": "error", "msg": str(error)}

        try:
            payload = jwt.decode(
                self.token,
                self.signing_key,
                algorithms=["RS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
            )
        except Exception as e:
            return {"status": "error", "message": str(e)}

        return payload


@app.get("/")
def private(token: HTTPAuthorizationCredentials = Depends(token_auth_scheme)):
    """A valid access token is required to access this route."""
    result = VerifyToken(token.credentials).verify()
    if result.get("status"):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=result.get("msg") or result.get("message"),
            headers={"WWW-Authenticate": "Bearer"},
        )
    return {"message": "This is private"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if not ISSUER or not AUDIENCE:
        parser.error("set AUTHGATE_ISSUER and AUTHGATE_AUDIENCE")
    serve(app, args.host, args.port, name="seed_app_jwt")


if __name__ == "__main__":
    main()
