"""The OAuth 2.0 peer check (issue 25): a real licensing server driven by independent
libraries. Authlib's OAuth2Session runs the client-credentials grant (client_secret_basic and
client_secret_post), RFC 7009 revocation, and calls the admin API with the token; PyJWT
verifies the token against the server's JWKS (found through the RFC 8414 metadata) and the
RFC 9068 claims are checked. Environment: OAUTH_URL (the server, also its --issuer) and
OAUTH_ADMIN_TOKEN (an admin API token). Every HTTP call is bounded (10 s)."""

import os
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

URL = os.environ["OAUTH_URL"].rstrip("/")
ADMIN = os.environ["OAUTH_ADMIN_TOKEN"]
TIMEOUT = 10
checks = 0


def check(condition, what):
    global checks
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


def admin(method, path, body=None):
    r = requests.request(method, URL + path, json=body, timeout=TIMEOUT,
                         headers={"Authorization": f"Bearer {ADMIN}"})
    return r.status_code, (r.json() if r.content else None)


# RFC 8414 metadata.
meta = requests.get(URL + "/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()
check(meta["issuer"] == URL, f"issuer {meta['issuer']} is the server's URL")
check(meta["token_endpoint"] == URL + "/oauth/token", "token_endpoint")
check(meta["revocation_endpoint"] == URL + "/oauth/revoke", "revocation_endpoint")
check(meta["grant_types_supported"] == ["client_credentials"], "grant types")
check(set(meta["token_endpoint_auth_methods_supported"])
      == {"client_secret_basic", "client_secret_post"}, "auth methods")
check("license_manager" in meta["scopes_supported"], "scopes")

status, created = admin("POST", "/v1/oauth-clients",
                        {"name": "peer check", "role": "license_manager"})
check(status == 201, f"client created: {status} {created}")
client_id, client_secret = created["client_id"], created["client_secret"]
jwks = jwt.PyJWKClient(meta["jwks_uri"], timeout=TIMEOUT)


def verified(access_token):
    """PyJWT's verification with the server's published key, then RFC 9068 §2 and §4."""
    header = jwt.get_unverified_header(access_token)
    check(header.get("typ") == "at+jwt", f"typ {header.get('typ')}")
    check(header.get("alg") == "EdDSA", f"alg {header.get('alg')}")
    key = jwks.get_signing_key_from_jwt(access_token)
    check(key.key_id == header["kid"], "the kid names a published key")
    claims = jwt.decode(
        access_token, key.key, algorithms=["EdDSA"], issuer=meta["issuer"],
        audience=meta["issuer"] + "/v1",
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )
    check(claims["client_id"] == client_id and claims["sub"] == client_id, "sub, client_id")
    check(0 < claims["exp"] - claims["iat"] <= 900, "at most 15 minutes")
    check(claims["org"].startswith("org_"), "the organization")
    check(len(claims["jti"]) >= 16, "jti")
    return claims


# client_secret_basic (Authlib's default), scope = the client's role.
basic = OAuth2Session(client_id, client_secret, scope="license_manager",
                      token_endpoint_auth_method="client_secret_basic")
token = basic.fetch_token(meta["token_endpoint"], grant_type="client_credentials",
                          timeout=TIMEOUT)
check(token["token_type"].lower() == "bearer", "token_type")
check(0 < token["expires_in"] <= 900, "expires_in")
claims = verified(token["access_token"])
check(claims["scope"] == "license_manager", "scope")
r = basic.get(URL + "/v1/licenses", timeout=TIMEOUT)
check(r.status_code == 200, f"the admin API accepts the token: {r.status_code}")
r = basic.post(URL + "/v1/products", json={"id": "peer-p", "name": "Peer"}, timeout=TIMEOUT)
check(r.status_code == 201, f"a license manager creates a product: {r.status_code} {r.text}")
r = basic.get(URL + "/v1/api-tokens", timeout=TIMEOUT)
check(r.status_code == 403, f"but is no admin: {r.status_code}")

# client_secret_post with a lower scope.
post = OAuth2Session(client_id, client_secret, scope="auditor",
                     token_endpoint_auth_method="client_secret_post")
low = post.fetch_token(meta["token_endpoint"], grant_type="client_credentials",
                       timeout=TIMEOUT)
check(verified(low["access_token"])["scope"] == "auditor", "scope auditor")
r = post.post(URL + "/v1/products", json={"id": "peer-q", "name": "Q"}, timeout=TIMEOUT)
check(r.status_code == 403, f"an auditor token writes nothing: {r.status_code}")


def refused(session, expected, **kwargs):
    try:
        session.fetch_token(meta["token_endpoint"], grant_type="client_credentials",
                            timeout=TIMEOUT, **kwargs)
    except OAuthError as e:
        check(e.error == expected, f"{expected}: got {e.error}")
        return
    check(False, f"{expected}: a token was issued")


refused(OAuth2Session(client_id, "lsc_wrong"), "invalid_client")
refused(OAuth2Session(client_id, client_secret, scope="admin"), "invalid_scope")

# RFC 7009: the token stops working at once.
r = basic.revoke_token(meta["revocation_endpoint"], token=token["access_token"],
                       token_type_hint="access_token", timeout=TIMEOUT)
check(r.status_code == 200, f"revoked: {r.status_code}")
r = basic.get(URL + "/v1/licenses", timeout=TIMEOUT)
check(r.status_code == 401, f"a revoked token is refused: {r.status_code}")

# A revoked client: its tokens stop, and it gets no new ones.
r = post.get(URL + "/v1/licenses", timeout=TIMEOUT)
check(r.status_code == 200, "the other token still works")
status, _ = admin("POST", f"/v1/oauth-clients/{client_id}/revoke")
check(status == 200, "client revoked")
r = post.get(URL + "/v1/licenses", timeout=TIMEOUT)
check(r.status_code == 401, f"a revoked client's token is refused: {r.status_code}")
refused(OAuth2Session(client_id, client_secret), "invalid_client")

print(f"oauth peer check: {checks} checks passed")
