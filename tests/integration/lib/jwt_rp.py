#!/usr/bin/python3
"""An independent relying party for ringfence's client assertions.

Verifies a JWT client assertion the way Entra ID does, with PyJWT and
python3-cryptography (nothing of ringfence): finds the credential by the
header's x5t#S256 among the registered certificates (PEM files given),
verifies the signature (PS256 or RS256, as the header says, from the set
the registration allows), and checks aud, iss, sub, nbf, iat, exp (at most
10 minutes after nbf) and that jti was never seen (the seen file).

usage: jwt_rp.py JWT TENANT_ID CLIENT_ID SEEN_FILE CERT.pem...
Exit 0 and "ok <jti> <alg>" on success, 1 and the reason otherwise.
"""
import base64
import hashlib
import json
import sys
import time

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main():
    token, tid, cid, seen_file = sys.argv[1:5]
    certs = {}
    for path in sys.argv[5:]:
        with open(path, "rb") as f:
            c = x509.load_pem_x509_certificate(f.read())
        certs[b64u(hashlib.sha256(c.public_bytes(Encoding.DER)).digest())] = c
    hdr = jwt.get_unverified_header(token)
    if hdr.get("typ") != "JWT":
        return "typ is not JWT"
    if hdr.get("alg") not in ("PS256", "RS256"):
        return "alg %r not accepted" % hdr.get("alg")
    cert = certs.get(hdr.get("x5t#S256"))
    if cert is None:
        return "no registered credential with x5t#S256 %s" % hdr.get("x5t#S256")
    aud = "https://login.microsoftonline.com/%s/oauth2/v2.0/token" % tid
    try:
        claims = jwt.decode(token, cert.public_key(), algorithms=[hdr["alg"]],
                            audience=aud, issuer=cid,
                            options={"require": ["aud", "iss", "sub", "jti",
                                                 "nbf", "exp", "iat"]})
    except jwt.PyJWTError as e:
        return "signature or claims refused: %s" % e
    if claims["sub"] != cid:
        return "sub is not the client id"
    now = time.time()
    if not (claims["nbf"] <= now + 60 and claims["iat"] == claims["nbf"]):
        return "nbf/iat not now"
    if not (0 < claims["exp"] - claims["nbf"] <= 600):
        return "exp more than 10 minutes after nbf"
    try:
        with open(seen_file) as f:
            seen = set(f.read().split())
    except FileNotFoundError:
        seen = set()
    if claims["jti"] in seen:
        return "jti replayed: %s" % claims["jti"]
    with open(seen_file, "a") as f:
        f.write(claims["jti"] + "\n")
    print("ok", claims["jti"], hdr["alg"])
    return None


if __name__ == "__main__":
    err = main()
    if err:
        print("relying party: " + err, file=sys.stderr)
        sys.exit(1)
