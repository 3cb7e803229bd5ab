#!/usr/bin/env python3
"""A NAT-PMP gateway (RFC 6886) for portsync's tests, meant to run inside a network namespace
the test created. It behaves like ProtonVPN's: one external port per client and internal port
(UDP and TCP alike), the suggested port ignored, lifetime capped at 60 s, internal port 0
accepted. Faults are switched by a JSON control file, read on every request:

  {"mode": "normal" | "blackhole" | "garbage" | "short" | "wrong-opcode" | "error" | "delay",
   "error": 2, "strict": false, "port_base": 40000, "change_port": 0, "reset_epoch": 0,
   "delay_seconds": 1.0, "epoch_offset": 0, "answer_versions": false, "forward": false}

"delay" answers normally, but only after "delay_seconds". "wrong-opcode" answers a mapping
request with an external-address reply (the client asks for UDP and TCP together, so a reply for
the other protocol would be a right answer).

"strict" refuses internal port 0 with result 2, like miniupnpd. Raising "change_port" or
"reset_epoch" (a counter) gives every mapping a new port, or restarts the epoch and forgets
every mapping. "epoch_offset" (seconds) is added to the epoch: a test whose client runs on a
clock of its own moves the gateway's time along with it. "answer_versions" answers a request of another version
(PCP's 2) with Unsupported Version, as RFC 6886 says a NAT-PMP gateway must; without it such a
request is ignored. Every request is logged as one JSON line.

"forward" makes the gateway really forward, as ProtonVPN's does: each granted mapping becomes a
DNAT in this namespace's own nftables (table `ip portsync_lab`), from the public address (what
opcode 0 answers, 198.51.100.7, which NetworkLab puts on the gateway's link to its "internet"
namespace) and the external port to the same port on the client that asked (ProtonVPN's
internal port is only the mapping's key: the client listens on the external port). The DNAT is
made before the grant is answered, and removed when the mapping is deleted, when its lifetime
runs out unrenewed, and when "change_port", "reset_epoch" or "forward": false forgets it; each
removal is logged as a line of its own ({"unforwarded": [...], "why": ...}, no "op"). It needs
`--namespace`, the name of the namespace it runs in, and refuses to touch nftables anywhere else."""
import argparse
import ctypes
import json
import os
import select
import socket
import struct
import time

PUBLIC_ADDRESS = (198, 51, 100, 7)


class Forwarder:
    """The DNAT of the granted mappings, kept in one nftables table of this namespace through
    libnftables (a fraction of a millisecond a change, where a run of nft takes several), each
    change one transaction that writes the whole table anew."""

    def __init__(self, namespace):
        self.error = None
        # (protocol, external port) -> {"to": client address, "internal": its port (the key), "expires": monotonic time}
        self.forwards = {}
        here = os.stat("/proc/self/ns/net")
        try:
            named = os.stat(f"/run/netns/{namespace}") if namespace else None
        except OSError:
            named = None
        if named is None or (named.st_dev, named.st_ino) != (here.st_dev, here.st_ino):
            self.error = f"not inside the network namespace {namespace!r}: nftables left alone"
            return
        self.nft = ctypes.CDLL("libnftables.so.1")
        self.nft.nft_ctx_new.restype = ctypes.c_void_p
        self.nft.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        self.nft.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        self.nft.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        self.nft.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.context = self.nft.nft_ctx_new(0)
        self.nft.nft_ctx_buffer_error(self.context)

    def grant(self, protocol, external, client, internal, lifetime):
        """Forwards `external` to `client` for `lifetime` s; False if it could not."""
        if self.error:
            return False
        key = (protocol, external)
        known = self.forwards.get(key)
        self.forwards[key] = {"to": client, "internal": internal, "expires": time.monotonic() + lifetime}
        if known is None or known["to"] != client:
            self._apply()
        return self.error is None

    def delete(self, protocol, client, internal, log):
        """The client deleted its mapping of `internal` for `protocol`."""
        self.remove([key for key, value in self.forwards.items()
                     if key[0] == protocol and (value["to"], value["internal"]) == (client, internal)], "deleted", log)

    def remove(self, keys, why, log):
        gone = [key for key in keys if self.forwards.pop(key, None) is not None]
        if gone:
            self._apply()
            log.write(json.dumps({"t": time.time(), "unforwarded": [f"{p} {port}" for p, port in gone], "why": why}) + "\n")

    def forget(self, why, log):
        self.remove(list(self.forwards), why, log)

    def expire(self, log):
        now = time.monotonic()
        self.remove([key for key, value in self.forwards.items() if value["expires"] <= now], "expired", log)

    def timeout(self):
        """Seconds until the next forward runs out, None with none."""
        if not self.forwards:
            return None
        return max(0.0, min(value["expires"] for value in self.forwards.values()) - time.monotonic())

    def _apply(self):
        public = ".".join(map(str, PUBLIC_ADDRESS))
        commands = ["add table ip portsync_lab", "delete table ip portsync_lab", "add table ip portsync_lab",
                    "add chain ip portsync_lab prerouting { type nat hook prerouting priority dstnat; }"]
        commands += [f"add rule ip portsync_lab prerouting ip daddr {public} {protocol} dport {port} dnat to {value['to']}"
                     for (protocol, port), value in sorted(self.forwards.items())]
        if self.nft.nft_run_cmd_from_buffer(self.context, "\n".join(commands).encode()) != 0:
            self.error = "nftables: " + self.nft.nft_ctx_get_error_buffer(self.context).decode(errors="replace").strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--namespace", help="the network namespace it runs in: the only one whose nftables it may change")
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.address, 5351))
    started = time.monotonic() - 1000  # an epoch that has run a while
    mappings = {}
    next_port = None
    seen = {"change_port": 0, "reset_epoch": 0}
    log = open(args.log, "a", buffering=1)
    log.write(json.dumps({"ready": True}) + "\n")
    forwarder = None

    while True:
        if forwarder and not select.select([sock], [], [], forwarder.timeout())[0]:
            forwarder.expire(log)
            continue
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
        if control.get("forward") and forwarder is None:
            forwarder = Forwarder(args.namespace)
        elif forwarder and not control.get("forward"):
            forwarder.forget("forwarding off", log)
            forwarder = None
        if forwarder:
            forwarder.expire(log)
        if control.get("reset_epoch", 0) != seen["reset_epoch"]:
            seen["reset_epoch"] = control.get("reset_epoch", 0)
            started = time.monotonic()
            mappings.clear()
            if forwarder:
                forwarder.forget("epoch reset", log)
        if control.get("change_port", 0) != seen["change_port"]:
            seen["change_port"] = control.get("change_port", 0)
            mappings.clear()
            if forwarder:
                forwarder.forget("new ports", log)
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
                reply(struct.pack("!BBHI4B", 0, 128, 0, epoch, *PUBLIC_ADDRESS))
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
                reply(struct.pack("!BBHI4B", 0, 128, 0, epoch, *PUBLIC_ADDRESS))
            elif mode == "error":
                reply(struct.pack("!BBHIHHI", 0, 128 + op, control.get("error", 2), epoch, internal, 0, 0))
            elif control.get("strict") and internal == 0 and lifetime != 0:
                reply(struct.pack("!BBHIHHI", 0, 128 + op, 2, epoch, internal, 0, 0))
            elif lifetime == 0:
                mappings.pop((peer[0], internal), None)
                if forwarder:
                    forwarder.delete(entry["op"], peer[0], internal, log)
                reply(struct.pack("!BBHIHHI", 0, 128 + op, 0, epoch, internal, 0, 0))
                entry["deleted"] = True
            else:
                key = (peer[0], internal)
                if key not in mappings:
                    mappings[key] = next_port
                    next_port += 1
                external = mappings[key]
                granted = min(lifetime, 60)
                if forwarder:
                    entry["forwarded"] = forwarder.grant(entry["op"], external, peer[0], internal, granted)
                    if forwarder.error:
                        entry["forward_error"] = forwarder.error
                reply(struct.pack("!BBHIHHI", 0, 128 + op, 0, epoch, internal, external, granted))
                entry.update(external=external, granted=granted, epoch=epoch)
        else:
            entry["ignored"] = "unknown request"
            reply(struct.pack("!BBHI", 0, 128 + (data[1] & 127), 5, epoch) + b"\0" * 8)
        log.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    main()
