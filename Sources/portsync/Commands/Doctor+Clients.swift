import HTTP
import Reactor
import Sinks

// MARK: Transmission and Deluge

extension Doctor {
    /// One HTTP client per checked client, with the doctor's timeouts.
    static func client(_ loop: EventLoop, _ label: String, _ url: HTTPURL, _ tls: TLSOptions) -> HTTPClient {
        HTTPClient(loop: loop, name: "\(label).http", url: url, tls: tls, connectTimeout: .seconds(5), responseTimeout: .seconds(10))
    }

    /// Sends one request and runs the loop until its answer (or 20 s). A BitTorrent port given
    /// as the URL is said as such, as the daemon says it.
    static func call(_ request: HTTPRequest, _ client: HTTPClient, _ loop: EventLoop) -> Result<HTTPResponse, HTTPClientError> {
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(request, retryIfStale: true) { result = $0 }
        _ = try? loop.run(within: .seconds(20)) { result != nil }
        if case .failure(let error) = result, let diagnosis = BitTorrentPort.diagnosis(client.url, error) { return .failure(diagnosis) }
        return result ?? .failure(.timedOut)
    }

    /// Reachable, login, version, port: one `session-get` (twice with the 409's session id, the
    /// second time in the dialect the 409 names).
    func checkTransmission(_ settings: TransmissionSettings, _ loop: EventLoop, _ report: Report) {
        let client = settings.client
        let http = Self.client(loop, settings.label, client.url, client.tls)
        defer { http.close() }
        var dialect = TransmissionRPC.Dialect.legacy
        var id = 1
        var result = Self.call(TransmissionRPC.request(TransmissionRPC.probe(dialect, id: id), settings: client, sessionID: nil), http, loop)
        if case .success(let response) = result, response.status == 409 {
            let header = response.headers[TransmissionRPC.rpcVersionHeader]
            guard let spoken = TransmissionRPC.Dialect(rpcVersionHeader: header) else {
                return report.fail("Transmission: its 409 has \(TransmissionRPC.rpcVersionHeader) \"\((header ?? "").oneLine(limit: 40))\", which is not a version",
                                   "is \(client.url) Transmission's RPC?")
            }
            dialect = spoken
            id = 2
            let sessionID = response.headers[TransmissionRPC.sessionIDHeader]
            result = Self.call(TransmissionRPC.request(TransmissionRPC.probe(dialect, id: id), settings: client, sessionID: sessionID), http, loop)
        }
        let response: HTTPResponse
        switch result {
        case .failure(let error):
            return report.fail("Transmission: \(client.url) is unreachable: \(error)",
                               "start transmission-daemon, or set [\(settings.label)].url (its RPC address and port)")
        case .success(let answer):
            response = answer
        }
        report.pass("Transmission: \(client.url) answers")
        switch response.status {
        case 200:
            report.pass(client.password.map { "login: accepted \"\(client.username)\" (password from \($0.origin))" }
                ?? "login: no password configured, and Transmission asks for none")
        case 401:
            return report.fail("login: Transmission refused \"\(client.username)\" and its password (401)",
                               "fix [\(settings.label)].username and the password\(client.password.map { " (\($0.origin))" } ?? ""); Transmission locks its RPC after 100 failures")
        case 403:
            return report.fail("login: Transmission refuses this address (403 \(response.bodyExcerpt))", "add it to rpc-whitelist, or restart Transmission after a lock-out")
        default:
            return report.fail("Transmission: unexpected answer \(response.status) \(response.bodyExcerpt)", "is \(client.url) Transmission's RPC?")
        }
        guard case .success(.succeeded(let answer)) = TransmissionRPC.parse(response.body, dialect: dialect, id: id),
              let rpcVersion = answer.rpcVersion(dialect) else {
            return report.fail("version: the answer to \(dialect.name("session-get")) is not Transmission's", "is \(client.url) Transmission's RPC?")
        }
        report.pass("version: Transmission \(answer.value("version")?.string?.oneLine(limit: 40) ?? "?") (\(dialect.describe(rpcVersion: rpcVersion)))")
        let port = answer.value("peer-port")?.excerpt ?? "?"
        var notes: [String] = []
        if answer.value("peer-port-random-on-start")?.bool == true { notes.append("peer-port-random-on-start is on") }
        if answer.value("port-forwarding-enabled")?.bool == true { notes.append("port forwarding (UPnP/NAT-PMP) is on") }
        if notes.isEmpty {
            report.pass("settings: peer-port \(port), random port off, port forwarding off")
        } else {
            report.fail("settings: peer-port \(port); \(notes.joined(separator: ", "))", "portsync run turns these off when it applies the port")
        }
    }

    /// Reachable and login (`auth.login`), the daemon behind deluge-web, the port.
    func checkDeluge(_ settings: DelugeSettings, _ loop: EventLoop, _ report: Report) {
        let client = settings.client
        let http = Self.client(loop, settings.label, client.url, client.tls)
        defer { http.close() }
        guard let password = client.password else {
            return report.fail("login: no password configured for deluge-web", passwordFix(settings.label))
        }
        var cookie: String?
        var id = 0
        /// The call's answer, or what went wrong in words.
        func call(_ rpc: DelugeRPC.Call) -> (answer: DelugeRPC.Answer?, problem: String) {
            id += 1
            switch Self.call(DelugeRPC.request(rpc, id: id, url: client.url, cookie: cookie), http, loop) {
            case .failure(let error):
                return (nil, "\(rpc.method): \(error)")
            case .success(let response):
                if let fresh = response.cookies.first(where: { $0.name == DelugeRPC.cookieName }) { cookie = "\(fresh.name)=\(fresh.value)" }
                guard response.status == 200 else {
                    return (nil, "\(rpc.method) to \(client.url.address(of: DelugeRPC.target(client.url))): \(response.status) \(response.bodyExcerpt)")
                }
                switch DelugeRPC.parse(response.body, id: id) {
                case .success(let answer): return (answer, "")
                case .failure(let error): return (nil, "\(rpc.method): \(error)")
                }
            }
        }
        let login = call(DelugeRPC.Call.login(password))
        switch login.answer {
        case nil:
            return report.fail("Deluge: \(client.url) does not answer as deluge-web: \(login.problem)",
                               "start deluge-web, or set [\(settings.label)].url (its address and port, 8112 by default)")
        case .result(let accepted)? where accepted.bool == true:
            report.pass("Deluge: \(client.url) answers")
            report.pass("login: deluge-web accepted the password (from \(password.origin))")
        default:
            report.pass("Deluge: \(client.url) answers")
            return report.fail("login: deluge-web refused the password", "fix the password (\(password.origin))")
        }
        guard case .result(let connected)? = call(DelugeRPC.Call.connected).answer, connected.bool == true else {
            return report.pass("daemon: deluge-web is not connected to deluged; portsync run connects it (web.connect)")
        }
        report.pass("daemon: deluge-web is connected to deluged")
        guard case .result(let values)? = call(DelugeRPC.Call.readPorts).answer, let pair = DelugeRPC.ports(values["listen_ports"]) else {
            return report.fail("settings: cannot read Deluge's listen_ports", "check deluged")
        }
        if values["random_port"]?.bool == true {
            report.fail("settings: listen_ports [\(pair.low), \(pair.high)]; random_port is on", "portsync run turns it off when it applies the port")
        } else {
            report.pass("settings: listen_ports [\(pair.low), \(pair.high)], random port off")
        }
    }
}
