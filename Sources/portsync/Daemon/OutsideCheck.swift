import Coordination
import Domain
import HTTP
import Reactor

/// `[connectability] check_url`: a third party that dials the forwarded port from outside and
/// says whether it is open, asked through the tunnel (off by default: it tells that party the
/// address and port). Asked after every change of port or tunnel and after a re-map; its answer
/// stands for that port and tunnel until then.
final class OutsideCheck {
    /// The URL with `{port}` (and `{address}`, the public address) in its path or query.
    struct Template: Equatable {
        let text: String

        /// nil with why: no `{port}`, or not a URL once filled in.
        static func validate(_ text: String) -> String? {
            guard text.contains("{port}") else { return "must hold {port} where the port goes" }
            let leftover = text.replacingPlaceholders(port: 1, address: "192.0.2.1")
            if leftover.contains("{") || leftover.contains("}") { return "knows only {port} and {address}" }
            let base = String(leftover.prefix { $0 != "?" })
            do {
                _ = try HTTPURL(parsing: base)
            } catch {
                return "\(error)"
            }
            return nil
        }

        /// The server and the request target for `port`.
        func request(port: Port, address: IPv4Address?) throws -> (url: HTTPURL, target: String) {
            let filled = text.replacingPlaceholders(port: port.value, address: address.map { "\($0)" } ?? "")
            let base = String(filled.prefix { $0 != "?" })
            let query = filled.dropFirst(base.count)
            let url = try HTTPURL(parsing: base)
            return (url, url.basePath + query)
        }
    }

    /// What the answer says: JSON `{"open": true|false}` or `{"status": "open"|"closed"}`, or a
    /// body that is the word `open` or `closed`.
    static func answer(status: Int, body: [UInt8]) -> Connectability.Outside {
        guard (200..<300).contains(status) else { return .failed("it answered \(status)") }
        if let value = try? JSONValue.parse(body) {
            if let open = value["open"]?.bool { return open ? .open : .closed }
            if let word = value["status"]?.string?.lowercased(), word == "open" || word == "closed" { return word == "open" ? .open : .closed }
        }
        let word = String(decoding: body, as: UTF8.self).lowercased().filter { !$0.isWhitespace }
        if word == "open" { return .open }
        if word == "closed" { return .closed }
        return .failed("its answer says neither open nor closed: \"\(String(decoding: body.prefix(60), as: UTF8.self).oneLine(limit: 60))\"")
    }

    static let name = "connectability.check"

    /// The answer came (the verdict looks again).
    var onAnswer: () -> Void = {}

    private let loop: EventLoop
    private let template: Template
    private let tls: TLSOptions
    private var client: HTTPClient?
    /// The port and tunnel asked about, and the answer (nil while asking).
    private var asked: (port: Port, tunnel: IPv4Address?)?
    private var result: Connectability.Outside?

    init(loop: EventLoop, template: Template, tls: TLSOptions) {
        self.loop = loop
        self.template = template
        self.tls = tls
    }

    func close() {
        client?.close()
        client = nil
    }

    /// The answer for `port` on `tunnel`: asks when it has not been asked about them, and says
    /// `.asking` until the answer is in.
    func answer(port: Port, tunnel: IPv4Address?, publicAddress: IPv4Address?) -> Connectability.Outside {
        if let asked, asked.port == port, asked.tunnel == tunnel { return result ?? .asking }
        ask(port: port, tunnel: tunnel, publicAddress: publicAddress)
        return result ?? .asking
    }

    /// Asks again at the next `answer` (after a re-map).
    func forget() {
        asked = nil
        result = nil
    }

    private func ask(port: Port, tunnel: IPv4Address?, publicAddress: IPv4Address?) {
        close()
        asked = (port, tunnel)
        result = nil
        let request: (url: HTTPURL, target: String)
        do {
            request = try template.request(port: port, address: publicAddress)
        } catch {
            result = .failed("\(error)")
            return
        }
        // Through the tunnel: from its address, as a peer would see the port.
        let client = HTTPClient(loop: loop, name: Self.name, url: request.url, tls: tls, sourceAddress: tunnel.map { .v4($0, port: 0) },
                                connectTimeout: .seconds(10), responseTimeout: .seconds(20))
        self.client = client
        loop.logger.info(Self.name, "asking \(request.url) whether port \(port) is open from outside")
        client.send(HTTPRequest(method: "GET", target: request.target, headers: .request(to: request.url)), retryIfStale: true) {
            [weak self] outcome in
            guard let self, let asked = self.asked, asked.port == port, asked.tunnel == tunnel else { return }
            switch outcome {
            case .success(let response): self.result = Self.answer(status: response.status, body: response.body)
            case .failure(let error): self.result = .failed("\(error)")
            }
            self.loop.logger.info(Self.name, "port \(port) from outside: \(self.result!)")
            self.onAnswer()
        }
    }
}

extension String {
    fileprivate func replacingPlaceholders(port: UInt16, address: String) -> String {
        var text = ""
        var rest = Substring(self)
        while let open = rest.firstIndex(of: "{") {
            text += rest[..<open]
            let after = rest[open...]
            if after.hasPrefix("{port}") {
                text += String(port)
                rest = after.dropFirst("{port}".count)
            } else if after.hasPrefix("{address}") {
                text += address
                rest = after.dropFirst("{address}".count)
            } else {
                text += "{"
                rest = after.dropFirst()
            }
        }
        return text + rest
    }
}
