import Domain
import HTTP

/// What PIA's `getSignature` grants: a payload (base64 JSON with the port, its expiry and the
/// token it was asked with) and its signature, both sent back on every `bindPort`. Both are
/// secrets. Kept in a file of their own so that a restart binds the same port again, for the
/// ~60 days the payload lasts.
public struct PIASignature: Equatable, Sendable {
    public let payload: Secret
    public let signature: Secret
    public let port: Port
    /// When the payload stops being bindable, in Unix seconds (`expires_at`).
    public let expiresAt: Int64
    /// The server (its common name) that signed it: another server does not take it.
    public let serverName: String

    public init(payload: Secret, signature: Secret, port: Port, expiresAt: Int64, serverName: String) {
        self.payload = payload
        self.signature = signature
        self.port = port
        self.expiresAt = expiresAt
        self.serverName = serverName
    }

    /// The file's contents: the two as PIA gave them, and the server's name.
    public var fileContents: [UInt8] {
        let members: [String: JSONValue] = ["payload": .string(payload.value), "signature": .string(signature.value),
                                            "server_name": .string(serverName)]
        return Array((JSONValue.object(members).serialized + "\n").utf8)
    }

    /// The kept file read back: nil when it is not one (the payload is checked as PIA's answer is).
    public static func parse(_ bytes: [UInt8], origin: String) -> PIASignature? {
        guard case .success(let members) = JSONValue.object(bytes),
              let payload = members["payload"]?.string, let signature = members["signature"]?.string,
              let serverName = members["server_name"]?.string,
              let contents = try? PIAAnswer.payload(payload) else { return nil }
        return PIASignature(payload: Secret(value: payload, origin: origin), signature: Secret(value: signature, origin: origin),
                            port: contents.port, expiresAt: contents.expiresAt, serverName: serverName)
    }
}
