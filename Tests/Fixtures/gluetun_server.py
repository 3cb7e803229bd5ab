#!/usr/bin/env python3
"""A stand-in for Gluetun's HTTP control server (protocols.md §4), for portsync's tests, on
127.0.0.1 only. A JSON control file, read on every request, decides how it behaves:

  {"version": "3.40" | "3.41" | "main", "ports": [40000], "auth": "none" | "apikey" | "basic",
   "apikey": "...", "username": "...", "password": "...", "mode": "normal" | "garbage" | "hang",
   "roles": [{"name": "...", "auth": "...", "apikey": "...", "username": "...", "password": "...",
              "routes": ["GET /v1/openvpn/portforwarded"]}]}

3.40 serves /v1/openvpn/portforwarded only; 3.41 adds /v1/portforward and answers the old
route with 301, and so does "main", which answers {"port":N,"ports":[...]} (port 0 and ports
null when none).

Authentication is Gluetun's (internal/server/middlewares/auth): "roles" as in its config.toml;
without them, one role with "auth" (and its key or user) lists every route the version serves
(with "auth": "none" that is Gluetun's default "public" role). 3.40 and 3.41 check the roles
before routing: a route that no role lists is 401, like failed credentials, whether the route
exists or not. "main" answers 404 for a route it does not have before it checks the roles.
Errors are Go's http.Error: text/plain, "nosniff", the status text and a newline. Each request
is logged as one JSON line."""
import argparse
import base64
import http.server
import json
import time
from urllib.parse import parse_qs

# The routes each version serves (its router, behind the auth middleware).
SERVED = {"3.40": ["/v1/openvpn/portforwarded"], "3.41": ["/v1/portforward", "/v1/openvpn/portforwarded"],
          "main": ["/v1/portforward", "/v1/openvpn/portforwarded"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    log = open(args.log, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def answer(self, status, body=b"", headers=None):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status, text, headers=None):
            self.answer(status, (text + "\n").encode(), {"X-Content-Type-Options": "nosniff", **(headers or {})})

        def authorized(self, role, query, challenge):
            """One role's check (none.go, apikey.go, basic.go); a basic role asks for credentials
            when none came."""
            if role.get("auth", "none") == "none":
                return True
            if role["auth"] == "apikey":
                key = self.headers.get("X-API-Key") or parse_qs(query).get("api_key", [""])[0]
                return key == role.get("apikey")
            authorization = self.headers.get("Authorization") or ""
            if not authorization.startswith("Basic "):
                challenge["WWW-Authenticate"] = 'Basic realm="restricted", charset="UTF-8"'
                return False
            expected = base64.b64encode(f"{role.get('username')}:{role.get('password')}".encode()).decode()
            return authorization == f"Basic {expected}"

        def do_GET(self):
            try:
                with open(args.control) as f:
                    control = json.load(f)
            except (OSError, ValueError):
                control = {}
            path, _, query = self.path.partition("?")
            version = control.get("version", "3.41")
            served = SERVED.get(version, [])
            roles = control.get("roles")
            if roles is None:
                roles = [{"name": "fixture", "auth": control.get("auth", "none"), "apikey": control.get("apikey"),
                          "username": control.get("username"), "password": control.get("password"),
                          "routes": ["GET " + route for route in served]}]
            listing = [role for role in roles if "GET " + path in role.get("routes", [])]
            challenge = {}
            allowed = any(self.authorized(role, query, challenge) for role in listing)
            entry = {"t": time.time(), "path": path, "api_key": self.headers.get("X-API-Key") is not None,
                     "basic": (self.headers.get("Authorization") or "").startswith("Basic "), "allowed": allowed}
            log.write(json.dumps(entry) + "\n")
            if control.get("mode") == "hang":
                time.sleep(30)
                return
            if version == "main" and path not in served:
                return self.error(404, "Not Found")
            if not allowed:
                return self.error(401, "Unauthorized", challenge)
            ports = control.get("ports", [])
            if path == "/v1/openvpn/portforwarded" and version != "3.40":
                return self.answer(301, b"", {"Location": "/v1/portforward"})
            if path not in served:
                # handlerv1.go, after the auth middleware: the path without "/v1".
                return self.error(400, f"GET {path.removeprefix('/v1')} not found")
            if control.get("mode") == "garbage":
                return self.answer(200, b"<html>not json</html>")
            if version == "main":
                body = {"port": ports[0] if ports else 0, "ports": ports if ports else None}
            elif len(ports) > 1:
                body = {"ports": ports}
            else:
                body = {"port": ports[0] if ports else 0}
            self.answer(200, (json.dumps(body) + "\n").encode())

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    log.write(json.dumps({"ready": True}) + "\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
