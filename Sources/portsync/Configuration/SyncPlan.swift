import Reactor
import Sinks
import Watchers

/// What the configuration asks for, decided once: the sources of the port (in the order they
/// are tried where one is enough) and the clients whose port is kept. `run`, `once`, `doctor`
/// and a reload all use this one value; the strategy is looked at only here.
struct SyncPlan {
    enum Source: Equatable {
        /// A file with the port (ProtonVPN's, or Gluetun's), watched through its directory.
        case portFile(name: String, path: String, source: PortObservation.Source, portIndex: Int)
        /// Gluetun's control server, polled.
        case gluetun(GluetunSettings)
        /// NAT-PMP on the VPN interface, renewed.
        case natpmp(NATPMP)
    }

    struct NATPMP: Equatable {
        var settings: NATPMPSettings
        var interface: String
        var gateway: IPv4Address?
        var recoveryCommand: String
        var recoveryAfter: Int
        var recoveryCooldown: Duration
        /// The only source: the tunnel being down is the health, whatever the clients say.
        var tunnelDecides: Bool
    }

    var sources: [Source]
    var sinks: [any PortSinkSettings]

    /// `auto`: the ProtonVPN file (an immediate hint) and NAT-PMP on the interface (the
    /// authority, and what keeps the lease alive), each as it becomes available.
    init(_ loaded: LoadedConfiguration) {
        let configuration = loaded.configuration
        let strategy = configuration.source.strategy
        sources = []
        if strategy == .auto || strategy == .file {
            sources.append(.portFile(name: "proton.file", path: configuration.proton.portFile, source: .protonFile, portIndex: 0))
        }
        if strategy == .gluetun {
            let gluetun = configuration.gluetun
            sources.append(gluetun.portFile.isEmpty
                ? .gluetun(GluetunSettings(configuration, loaded.credentials))
                : .portFile(name: "gluetun.file", path: gluetun.portFile, source: .gluetunFile, portIndex: gluetun.portIndex))
        }
        if strategy == .auto || strategy == .natpmp {
            let natpmp = configuration.natpmp
            sources.append(.natpmp(NATPMP(settings: NATPMPSettings(configuration), interface: natpmp.interface, gateway: natpmp.gateway,
                                          recoveryCommand: natpmp.recoveryCommand, recoveryAfter: natpmp.recoveryAfter,
                                          recoveryCooldown: .seconds(natpmp.recoveryCooldownSeconds), tunnelDecides: strategy == .natpmp)))
        }
        sinks = configuration.clients.map { $0.sinkSettings(loaded.credentials) }
        if let hook = HookSettings(configuration, environment: ProcessEnvironment.variables()) { sinks.append(hook) }
    }
}
