#!/usr/bin/env python3
"""A stand-in for Gluetun's HTTP control server (protocols.md §4), for portsync's tests, on
127.0.0.1 only. A JSON control file, read on every request, decides how it behaves:

  {"version": "3.40" | "3.41" | "main", "ports": [40000], "auth": "none" | "apikey" | "basic",
   "apikey": "...", "username": "...", "password": "...", "mode": "normal" | "garbage" | "hang"}

3.40 serves /v1/openvpn/portforwarded only; 3.41 adds /v1/portforward and answers the old
route with 301; "main" answers {"port":N,"ports":[...]} (port 0 and ports null when none).
Answers are text/plain, as Gluetun sends them. Each request is logged as one JSON line."""
import argparse
import base64
import http.server
import json
import time


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

        def do_GET(self):
            try:
                with open(args.control) as f:
                    control = json.load(f)
            except (OSError, ValueError):
                control = {}
            path, _, query = self.path.partition("?")
            entry = {"t": time.time(), "path": path, "api_key": self.headers.get("X-API-Key") is not None,
                     "basic": (self.headers.get("Authorization") or "").startswith("Basic ")}
            auth = control.get("auth", "none")
            allowed = auth == "none"
            if auth == "apikey":
                allowed = self.headers.get("X-API-Key") == control.get("apikey") or f"api_key={control.get('apikey')}" in query
            elif auth == "basic":
                expected = base64.b64encode(f"{control.get('username')}:{control.get('password')}".encode()).decode()
                allowed = self.headers.get("Authorization") == f"Basic {expected}"
            entry["allowed"] = allowed
            log.write(json.dumps(entry) + "\n")
            if control.get("mode") == "hang":
                time.sleep(30)
                return
            if not allowed:
                return self.answer(401, b"Unauthorized\n")
            version = control.get("version", "3.41")
            ports = control.get("ports", [])
            if path == "/v1/openvpn/portforwarded" and version == "3.41":
                return self.answer(301, b"", {"Location": "/v1/portforward"})
            known = {"3.40": ["/v1/openvpn/portforwarded"], "3.41": ["/v1/portforward"],
                     "main": ["/v1/portforward"]}.get(version, [])
            if path not in known:
                return self.answer(404, b"404 page not found\n")
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
