"""The sources that talk through the tunnel (PCP, PIA, PrivateVPN), each measured from the moment
the tunnel's route appears to the first port verified in qBittorrent. The lab is qbtlab's client
and gateway namespaces with a wg-quick tunnel (wg0 = 10.2.0.2, routes 0.3 s after link-up), and
in the gateway namespace only: Debian's miniupnpd (locked down as Tests/TestSupport/MiniUPnPd.swift
runs it), the tests' PIA stand-in (Tests/Fixtures/pia_server.py: the API on 10.2.0.1:19999, the
token endpoint on 198.51.100.10:443), the tests' PrivateVPN stand-in (Tests/Fixtures/privatevpn_api.py
on 203.0.113.80:443) and a dnsmasq on 10.0.0.243 that answers their two names and nothing else,
which portsync asks through the tunnel. Nothing leaves the namespaces; every process is started
and stopped by its PID, and the namespaces go with the lab (qbtlab.NetworkLab.close)."""
import json
import os
import subprocess
import tempfile
import time

import qbtlab

FIXTURES = os.path.join(qbtlab.ROOT, "Tests", "Fixtures")
TOKEN_HOST = "www.privateinternetaccess.com"
PRIVATEVPN_HOST = "connect.pvdatanet.com"
PIA_PASSWORD = "bench pia password"


def openssl(*arguments):
    subprocess.run(["openssl", *arguments], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def certificates(directory):
    """A CA, the PIA API's certificate (CN=amsterdam401 and no subject alt name, as PIA's) and a
    certificate for the two names (the token endpoint and PrivateVPN's API)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    path = lambda name: os.path.join(directory, name)
    openssl("req", "-x509", *ec, "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2", "-subj", "/CN=bench CA")
    for name, subject, names in [("api", "/CN=amsterdam401", None),
                                 ("names", "/CN=bench", f"DNS:{TOKEN_HOST},DNS:{PRIVATEVPN_HOST}")]:
        openssl("req", *ec, "-keyout", path(f"{name}.key"), "-out", path(f"{name}.csr"), "-subj", subject)
        extensions = []
        if names:
            with open(path(f"{name}.ext"), "w") as f:
                f.write(f"subjectAltName={names}\n")
            extensions = ["-extfile", path(f"{name}.ext")]
        openssl("x509", "-req", "-in", path(f"{name}.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                "-CAcreateserial", "-days", "2", *extensions, "-out", path(f"{name}.pem"))


def wait_for(condition, seconds=10, what="a stand-in"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not start")


def contains(path, text):
    try:
        with open(path) as f:
            return text in f.read()
    except OSError:
        return False


class Gateway:
    """The stand-ins in the lab's gateway namespace, each a child of the lab (stopped by PID)."""

    def __init__(self, lab):
        self.lab = lab
        self.directory = lab.directory
        path = lambda name: os.path.join(self.directory, name)
        self.path = path
        ip = lambda *a: subprocess.run(["ip", "-n", lab.gateway, *a], check=True)
        for address in ("10.0.0.243", "198.51.100.10", "203.0.113.80"):
            ip("addr", "add", f"{address}/32", "dev", "lo")
        certificates(self.directory)
        self.start(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                    "--listen-address=10.0.0.243", "--bind-interfaces", "--port=53", f"--pid-file={path('dnsmasq.pid')}",
                    f"--log-facility={path('dnsmasq.log')}", "--log-queries",
                    f"--address=/{TOKEN_HOST}/198.51.100.10", f"--address=/{PRIVATEVPN_HOST}/203.0.113.80"])
        wait_for(lambda: contains(path("dnsmasq.log"), "started"), what="dnsmasq")
        self.pia_control({"username": "p1234567", "password": PIA_PASSWORD, "ports": list(range(47000, 47100)),
                          "expires_in": 60 * 86_400, "busy": [], "expired": [], "hang_binds": 0})
        for role, address, port, certificate in [("api", "10.2.0.1", 19999, "api"), ("token", "198.51.100.10", 443, "names")]:
            self.start(["python3", os.path.join(FIXTURES, "pia_server.py"), "--role", role, "--address", address, "--port", str(port),
                        "--cert", path(f"{certificate}.pem"), "--key", path(f"{certificate}.key"), "--control", path("pia-control.json"),
                        "--state", path("pia-state.json"), "--log", path("pia.log")])
        wait_for(lambda: open(path("pia.log")).read().count('"ready"') == 2 if os.path.exists(path("pia.log")) else False,
                 what="the PIA stand-in")
        self.privatevpn_port(61000)
        self.start(["python3", os.path.join(FIXTURES, "privatevpn_api.py"), "--address", "203.0.113.80", "--cert", path("names.pem"),
                    "--key", path("names.key"), "--control", path("privatevpn-control.json"), "--log", path("privatevpn.log")])
        wait_for(lambda: contains(path("privatevpn.log"), '"ready"'), what="the PrivateVPN stand-in")
        self.start_miniupnpd()

    def start(self, command):
        process = subprocess.Popen(["ip", "netns", "exec", self.lab.gateway, *command], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.lab.children.append(process)
        return process

    def write_json(self, name, value):
        with open(self.path(name + ".tmp"), "w") as f:
            json.dump(value, f)
        os.rename(self.path(name + ".tmp"), self.path(name))

    def pia_control(self, values):
        self.write_json("pia-control.json", values)

    def privatevpn_port(self, port):
        """What the PrivateVPN stand-in answers for 10.2.0.2 from now on."""
        body = json.dumps({"supported": True, "status": f"Port {port} UDP/TCP"})
        self.write_json("privatevpn-control.json", {"answers": {"10.2.0.2": {"status": 200, "body": body}}})

    def start_miniupnpd(self):
        """miniupnpd with no UPnP IGD, no IPv6, PCP and NAT-PMP on 10.2.0.1 only, mappings for
        10.2.0.2 alone; its external side a veth pair inside the gateway namespace, its nftables
        table made there first."""
        ip = lambda *a: subprocess.run(["ip", "-n", self.lab.gateway, *a], check=True)
        ip("link", "add", "ext0", "type", "veth", "peer", "name", "ext1")
        ip("addr", "add", "5.5.5.1/24", "dev", "ext0")
        ip("link", "set", "ext0", "up")
        ip("link", "set", "ext1", "up")
        with open(self.path("miniupnpd.nft"), "w") as f:
            f.write("table inet filter {\n"
                    "  chain forward { type filter hook forward priority 0; policy drop; jump miniupnpd; }\n"
                    "  chain miniupnpd { }\n"
                    "  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }\n"
                    "  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }\n"
                    "  chain prerouting_miniupnpd { }\n  chain postrouting_miniupnpd { }\n}\n")
        subprocess.run(["ip", "netns", "exec", self.lab.gateway, "nft", "-f", self.path("miniupnpd.nft")], check=True)
        with open(self.path("miniupnpd.conf"), "w") as f:
            f.write("ext_ifname=ext0\nlistening_ip=10.2.0.1/24\nipv6_disable=yes\nenable_upnp=no\nenable_natpmp=yes\n"
                    "secure_mode=yes\nsystem_uptime=no\nmin_lifetime=120\nmax_lifetime=86400\n"
                    f"lease_file={self.path('miniupnpd.leases')}\nuuid=00000000-0000-4000-8000-000000000001\n"
                    "allow 1024-65535 10.2.0.2/32 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n")
        output = open(self.path("miniupnpd.out"), "w")
        process = subprocess.Popen(["ip", "netns", "exec", self.lab.gateway, "/usr/sbin/miniupnpd", "-d", "-f", self.path("miniupnpd.conf"),
                                    "-P", self.path("miniupnpd.pid")], stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        self.lab.children.append(process)
        wait_for(lambda: contains(self.path("miniupnpd.out"), "Listening for NAT-PMP/PCP traffic"), what="miniupnpd")

    def dns_queries(self):
        with open(self.path("dnsmasq.log")) as f:
            return [line[line.index("query["):].strip() for line in f if "query[" in line]


def route_to_verified(binary, qbittorrent, lab, rules, environment, home=None):
    """One run: qBittorrent moved off the port to come, the tunnel taken down (wg-quick down),
    portsync started and given a second to log in, the tunnel brought up with its route 0.3 s
    after the link; from the rule that completes the route (as the kernel announced it) to
    portsync's "applied and verified" line (as it came through the pipe), in ms, or None."""
    qbittorrent.set_preferences({"listen_port": qbtlab.free_port()})
    lab.wg_quick_down()
    daemon = qbtlab.Portsync(binary, qbittorrent, environment, home=home, follow=True)
    try:
        time.sleep(1.0)
        seen = len(rules.perf_times)
        lab.wg_quick_up(0.3)
        verified = daemon.wait_for_line("applied and verified", seconds=15)
        deadline = time.monotonic() + 2
        while len(rules.perf_times) == seen and time.monotonic() < deadline:
            time.sleep(0.005)
        if verified is None or len(rules.perf_times) == seen:
            print(f"  no verified port after the route:\n{daemon.log()[-2000:]}", flush=True)
            return None
        return (verified - rules.perf_times[seen]) * 1000
    finally:
        daemon.stop()


def tunnel_sources(binary, runs=10):
    """Root only: PCP, PIA (a first run: token, getSignature, bindPort; a run with the kept
    signature: bindPort alone) and PrivateVPN, `runs` times each."""
    lab = qbtlab.NetworkLab()
    qbittorrent = rules = None
    homes = []
    result = {"pcp_ms": [], "pia_ms": [], "pia_kept_ms": [], "privatevpn_ms": []}
    try:
        gateway = Gateway(lab)
        lab.enter_client()
        rules = qbtlab.RuleWatcher()
        qbittorrent = qbtlab.QBittorrent()
        password = os.path.join(lab.directory, "pia-password")
        with open(os.open(password, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(PIA_PASSWORD)
        pcp = {"PORTSYNC_SOURCE_STRATEGY": "pcp", "PORTSYNC_PCP_INTERFACE": "wg0"}
        pia = {"PORTSYNC_SOURCE_STRATEGY": "pia", "PORTSYNC_PIA_INTERFACE": "wg0", "PORTSYNC_PIA_USERNAME": "p1234567",
               "PORTSYNC_PIA_PASSWORD_FILE": password, "PORTSYNC_PIA_SERVER_NAME": "amsterdam401",
               "PORTSYNC_PIA_SERVER_ADDRESS": "10.2.0.1", "PORTSYNC_PIA_CA_FILE": gateway.path("ca.pem")}
        privatevpn = {"PORTSYNC_SOURCE_STRATEGY": "privatevpn", "PORTSYNC_PRIVATEVPN_INTERFACE": "wg0",
                      "PORTSYNC_PRIVATEVPN_CA_FILE": gateway.path("ca.pem"), "PORTSYNC_PRIVATEVPN_NAMESERVER": '["10.0.0.243"]'}
        for index in range(runs):
            value = route_to_verified(binary, qbittorrent, lab, rules, {**pcp, "PORTSYNC_PCP_INTERNAL_PORT": str(42000 + index)})
            if value is not None:
                result["pcp_ms"].append(value)
            home = tempfile.mkdtemp(prefix="portsync-bench-pia-")
            homes.append(home)
            for key in ("pia_ms", "pia_kept_ms"):
                value = route_to_verified(binary, qbittorrent, lab, rules, pia, home=home)
                if value is not None:
                    result[key].append(value)
            gateway.privatevpn_port(61000 + index)
            value = route_to_verified(binary, qbittorrent, lab, rules, privatevpn)
            if value is not None:
                result["privatevpn_ms"].append(value)
        queries = gateway.dns_queries()
        result["dns_queries"] = len(queries)
        result["dns_from_tunnel"] = all(query.endswith("from 10.2.0.2") for query in queries)
        return result
    finally:
        if rules:
            rules.close()
        if qbittorrent:
            qbittorrent.stop()
        for home in homes:
            subprocess.run(["rm", "-rf", home])
        lab.close()
