import HTTP
import Reactor

/// Which other web application answered where a client's API was expected, from what it
/// says about itself: Transmission's headers, deluge-web's Twisted server, nginx's own pages,
/// any other `Server` of an application (not a proxy's, which a proxied answer carries too) or
/// an HTML page's title. nil: nothing says it is not the expected client.
public enum ForeignServer {
    /// `expected` is the client's name as its own pages write it (`qBittorrent`), so that its
    /// own pages are never taken for another application's.
    public static func identify(_ response: HTTPResponse, expected: String) -> String? {
        let server = response.headers["Server"]?.oneLine(limit: 40) ?? ""
        let authenticate = Array((response.headers["WWW-Authenticate"] ?? "").utf8)
        let body = response.body
        if response.headers["X-Transmission-Session-Id"] != nil || starts(server, "transmission")
            || find("\"transmission\"", in: authenticate) != nil {
            return "Transmission"
        }
        // deluge-web is the Twisted web server a torrent setup runs.
        if starts(server, "twistedweb") { return "deluge-web (TwistedWeb)" }
        if find("<center>nginx", in: body) != nil || find("welcome to nginx", in: body) != nil { return "nginx (its own page)" }
        if let title = title(body), find(expected, in: Array(title.utf8)) == nil { return "a page titled \"\(title)\"" }
        let proxies = ["nginx", "caddy", "apache", "traefik", "envoy", "haproxy", "lighttpd", "cloudflare", "openresty"]
        if !server.isEmpty, !proxies.contains(where: { starts(server, $0) }), find(expected, in: Array(server.utf8)) == nil {
            return "\"\(server)\""
        }
        return nil
    }

    /// An HTML `<title>`'s text, made one short line.
    static func title(_ body: [UInt8]) -> String? {
        guard let open = find("<title>", in: body), let close = find("</title>", in: body, from: open + 7) else { return nil }
        let title = String(decoding: body[(open + 7)..<close], as: UTF8.self).trimmingSpaces
        return title.isEmpty ? nil : title.oneLine(limit: 60)
    }

    private static func starts(_ text: String, _ prefix: String) -> Bool {
        find(prefix, in: Array(text.utf8)) == 0
    }

    /// Where `needle` (ASCII, any case) first occurs in `haystack` at or after `from`.
    /// A byte search: String's `contains` would load _StringProcessing at start.
    private static func find(_ needle: String, in haystack: [UInt8], from: Int = 0) -> Int? {
        let needle = Array(needle.lowercased().utf8)
        guard !needle.isEmpty, haystack.count >= needle.count, from <= haystack.count - needle.count else { return nil }
        func lower(_ byte: UInt8) -> UInt8 { (65...90).contains(byte) ? byte + 32 : byte }
        for start in from...(haystack.count - needle.count)
            where needle.indices.allSatisfy({ lower(haystack[start + $0]) == needle[$0] }) {
            return start
        }
        return nil
    }
}
