#!/usr/bin/env python3
"""A NAT-PMP gateway (RFC 6886) for portsync's tests, meant to run inside a network namespace
the test created. It behaves like ProtonVPN's: one external port per client and internal port
(UDP and TCP alike), the suggested port ignored, lifetime capped at 60 s, internal port 0
accepted. Faults are switched by a JSON control file, read on every request:

  {"mode": "normal" | "blackhole" | "garbage" | "short" | "wrong-opcode" | "error" | "delay",
   "error": 2, "strict": false, "port_base": 40000, "change_port": 0, "reset_epoch": 0,
   "delay_seconds": 1.0, "epoch_offset": 0, "answer_versions": false}

"delay" answers normally, but only after "delay_seconds". "wrong-opcode" answers a mapping
request with an external-address reply (the client asks for UDP and TCP together, so a reply for
the other protocol would be a right answer).

"strict" refuses internal port 0 with result 2, like miniupnpd. Raising "change_port" or
"reset_epoch" (a counter) gives every mapping a new port, or restarts the epoch and forgets
every mapping. "epoch_offset" (seconds) is added to the epoch: a test whose client runs on a
clock of its own moves the gateway's time along with it. "answer_versions" answers a request of another version
(PCP's 2) with Unsupported Version, as RFC 6886 says a NAT-PMP gateway must; without it such a
request is ignored. Every request is logged as one JSON line."""
import argparse
import json
import os
import socket
import struct
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.address, 5351))
    started = time.monotonic() - 1000  # an epoch that has run a while
    mappings = {}
    next_port = None
    seen = {"change_port": 0, "reset_epoch": 0}
    log = open(args.log, "a", buffering=1)
    log.write(json.dumps({"ready": True}) + "\n")

    while True:
        data, peer = sock.recvfrom(2048)
        control = {}
        try:
            with open(args.control) as f:
                control = json.load(f)
        except (OSError, ValueError):
            pass
        mode = control.get("mode", "normal")
        base = control.get("port_base", 40000)
        if next_port is None:
            next_port = base
        if control.get("reset_epoch", 0) != seen["reset_epoch"]:
            seen["reset_epoch"] = control.get("reset_epoch", 0)
            started = time.monotonic()
            mappings.clear()
        if control.get("change_port", 0) != seen["change_port"]:
            seen["change_port"] = control.get("change_port", 0)
            mappings.clear()
        epoch = int(time.monotonic() - started) + control.get("epoch_offset", 0)
        entry = {"t": time.time(), "from": peer[0], "bytes": len(data), "mode": mode}

        def reply(payload, peer=peer, entry=entry):
            try:
                sock.sendto(payload, peer)
            except OSError as error:  # no way back (a router that only receives): noted, not fatal
                entry["reply_error"] = str(error)

        if mode == "delay":
            time.sleep(float(control.get("delay_seconds", 1.0)))
            entry["delayed"] = True
        if len(data) >= 2 and data[0] != 0 and control.get("answer_versions"):
            # RFC 6886 §3.5: any other version (a PCP request) gets the 8-byte Unsupported
            # Version answer, opcode 128 as erratum 3618 has it.
            entry.update(version=data[0], op="version")
            reply(struct.pack("!BBHI", 0, 128, 1, epoch))
        elif len(data) < 2 or data[0] != 0:
            entry["ignored"] = "bad version or size"
        elif data[1] == 0 and len(data) == 2:
            entry["op"] = "address"
            if mode in ("normal", "delay"):
                reply(struct.pack("!BBHI4B", 0, 128, 0, epoch, 198, 51, 100, 7))
        elif data[1] in (1, 2) and len(data) == 12:
            _, op, _, internal, suggested, lifetime = struct.unpack("!BBHHHI", data)
            entry.update(op="udp" if op == 1 else "tcp", internal=internal, suggested=suggested, lifetime=lifetime)
            if mode == "blackhole":
                entry["answered"] = False
            elif mode == "garbage":
                reply(os.urandom(16))
            elif mode == "short":
                reply(struct.pack("!BBHI", 0, 128 + op, 0, epoch))
            elif mode == "wrong-opcode":  # a well-formed answer to a question the client never asked
                reply(struct.pack("!BBHI4B", 0, 128, 0, epoch, 198, 51, 100, 7))
            elif mode == "error":
                reply(struct.pack("!BBHIHHI", 0, 128 + op, control.get("error", 2), epoch, internal, 0, 0))
            elif control.get("strict") and internal == 0 and lifetime != 0:
                reply(struct.pack("!BBHIHHI", 0, 128 + op, 2, epoch, internal, 0, 0))
            elif lifetime == 0:
                mappings.pop((peer[0], internal), None)
                reply(struct.pack("!BBHIHHI", 0, 128 + op, 0, epoch, internal, 0, 0))
                entry["deleted"] = True
            else:
                key = (peer[0], internal)
                if key not in mappings:
                    mappings[key] = next_port
                    next_port += 1
                external = mappings[key]
                granted = min(lifetime, 60)
                reply(struct.pack("!BBHIHHI", 0, 128 + op, 0, epoch, internal, external, granted))
                entry.update(external=external, granted=granted, epoch=epoch)
        else:
            entry["ignored"] = "unknown request"
            reply(struct.pack("!BBHI", 0, 128 + (data[1] & 127), 5, epoch) + b"\0" * 8)
        log.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    main()
