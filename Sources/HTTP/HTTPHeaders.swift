import Reactor
/// HTTP header fields in the order received. Names compare case-insensitively; a name may
/// occur several times (Set-Cookie does).
public struct HTTPHeaders: Sequence, Equatable, Sendable, ExpressibleByDictionaryLiteral {
    public private(set) var fields: [(name: String, value: String)] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { add(name, value) }
    }

    public mutating func add(_ name: String, _ value: String) {
        fields.append((name, value))
    }

    /// Replaces every field of that name with one.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    public mutating func remove(_ name: String) {
        fields.removeAll { $0.name.lowercased() == name.lowercased() }
    }

    /// The first value of that name.
    public subscript(name: String) -> String? {
        let key = name.lowercased()
        return fields.first { $0.name.lowercased() == key }?.value
    }

    public func values(for name: String) -> [String] {
        let key = name.lowercased()
        return fields.filter { $0.name.lowercased() == key }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public func makeIterator() -> some IteratorProtocol<(name: String, value: String)> { fields.makeIterator() }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.elementsEqual(rhs.fields) { $0.name == $1.name && $0.value == $1.value }
    }
}

extension HTTPHeaders {
    /// What names portsync to the servers it asks.
    public static let userAgent = "portsync/0.1"

    /// The headers every API request starts with: `Host` for `url` (brackets for IPv6, the port
    /// when not the scheme's default) and portsync's `User-Agent`; `extra` after them.
    public static func request(to url: HTTPURL, _ extra: KeyValuePairs<String, String> = [:]) -> HTTPHeaders {
        var headers: HTTPHeaders = ["Host": url.hostHeader, "User-Agent": userAgent]
        for (name, value) in extra { headers.add(name, value) }
        return headers
    }

    /// HTTP Basic authentication (RFC 7617) for `user` and `password`.
    public mutating func addBasicAuthorization(user: String, password: String) {
        add("Authorization", "Basic " + Base64.encode(Array("\(user):\(password)".utf8)))
    }
}
