"""Tokens a running licensing-server signed, verified by PyJWT with the JWKS it publishes.

Usage: python3 pyjwt_server_tokens.py DIR
DIR holds jwks.json (from GET /.well-known/jwks.json) and tokens.json: a list of
{"token": ..., "typ": ..., "aud": ...}. Each token must verify with the key its `kid` names
(EdDSA only), carry the expected `typ`, and name the expected audience; a token altered by one
byte must not verify. Prints one line per check; exits 1 on the first failure.
"""
import json
import sys
from pathlib import Path

import jwt

directory = Path(sys.argv[1])
jwks = json.loads((directory / "jwks.json").read_text())
keys = {k["kid"]: jwt.PyJWK(k) for k in jwks["keys"]}
tokens = json.loads((directory / "tokens.json").read_text())
checked = 0
for item in tokens:
    token, typ, aud = item["token"], item["typ"], item["aud"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA", header
    assert header["typ"] == typ, (header, typ)
    key = keys[header["kid"]]
    claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=aud,
                        options={"verify_exp": True, "verify_iat": False})
    print(f"ok {typ} sub={claims['sub']}")
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    try:
        jwt.decode(f"{head}.{payload}.{flipped}", key, algorithms=["EdDSA"], audience=aud)
    except jwt.InvalidSignatureError:
        print(f"ok {typ} altered signature refused")
    else:
        print(f"FAIL {typ}: altered signature accepted")
        sys.exit(1)
    checked += 1
assert checked == len(tokens) and checked >= 4, checked
print(f"{checked} server tokens verified by PyJWT")
