@testable import Reactor
@testable import portsync
@testable import HTTP

/// HTTPURL (qBittorrent's and Gluetun's URL), IPv4Address and SocketAddress (the NAT-PMP
/// gateway, the metrics address), each straight and through its configuration key.
///
/// Properties: a URL it accepts has a host, a port other than 0, and a Host header and request
/// targets with no space or control character; printed (`description`), it parses back equal.
/// An address it accepts prints as text that parses back to the same address. A key that takes
/// a value renders it as text that the key takes back to the same configuration.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzURL(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzInput(data, count)
    let text = String(decoding: input.bytes, as: UTF8.self)

    if let url = try? HTTPURL(parsing: text) {
        require(!url.host.isEmpty && url.port != 0, "\(url) has no host or port 0")
        for piece in [url.hostHeader, url.target("/api/v2/app/version")] {
            require(!piece.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F },
                    "\"\(piece)\" of \(url) holds a space or a control character")
        }
        let again = try? HTTPURL(parsing: url.description)
        require(again == url, "\(url) parses back as \(String(describing: again))")
    }
    if let address = IPv4Address(text) {
        require(IPv4Address(address.description) == address, "\(address) parses back differently")
    }
    if let address = SocketAddress(numericHost: text, port: 9834) {
        let again = SocketAddress(numericHost: address.hostText, port: 9834)
        require(again == address, "\(address) parses back as \(String(describing: again))")
    }

    let defaults = Configuration.defaults(environment: [:], userID: 1000)
    let context = ConfigurationKey.Context(baseDirectory: "/etc/portsync")
    for path in ["qbittorrent.url", "gluetun.url", "natpmp.gateway", "daemon.metrics_listen"] {
        let key = ConfigurationKey.named(path)!
        var configuration = defaults
        guard (try? key.apply(&configuration, .string(text), context)) != nil else { continue }
        let rendered = key.renderedValue(in: configuration) ?? "(not set)"
        guard let value = (try? JSONValue.parse(Array(rendered.utf8)))?.string else {
            fatalError("property violated: \(path) renders as \(rendered), not a string")
        }
        var again = defaults
        require((try? key.apply(&again, .string(value), context)) != nil && again == configuration,
                "\(path) = \(rendered) does not give the same configuration back")
    }
    return 0
}
