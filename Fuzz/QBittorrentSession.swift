import Domain
@testable import HTTP
import Reactor
@testable import Sinks

/// QBittorrentSession through the client sessions' driver (`fuzzClientSession`), with its own
/// inputs (reasserts, interface changes) and answers shaped like what qBittorrent sends to the
/// request in flight, with fuzzed status, cookie and body.
///
/// Its own properties: a login only with a password, and never with a cookie; the connect's
/// probe without a cookie or a password; a write sets
/// listen_port to the desired port (or its neighbour, for a reassert); a re-announce
/// (`hashes=all`) only when verified on the desired port.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQBittorrentSession(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    fuzzClientSession(data, count, QBittorrentSession.self) { request, session, _ in
        if request.target.hasSuffix("/api/v2/auth/login") {
            guard case .password = session.settings.authentication else { fatalError("property violated: a login without a password") }
            require(!request.headers.contains("Cookie"), "a login that sends a cookie")
        }
        if request.target.hasSuffix("/api/v2/app/webapiVersion") {
            require(!request.headers.contains("Cookie") && request.body.isEmpty, "a probe that sends a cookie or a body")
        }
        if let ports = QBittorrentSession.writtenPorts(request), let port = ports.first {
            guard let desired = session.desired else { fatalError("property violated: listen_port \(port) with nothing desired") }
            require(abs(port - Int(desired.value)) <= 1, "listen_port \(port) while \(desired) is desired")
        }
        if request.target.hasSuffix("/api/v2/torrents/reannounce") {
            require(String(decoding: request.body, as: UTF8.self) == "hashes=all", "re-announce body")
            require(session.status.health == .verified && session.status.verifiedPort == session.desired, "a re-announce while not verified")
        }
    }
}

extension QBittorrentSession.Input: FuzzedSessionInput {}

extension QBittorrentSession: FuzzedClientSession {
    var isBusy: Bool { inFlight != nil }
    var desiredPort: Port? { desired }
    var clientSettings: ClientSettings { settings.client }

    static func settings(_ byte: UInt8) -> QBittorrentSettings {
        let url = try! HTTPURL(parsing: byte & 1 == 0 ? "http://127.0.0.1:8080" : "https://qbt.example.lan/qbittorrent/")
        let authentication: QBittorrentSettings.Authentication = switch byte >> 1 & 3 {
        case 0: .none
        case 1: .apiKey(Secret(value: "qbt_0123456789abcdef", origin: "fuzz"))
        default: .password(username: byte & 8 == 0 ? "admin" : "ad min&=", password: Secret(value: "p@ss w&rd=1%", origin: "fuzz"))
        }
        return QBittorrentSettings(url: url, authentication: authentication, disableUPnP: byte & 16 == 0,
                                   interface: byte & 32 == 0 ? nil : "wg0", checkListener: byte & 64 != 0)
    }

    static var operations: [FuzzOperation<Input>] {
        [.desiredPort, .input(.reassert), .settingsChanged, .rawAnswer, .requestFailed, .deadlineReached, .timePasses, .shapedAnswer,
         .input(.interfacesChanged), .connect]
    }

    static var methods: Set<String> { ["GET", "POST"] }

    static func view(_ effect: Effect) -> FuzzedEffect<Input> {
        switch effect {
        case .send(let request, _): .send(request)
        case .log(_, let message): .log(message)
        case .statusChanged(let status): .status(status)
        case .checkListener: .checkListener(Input.listenerChecked)
        case .checkListenerBeforeAnnouncing: .checkListener(Input.listenerCheckedBeforeAnnouncing)
        }
    }

    /// What qBittorrent would answer, shaped by the input: the status, the cookie's bytes, the
    /// version text, the preferences' values.
    func shapedAnswer(_ input: inout FuzzInput) -> [UInt8]? {
        guard let request = inFlight else { return nil }
        let status = input.pick([200, 200, 200, 204, 401, 403, 404, 500])
        switch request {
        case .probe:
            return answer(status, input.bool() ? [("X-Transmission-Session-Id", "abc")] : [], input.pick(["2.8.3", "Forbidden", "", "<title>Not qBittorrent</title>"]))
        case .login:
            let cookie = input.pick(["SID", "QBT_SID_8080"]) + "=" + String(decoding: input.bytes(Int(input.byte() % 40)), as: UTF8.self)
            return answer(status, [("Set-Cookie", cookie + "; HttpOnly; SameSite=Strict; path=/")], input.pick(["Ok.", "Fails.", "", "Your IP address has been banned"]))
        case .version:
            return answer(status, [], input.pick(["v4.5.2", "v5.0.2", "", "<html>", String(decoding: input.bytes(8), as: UTF8.self)]))
        case .interfaces:
            return answer(status, [], input.pick([#"[{"name":"wg0","value":"wg0"},{"name":"lo","value":"lo"}]"#, "[]", "{}", "null"]))
        case .readPreferences:
            let port = Int(input.uint16())
            let interface = input.pick(["wg0", "", "lo"])
            return answer(status, [("Content-Type", "application/json")],
                               #"{"listen_port":\#(port),"random_port":\#(input.bool()),"upnp":\#(input.bool()),"current_network_interface":"\#(interface)","dht":false}"#)
        case .writePreferences, .reannounce:
            return answer(status)
        case .torrentSample:
            return answer(status, [], input.pick([#"[{"hash":"8c4f3e2a","name":"x"}]"#, "[]", "{}", #"[{"hash":"../x"}]"#, String(decoding: input.bytes(8), as: UTF8.self)]))
        case .trackers:
            return answer(status, [], input.pick([#"[{"msg":"","status":0,"tier":-1,"url":"** [DHT] **"},{"msg":"m","status":\#(input.byte() % 6),"tier":0,"url":"u"}]"#,
                                                       "[]", "{}", #"[{"status":"x"}]"#]))
        case .transferInfo:
            return answer(status, [], input.pick([#"{"connection_status":"firewalled","last_external_address_v4":"203.0.113.132"}"#,
                                                   #"{"connection_status":"connected"}"#, #"{"connection_status":7}"#, "[]"]))
        }
    }

    /// A setPreferences write: `json=` and an object; its listen_port, when it has one.
    static func writtenPorts(_ request: HTTPRequest) -> [Int]? {
        guard request.target.hasSuffix("/api/v2/app/setPreferences") else { return nil }
        let body = String(decoding: request.body, as: UTF8.self)
        require(body.hasPrefix("json="), "setPreferences body \(body)")
        guard let fields = try? JSONValue.parse(Array(percentDecoded(body.dropFirst(5)).utf8)), case .object = fields else {
            fatalError("property violated: setPreferences body is not a JSON object: \(body)")
        }
        guard let value = fields["listen_port"] else { return [] }
        guard let port = value.integer else { fatalError("property violated: listen_port \(value.serialized)") }
        return [port]
    }
}
