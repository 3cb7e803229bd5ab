import Domain

extension SourceProblem {
    /// What every source that speaks through a tunnel (or an interface) says when it is not
    /// there or not up. `connect`: what to do ("connect the VPN").
    public static func unusable(_ reason: String, interface: String, section: String, connect: String,
                                what: String = "the VPN interface") -> SourceProblem {
        SourceProblem("\(what) is not usable: \(reason)", fix: "\(connect), or set [\(section)].interface (now \"\(interface)\")")
    }

    /// Up and addressed, but a packet to `peer` ("the gateway 10.2.0.1 (…)") would not leave
    /// through it yet. `setting`: the key that names another peer.
    public static func awaitingRoute(_ tunnel: Tunnel, interface: String, peer: String, network: String = "the VPN",
                                     setting: String) -> SourceProblem {
        SourceProblem("\(interface) is up with \(tunnel.address), but a packet to \(peer) would not leave through it",
                      fix: "wait until \(network) has finished connecting; `ip route get \(tunnel.gateway) from \(tunnel.address)` shows the way; \(setting)")
    }
}
