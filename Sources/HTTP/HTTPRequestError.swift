import Reactor
/// Why a request cannot be sent as it is.
public struct HTTPRequestError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "request not sent: \(message)" }
}
