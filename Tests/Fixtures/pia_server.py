#!/usr/bin/env python3
"""A stand-in for PIA's port forwarding, in the shapes pia-foss/manual-connections and Gluetun
replay: run with --role token (POST /api/client/v2/token, form username and password, answering
{"token": ...}) or --role api (GET /getSignature?token=..., answering
{"status":"OK","payload":base64 JSON with port and expires_at,"signature":...}, and
GET /bindPort?payload=...&signature=..., answering {"status":"OK","message":"port scheduled for add"}
or 409 "port N is busy."). HTTPS only, with the certificate the test gives; the two roles share one
state file (tokens issued, payloads signed) and read a control file at every request:

  username, password        the account the token endpoint accepts
  ports                     the ports getSignature hands out, in turn (the last one repeats)
  expires_in                seconds from now to each new payload's expires_at
  busy                      ports bindPort answers 409 for
  expired                   payloads (by port) bindPort answers as expired
  hang_binds                this many binds are accepted and never answered

Every request is logged as a JSON line: path, the names of the query or form fields (never
their values), Host, SNI, and what was answered. Secrets never reach the log.
"""
import argparse
import base64
import datetime
import http.server
import json
import os
import secrets
import ssl
import threading
import time
import urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument("--role", choices=["token", "api"], required=True)
parser.add_argument("--address", required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--cert", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--control", required=True)
parser.add_argument("--state", required=True)
parser.add_argument("--log", required=True)
options = parser.parse_args()
lock = threading.Lock()
sni = threading.local()


def control():
    with open(options.control) as file:
        return json.load(file)


def load_state():
    try:
        with open(options.state) as file:
            return json.load(file)
    except FileNotFoundError:
        return {"tokens": [], "signed": {}, "handed": 0}


def save_state(state):
    with open(options.state + ".tmp", "w") as file:
        json.dump(state, file)
    os.rename(options.state + ".tmp", options.state)


def log(entry):
    with open(options.log, "a") as file:
        file.write(json.dumps(entry) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, entry):
        data = json.dumps(body).encode()
        entry["status"] = status
        log(entry)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def entry(self, fields):
        return {"role": options.role, "method": self.command, "path": urllib.parse.urlsplit(self.path).path,
                "fields": sorted(fields.keys()), "host": self.headers.get("Host"),
                "sni": getattr(self.connection, "pia_sni", None), "from": self.client_address[0]}

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        fields = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
        entry = self.entry(fields)
        if options.role != "token" or entry["path"] != "/api/client/v2/token":
            return self.answer(404, {"message": "not found"}, entry)
        wanted = control()
        if fields.get("username") != wanted["username"] or fields.get("password") != wanted["password"]:
            entry["refused"] = True
            return self.answer(401, {"message": "Unauthorized"}, entry)
        token = secrets.token_hex(32)
        with lock:
            state = load_state()
            state["tokens"].append(token)
            save_state(state)
        self.answer(200, {"token": token}, entry)

    def do_GET(self):
        split = urllib.parse.urlsplit(self.path)
        fields = {k: v[0] for k, v in urllib.parse.parse_qs(split.query).items()}
        entry = self.entry(fields)
        hang = False
        if options.role != "api":
            return self.answer(404, {"message": "not found"}, entry)
        wanted = control()
        with lock:
            state = load_state()
            if entry["path"] == "/getSignature":
                if fields.get("token") not in state["tokens"]:
                    return self.answer(200, {"status": "ERROR", "message": "invalid token"}, entry)
                ports = wanted["ports"]
                port = ports[min(state["handed"], len(ports) - 1)]
                state["handed"] += 1
                expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=wanted["expires_in"])
                stamp = expires.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
                payload = base64.b64encode(json.dumps({"token": fields["token"], "port": port, "expires_at": stamp}).encode()).decode()
                signature = base64.b64encode(secrets.token_bytes(48)).decode()
                state["signed"][payload] = {"signature": signature, "port": port, "expires": expires.timestamp()}
                save_state(state)
                entry["port"] = port
                entry["payload_index"] = len(state["signed"]) - 1
                return self.answer(200, {"status": "OK", "payload": payload, "signature": signature}, entry)
            if entry["path"] == "/bindPort":
                signed = state["signed"].get(fields.get("payload", ""))
                if signed is None or signed["signature"] != fields.get("signature"):
                    return self.answer(400, {"status": "ERROR", "message": "invalid payload or signature"}, entry)
                entry["port"] = signed["port"]
                entry["payload_index"] = list(state["signed"]).index(fields["payload"])
                if state.get("hung", 0) < wanted.get("hang_binds", 0):
                    state["hung"] = state.get("hung", 0) + 1
                    save_state(state)
                    entry["hung"] = True
                    log(entry)
                    hang = True
                elif signed["port"] in wanted.get("busy", []):
                    return self.answer(409, {"status": "ERROR", "message": "port %d is busy. Try another one." % signed["port"]}, entry)
                elif signed["port"] in wanted.get("expired", []) or signed["expires"] < time.time():
                    return self.answer(400, {"status": "ERROR", "message": "payload expired"}, entry)
                else:
                    return self.answer(200, {"status": "OK", "message": "port scheduled for add"}, entry)
        if entry["path"] == "/bindPort" and hang:
            # Accepted and never answered, as a server whose tunnel went away mid-request.
            time.sleep(30)
            self.close_connection = True
            return
        self.answer(404, {"message": "not found"}, entry)


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(options.cert, options.key)


def remember_sni(connection, name, _):
    connection.pia_sni = name


context.sni_callback = remember_sni


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        sock, address = super().get_request()
        wrapped = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def finish_request(self, request, client_address):
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError) as error:
            log({"role": options.role, "tls_failed": str(error), "from": client_address[0]})
            return
        super().finish_request(request, client_address)


server = Server((options.address, options.port), Handler)
log({"ready": True})
server.serve_forever()
