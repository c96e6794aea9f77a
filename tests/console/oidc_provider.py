"""A real OpenID Connect provider on 127.0.0.1 for the console's single sign-on test.

Built with Authlib's provider side (authorization code grant, the OpenID Connect extension
signing RS256 ID tokens with a key made at start, PKCE required with S256) in a small Flask
app served by werkzeug in a thread. One confidential client (the console) whose redirect URI
is set by the test from the console's settings page, and one user who approves at once, with a
`groups` claim. Nothing here is the console's code: it only speaks the protocol.
"""

import logging
import secrets
import threading
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.models import AuthorizationCodeMixin, ClientMixin
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from flask import Flask, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

logging.getLogger("werkzeug").setLevel(logging.ERROR)

CLIENT_ID = "licensing-console"
CLIENT_SECRET = secrets.token_urlsafe(24)


class User:
    def __init__(self, sub, email, groups):
        self.sub, self.email, self.groups = sub, email, groups

    def get_user_id(self):
        return self.sub


class Client(ClientMixin):
    def __init__(self):
        self.redirect_uris = []

    def get_client_id(self):
        return CLIENT_ID

    def get_default_redirect_uri(self):
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope):
        allowed = {"openid", "email", "profile"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret, CLIENT_SECRET)

    def check_endpoint_auth_method(self, method, endpoint):
        return endpoint != "token" or method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


class Code(AuthorizationCodeMixin):
    def __init__(self, code, redirect_uri, scope, user, nonce, challenge, method):
        self.code, self.redirect_uri, self.scope, self.user = code, redirect_uri, scope, user
        self.nonce, self.code_challenge, self.code_challenge_method = nonce, challenge, method
        self.auth_time = int(time.time())

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None


class Provider:
    """The provider, started on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, user):
        self.user = user
        self.client = Client()
        self.codes = {}
        self.log = []  # what happened, for the test's checks
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.app = Flask("oidc-provider")
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._wire()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()

    def _wire(self):
        provider = self

        class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code, req):
                data = req.payload.data
                provider.codes[code] = Code(
                    code,
                    req.payload.redirect_uri,
                    req.scope,
                    req.user,
                    data.get("nonce"),
                    data.get("code_challenge"),
                    data.get("code_challenge_method"),
                )
                provider.log.append(("code", data.get("code_challenge_method")))

            def query_authorization_code(self, code, client):
                return provider.codes.get(code)

            def delete_authorization_code(self, authorization_code):
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return authorization_code.user

        class OpenIDCode(_OpenIDCode):
            def exists_nonce(self, nonce, req):
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client):
                return provider.key

            def get_client_algorithm(self, client):
                return "RS256"

            def get_encode_header(self, client):
                return {"alg": "RS256", "kid": "k1"}

            def get_client_claims(self, client):
                return {
                    "iss": provider.issuer,
                    "aud": [CLIENT_ID],
                    "exp": int(time.time()) + 300,
                }

            def generate_user_info(self, user, scope):
                info = UserInfo(sub=user.sub, groups=user.groups)
                if "email" in scope.split():
                    info["email"] = user.email
                    info["email_verified"] = True
                return info

        server = AuthorizationServer(
            self.app,
            query_client=lambda client_id: self.client if client_id == CLIENT_ID else None,
            save_token=lambda token, req: self.log.append(("token", req.client.get_client_id())),
        )
        server.register_grant(
            AuthorizationCodeGrant, [OpenIDCode(require_nonce=True), CodeChallenge(required=True)]
        )

        @self.app.get("/.well-known/openid-configuration")
        def discovery():
            i = self.issuer
            return jsonify(
                issuer=i,
                authorization_endpoint=f"{i}/authorize",
                token_endpoint=f"{i}/token",
                jwks_uri=f"{i}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                scopes_supported=["openid", "email", "profile"],
                token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
                code_challenge_methods_supported=["S256"],
                claims_supported=["sub", "iss", "aud", "exp", "iat", "nonce", "email", "groups"],
            )

        @self.app.get("/jwks")
        def jwks():
            return jsonify(keys=[self.key.as_dict(private=False)])

        @self.app.get("/authorize")
        def authorize():
            # The user is signed in at the provider and approves at once.
            method = request.args.get("code_challenge_method")
            self.log.append(("authorize", method))
            if method != "S256":
                return jsonify(error="invalid_request", error_description="S256 only"), 400
            grant = server.get_consent_grant(end_user=self.user)
            return server.create_authorization_response(grant_user=self.user, grant=grant)

        @self.app.post("/token")
        def token():
            self.log.append(("token-request", "code_verifier" in request.form))
            return server.create_token_response()
