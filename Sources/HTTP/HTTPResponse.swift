import Reactor
/// A complete HTTP response.
public struct HTTPResponse: Sendable, Equatable {
    public var version: (major: Int, minor: Int)
    public var status: Int
    public var reason: String
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(version: (major: Int, minor: Int) = (1, 1), status: Int, reason: String = "",
                headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
    }

    /// Whether the server keeps the connection open after this response.
    public var keepAlive: Bool {
        let tokens = (headers["Connection"] ?? "").lowercased().split(separator: ",").map { $0.trimmingSpaces }
        if tokens.contains("close") { return false }
        if version.major == 1 && version.minor == 0 { return tokens.contains("keep-alive") }
        return true
    }

    /// The body as text (invalid UTF-8 repaired), for bodies that are text.
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// A short, printable excerpt of the body for error messages: at most 80 characters of its
    /// first 1 KiB, as one line.
    public var bodyExcerpt: String {
        String(decoding: body.prefix(1024), as: UTF8.self).trimmingSpaces.oneLine(limit: 80)
    }

    /// `name=value` of each Set-Cookie (attributes dropped).
    public var cookies: [(name: String, value: String)] {
        headers.values(for: "Set-Cookie").compactMap { header in
            let pair = header.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
            guard let equals = pair.firstIndex(of: "=") else { return nil }
            let name = pair[..<equals].trimmingSpaces
            guard !name.isEmpty else { return nil }
            return (name, pair[pair.index(after: equals)...].trimmingSpaces)
        }
    }

    public static func == (lhs: HTTPResponse, rhs: HTTPResponse) -> Bool {
        lhs.version == rhs.version && lhs.status == rhs.status && lhs.reason == rhs.reason
            && lhs.headers == rhs.headers && lhs.body == rhs.body
    }
}
