/// An `http://` or `https://` URL as configured for qBittorrent or Gluetun:
/// scheme, host, port (default 80/443) and a base path.
public struct HTTPURL: Equatable, Sendable, CustomStringConvertible {
    public enum Scheme: String, Sendable {
        case http
        case https
    }

    public var scheme: Scheme
    public var host: String
    public var port: UInt16
    public var basePath: String

    /// Parses a URL; the error says what is wrong with it.
    public init(parsing text: String) throws(URLError) {
        let pieces = text.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard pieces.count == 2 else { throw URLError(text, "has no scheme (expected http:// or https://)") }
        guard let scheme = Scheme(rawValue: pieces[0].lowercased()) else {
            throw URLError(text, "scheme must be http or https")
        }
        var rest = pieces[1]
        var path = "/"
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[slash...])
            rest = rest[..<slash]
        }
        if rest.contains("@") { throw URLError(text, "must not carry credentials; use the password or API key settings") }
        if path.contains("?") || path.contains("#") { throw URLError(text, "must not have a query or fragment") }
        // The path goes into every request line as it is.
        guard path.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw URLError(text, "has a space, a control or a non-ASCII character in its path (percent-encode it)")
        }
        var host = String(rest)
        var port: UInt16 = scheme == .https ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw URLError(text, "has an unclosed IPv6 bracket") }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = UInt16(after.dropFirst()), value > 0 else { throw URLError(text, "has a bad port") }
                port = value
            } else if !after.isEmpty {
                throw URLError(text, "has junk after the IPv6 address")
            }
            host = String(host[...close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let value = UInt16(host[host.index(after: colon)...]), value > 0 else {
                throw URLError(text, "has a bad port (1-65535)")
            }
            port = value
            host = String(host[..<colon])
        }
        guard !host.isEmpty else { throw URLError(text, "has no host") }
        // A colon belongs only in a bracketed IPv6 address: elsewhere it would read as the port.
        let validHost = host.hasPrefix("[")
            ? host.count > 2 && host.dropFirst().dropLast().allSatisfy { $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }
            : host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }
        guard validHost else { throw URLError(text, "has a bad host name") }
        self.scheme = scheme
        self.host = host
        self.port = port
        while path.hasSuffix("/") { path.removeLast() }
        basePath = path
    }

    /// The `Host` header: host, with the port when it is not the scheme's default.
    public var hostHeader: String {
        let defaultPort: UInt16 = scheme == .https ? 443 : 80
        return port == defaultPort ? host : "\(host):\(port)"
    }

    /// `basePath` joined with an absolute API path.
    public func target(_ path: String) -> String { basePath + path }

    /// The host without IPv6 brackets, for address resolution.
    public var bareHost: String {
        host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
    }

    public var description: String { "\(scheme.rawValue)://\(hostHeader)\(basePath)" }
}

public struct URLError: Error, Equatable, CustomStringConvertible {
    public let url: String
    public let problem: String
    init(_ url: String, _ problem: String) {
        self.url = url
        self.problem = problem
    }
    public var description: String { "URL \"\(url)\" \(problem)" }
}
