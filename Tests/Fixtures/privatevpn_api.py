#!/usr/bin/env python3
"""A stand-in for PrivateVPN's port API (GET /v3/Api/port?ip[]=<address>) for portsync's tests,
over HTTPS with the test's certificate, on the address it is given (inside the lab's namespace).
What it answers for each address is read from the control file at every request: {"answers":
{"10.96.3.37": {"status": 200, "body": "..."}}}; an address it has no answer for gets 404.
Each request is logged as a JSON line (path, Host, the peer's address, the address asked about);
"ready" once it listens."""
import argparse
import json
import ssl
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    def log(entry):
        with open(args.log, "a") as file:
            file.write(json.dumps(entry) + "\n")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            asked = urllib.parse.parse_qs(url.query).get("ip[]", [""])[0]
            log({"path": self.path, "host": self.headers.get("Host"), "peer": self.client_address[0], "ip": asked})
            with open(args.control) as file:
                answers = json.load(file).get("answers", {})
            answer = answers.get(asked, {"status": 404, "body": "no such address"}) if url.path == "/v3/Api/port" \
                else {"status": 404, "body": "not found"}
            body = answer["body"].encode()
            self.send_response(answer["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer((args.address, args.port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    log({"ready": True})
    server.serve_forever()


if __name__ == "__main__":
    main()
