import Domain
import Reactor
import Sinks
import Watchers

/// Whether portsync has done its job, and if not, why: for the state file, `status`,
/// STATUS=, `/healthz` and the metrics.
enum Health: Equatable, CustomStringConvertible {
    /// Every client is verified on the desired port.
    case ok
    /// A source has a port, but no decision was made yet.
    case starting
    case waitingForPort
    /// The VPN interface is not usable (its state in words).
    case vpnDown(String)
    case applying(Port)
    /// What a client said is wrong.
    case failing(String)

    var isOK: Bool { self == .ok }

    var description: String {
        switch self {
        case .ok: "ok"
        case .starting: "starting"
        case .waitingForPort: "waiting for a forwarded port"
        case .vpnDown(let state): "VPN down: \(state)"
        case .applying(let port): "applying port \(port)"
        case .failing(let message): message
        }
    }

    /// The health as the state file has it (text written by `description`).
    init(text: String) {
        switch text {
        case "ok": self = .ok
        case "starting": self = .starting
        case "waiting for a forwarded port": self = .waitingForPort
        case _ where text.hasPrefix("VPN down: "): self = .vpnDown(String(text.dropFirst("VPN down: ".count)))
        case _ where text.hasPrefix("applying port "):
            self = Port(Int(text.dropFirst("applying port ".count)) ?? 0).map { .applying($0) } ?? .failing(text)
        default: self = .failing(text)
        }
    }

    /// The tunnel's trouble comes first when there is no port yet, or when NAT-PMP is the only
    /// source (`tunnelDecides`); then the worst of the clients: the first that fails (named by its
    /// label when there are several), else applying while one is not verified on its `wanted`
    /// port (its `port_index`'s; nil: `desired`) or while the coordinator holds `desired` back
    /// until its burst settles (`heldBack`).
    static func assess(desired: Port?, heldBack: Bool = false, livePort: Bool, link: TunnelTracker.State?, tunnelDecides: Bool,
                       clients: [(label: String, status: SinkStatus, wanted: Port?)]) -> Health {
        let tunnelDown: Health? = switch link {
        case .awaitingRoute?, .unusable?: .vpnDown("\(link!)")
        case .usable?, nil: nil
        }
        guard let desired else {
            // No port yet: the tunnel's trouble, else a client that cannot be reached or logged in
            // to (checked at start), else waiting.
            if let tunnelDown { return tunnelDown }
            for (label, status, _) in clients {
                switch status.health {
                case .unreachable(let message), .failing(let message), .loginRefused(let message):
                    return .failing(clients.count > 1 ? "\(label): \(message)" : message)
                case .idle, .applying, .verified: continue
                }
            }
            return livePort ? .starting : .waitingForPort
        }
        if let tunnelDown, tunnelDecides { return tunnelDown }
        // A port held back until its burst settles is on its way, as one a client is setting.
        var pending = heldBack
        for (label, status, wanted) in clients {
            switch status.health {
            case .verified where status.verifiedPort == wanted ?? desired: continue
            case .idle, .applying, .verified: pending = true
            case .unreachable(let message), .failing(let message), .loginRefused(let message):
                return .failing(clients.count > 1 ? "\(label): \(message)" : message)
            }
        }
        return pending ? .applying(desired) : .ok
    }
}
