import Domain
import HTTP
import Reactor

/// How a notification goes on the wire: each service's own API, replayed as its documentation
/// gives it.
/// - `json`: the message and its values as one JSON object, POSTed to the URL
///   (`Authorization: Bearer` with a token);
/// - `ntfy`: POSTed to the topic's URL, the text as the body, `Title`, `Priority` (3, or 4 for
///   bad news) and `Tags` headers, `Authorization: Bearer` with an access token
///   (docs.ntfy.sh/publish);
/// - `gotify`: POST `/message` on the server, `{"title", "message", "priority"}` (5, or 8 for
///   bad news), the application's token in `X-Gotify-Key`;
/// - `discord`: POST to the webhook (`/api/webhooks/ID/TOKEN`, the token from the URL or from
///   the token secret), `{"content"}` with mentions off (a client's words could hold an
///   `@everyone`); Discord answers 204, and 429 with `retry_after` when it is rate limited.
public enum NotifyPreset: String, CaseIterable, Sendable {
    case json
    case ntfy
    case gotify
    case discord

    /// The preset the URL names by itself (a Discord webhook, ntfy.sh); nil for any other.
    public static func inferred(from url: HTTPURL) -> NotifyPreset? {
        let host = url.bareHost.lowercased()
        if ["discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"].contains(host), url.basePath.hasPrefix("/api/webhooks/") {
            return .discord
        }
        return host == "ntfy.sh" ? .ntfy : nil
    }

    /// Why `url` (with or without a token) cannot be this preset's; nil when it can.
    public func problem(url: HTTPURL, hasToken: Bool) -> String? {
        switch self {
        case .json:
            return nil
        case .ntfy:
            return url.basePath.isEmpty ? "ntfy needs the topic in the URL, e.g. https://ntfy.sh/your-topic" : nil
        case .gotify:
            return hasToken ? nil : "gotify needs the application's token: set token_file (or the credential notify-token, or PORTSYNC_NOTIFY_TOKEN)"
        case .discord:
            let segments = url.basePath.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard segments.count >= 3, segments.starts(with: ["api", "webhooks"]), !segments.contains("") else {
                return "a Discord webhook is https://discord.com/api/webhooks/ID/TOKEN (or …/ID with the token in token_file)"
            }
            switch (segments.count, hasToken) {
            case (3, false): return "the Discord webhook needs its token: at the end of the URL, or in token_file"
            case (4, true): return "the URL holds the Discord webhook's token already: leave token_file unset"
            case (3, true), (4, false): return nil
            default: return "a Discord webhook is https://discord.com/api/webhooks/ID/TOKEN (or …/ID with the token in token_file)"
            }
        }
    }

    /// The request that delivers `message` to `url`.
    public func request(_ message: NotifyMessage, url: HTTPURL, token: Secret?) -> HTTPRequest {
        var headers = HTTPHeaders.request(to: url)
        let target = url.basePath.isEmpty ? "/" : url.basePath
        switch self {
        case .json:
            headers.add("Content-Type", "application/json")
            if let token { headers.add("Authorization", "Bearer \(token.value)") }
            return HTTPRequest(method: "POST", target: target, headers: headers, body: Array(message.json.serialized.utf8))
        case .ntfy:
            headers.add("Content-Type", "text/plain; charset=utf-8")
            headers.add("Title", message.title)
            headers.add("Priority", message.isUrgent ? "4" : "3")
            headers.add("Tags", Self.ntfyTag(message.event.kind))
            if let token { headers.add("Authorization", "Bearer \(token.value)") }
            return HTTPRequest(method: "POST", target: target, headers: headers, body: Array(message.text.utf8))
        case .gotify:
            headers.add("Content-Type", "application/json")
            if let token { headers.add("X-Gotify-Key", token.value) }
            let body: JSONValue = .object(["title": .string(message.title), "message": .string(message.text),
                                           "priority": .number(message.isUrgent ? 8 : 5)])
            let path = url.basePath.hasSuffix("/message") ? url.basePath : url.target("/message")
            return HTTPRequest(method: "POST", target: path, headers: headers, body: Array(body.serialized.utf8))
        case .discord:
            headers.add("Content-Type", "application/json")
            let body: JSONValue = .object(["content": .string(message.text), "allowed_mentions": .object(["parse": .array([])])])
            let path = token.map { "\(url.basePath)/\(FormEncoding.percentEncode($0.value))" } ?? url.basePath
            return HTTPRequest(method: "POST", target: path, headers: headers, body: Array(body.serialized.utf8))
        }
    }

    /// ntfy shows a tag that names an emoji as that emoji.
    private static func ntfyTag(_ kind: NotifyEvent.Kind) -> String {
        switch kind {
        case .portChanged: "arrows_counterclockwise"
        case .clientFailing: "x"
        case .connectabilityLost: "warning"
        case .connectabilityRecovered: "white_check_mark"
        }
    }
}
