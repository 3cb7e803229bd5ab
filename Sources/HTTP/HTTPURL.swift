import Glibc
import Reactor

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

    /// Parses a URL strictly; the error says what is wrong with it. The host is a name (letters,
    /// digits, `-`, `.`, `_`), a dotted IPv4 address or a bracketed IPv6 address; the port is
    /// 1-5 digits, 1-65535; the path holds only the characters RFC 3986 allows in one. No
    /// credentials, query, fragment, space or control character.
    public init(parsing text: String) throws(URLError) {
        // Every refusal quotes the URL; a password in it is never quoted.
        let shown = Self.hidingPassword(text)
        guard text.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw URLError(shown, "holds a space, a control character or a non-ASCII character")
        }
        // "://" found by hand: a string separator would bring _StringProcessing's searchers (and
        // their pages of code) into every start.
        let bytes = Array(text.utf8)
        guard let separator = bytes.indices.dropLast(2).first(where: { bytes[$0...$0 + 2].elementsEqual("://".utf8) }) else {
            throw URLError(shown, "has no scheme (expected http:// or https://)")
        }
        guard let scheme = Scheme(rawValue: String(decoding: bytes[..<separator], as: UTF8.self).lowercased()) else {
            throw URLError(shown, "scheme must be http or https")
        }
        var authority = Substring(String(decoding: bytes[(separator + 3)...], as: UTF8.self))
        var path = "/"
        if let slash = authority.firstIndex(of: "/") {
            path = String(authority[slash...])
            authority = authority[..<slash]
        }
        if authority.contains("@") { throw URLError(shown, "must not carry credentials; use the password or API key settings") }
        if authority.contains("?") || authority.contains("#") || path.contains("?") || path.contains("#") {
            throw URLError(shown, "must not have a query or fragment")
        }
        guard Self.isValidPath(path) else { throw URLError(shown, "has a bad path") }
        var host: String
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw URLError(shown, "has an unclosed IPv6 bracket") }
            let address = authority[authority.index(after: authority.startIndex)..<close]
            guard !address.isEmpty, SocketAddress(numericHost: String(address), port: 1)?.family == AF_INET6 else {
                throw URLError(shown, "has a bad IPv6 address")
            }
            host = String(authority[...close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                throw URLError(shown, "has junk after the IPv6 address")
            }
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw URLError(shown, "has more than one port") }
            host = String(parts[0])
            portText = parts.count == 2 ? parts[1] : nil
            guard !host.isEmpty else { throw URLError(shown, "has no host") }
            guard host.utf8.allSatisfy({ Self.isHostByte($0) }) else { throw URLError(shown, "has a bad host name") }
            if host.allSatisfy({ $0.isNumber || $0 == "." }) && IPv4Address(host) == nil {
                throw URLError(shown, "has a bad IPv4 address")
            }
        }
        var port: UInt16 = scheme == .https ? 443 : 80
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                  let value = Int(portText), (1...65535).contains(value) else {
                throw URLError(shown, "has a bad port (1-65535)")
            }
            port = UInt16(value)
        }
        self.scheme = scheme
        self.host = host
        self.port = port
        // Every trailing slash: "http://h//" is no base path, not "/" (requests would go to "//api/…").
        while path.hasSuffix("/") { path.removeLast() }
        basePath = path
    }

    /// `text` with the password of any `user:password@` in its authority as `***`: what a
    /// refusal may quote (the user name stays, so the person sees which part was meant).
    static func hidingPassword(_ text: String) -> String {
        var bytes = Array(text.utf8)
        let separator = bytes.indices.dropLast(2).first { bytes[$0...$0 + 2].elementsEqual("://".utf8) }
        let authorityStart = separator.map { $0 + 3 } ?? 0
        let authorityEnd = bytes[authorityStart...].firstIndex(of: UInt8(ascii: "/")) ?? bytes.endIndex
        guard let at = bytes[authorityStart..<authorityEnd].lastIndex(of: UInt8(ascii: "@")),
              let colon = bytes[authorityStart..<at].firstIndex(of: UInt8(ascii: ":")) else { return text }
        bytes.replaceSubrange(colon + 1..<at, with: "***".utf8)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether `path` is an absolute path of RFC 3986 path characters (unreserved, sub-delims,
    /// `:`, `@`, `/` and `%` with two hex digits): what may follow the method in a request line.
    public static func isValidPath(_ path: String) -> Bool {
        let bytes = Array(path.utf8)
        guard bytes.first == UInt8(ascii: "/") else { return false }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, isHexDigit(bytes[index + 1]), isHexDigit(bytes[index + 2]) else { return false }
                index += 3
                continue
            }
            guard isHostByte(byte) || "~!$&'()*+,;=:@/".utf8.contains(byte) else { return false }
            index += 1
        }
        return true
    }

    private static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }

    /// The `Host` header: host, with the port when it is not the scheme's default.
    public var hostHeader: String {
        let defaultPort: UInt16 = scheme == .https ? 443 : 80
        return port == defaultPort ? host : "\(host):\(port)"
    }

    /// `basePath` joined with an absolute API path.
    public func target(_ path: String) -> String { basePath + path }

    /// The URL of a request target on this server, for messages: `http://nas:8112/json`.
    public func address(of target: String) -> String { "\(scheme.rawValue)://\(hostHeader)\(target)" }

    /// The host without IPv6 brackets, for address resolution.
    public var bareHost: String {
        host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
    }

    public var description: String { "\(scheme.rawValue)://\(hostHeader)\(basePath)" }

    /// Whether the URL points at this host (loopback), so that the server's sockets are in our
    /// socket table.
    public var isThisHost: Bool {
        let host = bareHost.lowercased()
        return host == "localhost" || host == "::1" || IPv4Address(host)?.isLoopback == true
    }
}

public struct URLError: Error, Equatable, CustomStringConvertible {
    public let url: String
    public let problem: String
    init(_ url: String, _ problem: String) {
        self.url = url
        self.problem = problem
    }
    /// One line, whatever the URL holds.
    public var description: String { "URL \"\(url.oneLine())\" \(problem)" }
}
