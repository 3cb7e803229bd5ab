"""bench/run --only connectable: how soon after a VPN reconnect peers can reach qBittorrent, and
trackers hear of its new port. Root only: everything runs in network namespaces made here.

The lab: the client (wg0 = 10.2.0.2/32 as wg-quick lays it out, portsync and a real
qbittorrent-nox bound to wg0, one torrent), the gateway (the test NAT-PMP gateway, forwarding each
mapping from its public address 198.51.100.7 to the client as a DNAT in its own namespace) and the
"internet" behind it (198.51.100.10: the test tracker, and a peer that dials the public address).
Each reconnect is wg-quick down and up, command by command (the rules, the link; then the link,
its /32, up, the routes and rules last), and the gateway gives the new mapping a new port.

From the moment the route appears (the kernel's RTM_NEWRULE for table 51820, stamped by a thread
blocked on netlink in the client namespace) to (a) the peer's first completed TCP handshake with
198.51.100.7 on the new port (it dials every 5 ms from before the reconnect, each attempt given
up after 1 s) and (b) the tracker's first announce with the new port. Each reconnect's stages
come from the gateway's log and portsync's --trace (millisecond stamps). libtorrent sends a
forced announce at the next whole second of its clock (`force_tracker_request`: the time
truncated to seconds, plus one), so (b) holds a wait of 0 to 1 s that no sink can shorten; the
reconnects are spaced 1 to 2 s apart at random (seeded) so that this wait is sampled evenly."""
import json
import os
import random
import statistics
import subprocess
import time

import qbtlab

PUBLIC_ADDRESS = "198.51.100.7"
INTERNET_ADDRESS = "198.51.100.10"
TRACKER_PORT = 6969
FIXTURES = os.path.join(qbtlab.ROOT, "Tests", "Fixtures")


class Lab(qbtlab.NetworkLab):
    """qbtlab's client and gateway namespaces, with an internet namespace behind the gateway and
    the gateway forwarding; this process moves into the client namespace (`enter_client`)."""

    def __init__(self):
        super().__init__()
        self.internet = self.client.replace("psync-bc", "psync-bi")
        self.controls = {"mode": "normal", "forward": True, "change_port": 0}
        try:
            self._ip("netns", "add", self.internet)
            self._ip("-n", self.internet, "link", "set", "lo", "up")
            self._ip("link", "add", "inet0", "netns", self.gateway, "type", "veth", "peer", "name", "inet1", "netns", self.internet)
            self._ip("-n", self.gateway, "addr", "add", "198.51.100.1/24", "dev", "inet0")
            self._ip("-n", self.gateway, "addr", "add", f"{PUBLIC_ADDRESS}/32", "dev", "inet0")
            self._ip("-n", self.gateway, "link", "set", "inet0", "up")
            self._ip("-n", self.internet, "addr", "add", f"{INTERNET_ADDRESS}/24", "dev", "inet1")
            self._ip("-n", self.internet, "link", "set", "inet1", "up")
            self._ip("-n", self.internet, "route", "add", "10.2.0.2/32", "via", "198.51.100.1")
            # wg0's /32 and `default dev wg0` ask for every address on the link: the gateway answers
            # for the internet's (proxy ARP) and forwards.
            for setting in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.proxy_arp=1"):
                self._ip("netns", "exec", self.gateway, "sysctl", "-q", "-w", setting)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _ip(*arguments):
        subprocess.run(["ip", *arguments], check=True, stdout=subprocess.DEVNULL)

    def _control(self):
        path = os.path.join(self.directory, "control.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.controls, f)
        os.rename(path + ".tmp", path)

    def start_gateway(self):
        self.gateway_log = os.path.join(self.directory, "gateway.log")
        self._control()
        self._start(self.gateway, "natpmp_gateway.py", "--address", "10.2.0.1", "--control",
                    os.path.join(self.directory, "control.json"), "--log", self.gateway_log, "--namespace", self.gateway)
        self._wait_for_file(self.gateway_log)

    def start_tracker(self):
        self.tracker_log = os.path.join(self.directory, "tracker.log")
        self._start(self.internet, "tracker.py", "--address", INTERNET_ADDRESS, "--port", str(TRACKER_PORT), "--log", self.tracker_log)
        self._wait_for_file(self.tracker_log)
        return f"http://{INTERNET_ADDRESS}:{TRACKER_PORT}/announce"

    def announces(self):
        with open(self.tracker_log) as f:
            return [json.loads(line) for line in f if '"port"' in line]

    def dial(self, port, within=10.0):
        """The peer, dialing the public address on `port` every 5 ms; its one line of JSON comes
        on its stdout once a handshake completed or `within` s passed."""
        return self._start(self.internet, "peer.py", "--to", PUBLIC_ADDRESS, "--port", str(port), "--every", "0.005",
                           "--patience", "1", "--within", str(within), "--hold", "0", output=subprocess.PIPE)

    def _start(self, namespace, script, *arguments, output=subprocess.DEVNULL):
        process = subprocess.Popen(["ip", "netns", "exec", namespace, "python3", os.path.join(FIXTURES, script), *arguments],
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.DEVNULL, text=True)
        self.children.append(process)
        return process

    @staticmethod
    def _wait_for_file(path):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not os.path.exists(path):
            time.sleep(0.02)
        if not os.path.exists(path):
            raise RuntimeError(f"{path} did not appear")

    def reconnect(self, route_delay):
        """wg-quick down, then up, as wireguard-tools' wg-quick runs them (`Address = 10.2.0.2/32`,
        `AllowedIPs = 0.0.0.0/0`), the gateway told meanwhile to give the next mapping a new port.
        `route_delay`: between link-up and the routes (set_dns, a slow machine). Returns when the
        old link was gone. The first run turns qbtlab's point-to-point tunnel into a wg-quick one."""
        for rule in (["table", "51820"], ["table", "main", "suppress_prefixlength", "0"]):
            subprocess.run(["ip", "-n", self.client, "-4", "rule", "delete", *rule], stderr=subprocess.DEVNULL)
        self._ip("-n", self.client, "link", "del", "wg0")
        gone = time.time()
        self.controls["change_port"] += 1
        self._control()
        self._ip("link", "add", "wg0", "netns", self.client, "type", "veth", "peer", "name", "gw0", "netns", self.gateway)
        self._ip("-n", self.gateway, "link", "set", "gw0", "up")
        # The kernel delays a proxy ARP answer by up to 0.8 s; WireGuard has no ARP at all.
        self._ip("netns", "exec", self.gateway, "sysctl", "-q", "-w", "net.ipv4.neigh.gw0.proxy_delay=0")
        self._ip("-n", self.gateway, "addr", "add", "10.2.0.1", "peer", "10.2.0.2/32", "dev", "gw0")
        self._ip("-n", self.client, "-4", "address", "add", "10.2.0.2/32", "dev", "wg0")
        self._ip("-n", self.client, "link", "set", "mtu", "1420", "up", "dev", "wg0")
        time.sleep(route_delay)
        self._ip("-n", self.client, "-4", "route", "add", "0.0.0.0/0", "dev", "wg0", "table", "51820")
        self._ip("-n", self.client, "-4", "rule", "add", "not", "fwmark", "51820", "table", "51820")
        self._ip("-n", self.client, "-4", "rule", "add", "table", "main", "suppress_prefixlength", "0")
        return gone

    def close(self):
        super().close()
        subprocess.run(["ip", "netns", "del", self.internet], stderr=subprocess.DEVNULL)


def first_line(lines, text, after, also=""):
    """The wall-clock time of the first of `lines` (the daemon's, from index `after`) holding
    `text` (and `also`)."""
    return next((qbtlab.log_time(line) for _, line in lines[after:] if text in line and also in line), None)


def reconnects(binary, count=20, route_delay=0.3):
    """Route -> connectable and route -> tracker told, in ms, over `count` reconnects; with each
    reconnect's stages and what was missed."""
    lab = Lab()
    qbittorrent = daemon = rules = None
    result = {"connectable_ms": [], "announced_ms": [], "libtorrent_ms": [], "stages": [], "missed": []}
    try:
        lab.start_gateway()
        announce_url = lab.start_tracker()
        lab.reconnect(0)
        lab.enter_client()
        rules = qbtlab.RuleWatcher()
        qbittorrent = qbtlab.QBittorrent(interface="wg0")
        qbittorrent.add_torrent(announce_url)
        daemon = qbtlab.Portsync(binary, qbittorrent, {"PORTSYNC_SOURCE_STRATEGY": "natpmp", "PORTSYNC_NATPMP_INTERFACE": "wg0"},
                                 arguments=["--trace"], follow=True)
        if daemon.wait_for_line("listen_port 40000 applied and verified") is None:
            raise RuntimeError("no mapping applied:\n" + daemon.log()[-4000:])
        deadline = time.monotonic() + 20
        while not any(a["port"] == 40000 for a in lab.announces()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)
        spacing = random.Random(25)
        for index in range(count):
            port = max(r["external"] for r in lab.gateway_requests() if "external" in r) + 1
            lines, announced, requests, seen = len(daemon.lines), len(lab.announces()), len(lab.gateway_requests()), len(rules.times)
            peer = lab.dial(port)
            gone = lab.reconnect(route_delay)
            outcome = json.loads(peer.stdout.readline() or "{}")
            peer.wait()
            heard = None
            deadline = time.monotonic() + 10
            while heard is None and time.monotonic() < deadline:
                heard = next((a["time"] for a in lab.announces()[announced:] if a["port"] == port), None)
                time.sleep(0.002)
            if len(rules.times) <= seen:
                result["missed"].append(f"reconnect {index}: no rule seen")
                continue
            route = rules.times[seen]
            granted = next((r["t"] for r in lab.gateway_requests()[requests:] if r.get("external") == port and r["op"] == "tcp"), None)
            if granted is None:
                result["missed"].append(f"reconnect {index}: the gateway did not grant port {port}, the one the peer dialed")
                continue
            asked = next((r["t"] for r in lab.gateway_requests()[requests:] if r["t"] > gone), None)
            with daemon.arrived:
                trace = list(daemon.lines)
            stage = {"request": asked, "granted": granted,
                     "answer read": first_line(trace, "← TCP mapping: success, internal", lines, also=f"external {port},"),
                     "verified": first_line(trace, f"listen_port {port} applied and verified", lines),
                     "connected": outcome.get("connected"),
                     "reannounce": first_line(trace, "→ POST /api/v2/torrents/reannounce", lines), "announced": heard}
            result["stages"].append({name: (value - route) * 1000 if value else None for name, value in stage.items()})
            if heard and stage["reannounce"]:
                result["libtorrent_ms"].append((heard - stage["reannounce"]) * 1000)
            if outcome.get("connected"):
                result["connectable_ms"].append((outcome["connected"] - route) * 1000)
            else:
                result["missed"].append(f"reconnect {index}: no handshake on port {port} ({outcome.get('failures')})")
            if heard:
                result["announced_ms"].append((heard - route) * 1000)
            else:
                result["missed"].append(f"reconnect {index}: the tracker did not hear port {port} within 10 s")
            time.sleep(1 + spacing.random())
        return result
    finally:
        if rules:
            rules.close()
        if daemon:
            daemon.stop()
        if qbittorrent:
            qbittorrent.stop()
        lab.close()


def rows(binary, count=20, route_delay=0.3):
    """bench/run's rows for this scenario."""
    result = reconnects(binary, count, route_delay)
    summary = lambda values: (f"median {statistics.median(values):.0f} ms, max {max(values):.0f} ms ({len(values)} of {count})"
                              if values else "no data")
    table = [(f"wg-quick reconnect (routes {route_delay * 1000:.0f} ms after link-up): route -> an outside peer's handshake "
              "with the public address:new port", summary(result["connectable_ms"])),
             ("  route -> the tracker hears the new port", summary(result["announced_ms"]))]
    for name in ("request", "granted", "answer read", "verified", "connected", "reannounce", "announced"):
        values = [stage[name] for stage in result["stages"] if stage[name] is not None]
        table.append((f"  stage: route -> {name}", summary(values)))
    table.append(("  of which libtorrent: reannounce -> the tracker hears it", summary(result["libtorrent_ms"])))
    table.append(("  missed", "; ".join(result["missed"]) or "none"))
    return table
