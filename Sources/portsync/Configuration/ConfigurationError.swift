import Reactor

/// A configuration or usage problem, said in one line that names where it is:
/// `config.toml:12: unknown key "prot" in [natpmp]`, `PORTSYNC_NATPMP_GATEWAY: …`, `--gateway: …`.
struct ConfigurationError: Error, Equatable, CustomStringConvertible {
    let origin: String
    let message: String

    init(_ origin: String, _ message: String) {
        self.origin = origin
        self.message = message
    }

    /// One line even when it quotes a value with a line break in it.
    var description: String { (origin.isEmpty ? message : "\(origin): \(message)").oneLine(limit: 1000) }
}
