import Domain
import Reactor
import Sinks
import Watchers

/// What the configuration asks for, decided once: the sources of the port (in the order they
/// are tried where one is enough) and the clients whose port is kept. `run`, `once`, `doctor`
/// and a reload all use this one value; the strategy is looked at only here.
struct SyncPlan {
    /// The sources and what runs when one keeps failing.
    struct Sources {
        var settings: [any PortSourceSettings]
        var recovery: Recovery?

        /// The same sources with the same settings: a reload keeps them running.
        func isSame(as other: Sources) -> Bool {
            settings.count == other.settings.count && zip(settings, other.settings).allSatisfy { $0.isSame(as: $1) }
                && recovery == other.recovery
        }
    }

    /// `[natpmp] recovery_command`: run after `after` failed cycles in a row of `source`, at most
    /// once per `cooldown`.
    struct Recovery: Equatable {
        var source: PortObservation.Source
        var command: String
        var after: Int
        var cooldown: Duration
    }

    var sources: Sources
    var sinks: [any PortSinkSettings]
    /// `[notify]`; nil: off.
    var notify: NotifySettings?

    /// `auto`: the ProtonVPN file (an immediate hint) and NAT-PMP on the interface (the
    /// authority, and what keeps the lease alive), each as it becomes available; on a network
    /// with no tunnel, PCP (then NAT-PMP) on the router the default route leads to, which stands
    /// back while the tunnel (or the ProtonVPN app's file) is there (`RouterGate`).
    init(_ loaded: LoadedConfiguration) {
        let configuration = loaded.configuration
        let strategy = configuration.source.strategy
        var settings: [any PortSourceSettings] = []
        var recovery: Recovery?
        if strategy == .auto || strategy == .file {
            settings.append(PortFileSettings(name: "proton.file", path: configuration.proton.portFile, identity: .protonFile,
                                             advice: "connect with port forwarding on in the ProtonVPN app (a P2P server)"))
        }
        if strategy == .gluetun {
            let gluetun = configuration.gluetun
            settings.append(gluetun.portFile.isEmpty
                ? GluetunSettings(configuration, loaded.credentials)
                : PortFileSettings(name: "gluetun.file", path: gluetun.portFile, identity: .gluetunFile, portIndex: gluetun.portIndex,
                                   advice: "enable VPN_PORT_FORWARDING in Gluetun, with a provider and server that forward ports"))
        }
        if strategy == .auto || strategy == .natpmp {
            let natpmp = configuration.natpmp
            settings.append(NATPMPSourceSettings(natpmp: NATPMPSettings(configuration), interface: natpmp.interface,
                                                 deleteOnExit: natpmp.deleteOnExit))
            if !natpmp.recoveryCommand.isEmpty {
                recovery = Recovery(source: .natpmp, command: natpmp.recoveryCommand, after: natpmp.recoveryAfter,
                                    cooldown: .seconds(natpmp.recoveryCooldownSeconds))
            }
        }
        if strategy == .staticPort, let port = Port(configuration.staticPort.port) {
            settings.append(StaticSourceSettings(port: port))
        }
        if strategy == .perfectPrivacy {
            settings.append(PerfectPrivacySettings(interface: configuration.perfectPrivacy.interface,
                                                   portIndex: configuration.perfectPrivacy.portIndex))
        }
        if strategy == .command {
            let command = configuration.command
            settings.append(CommandSourceSettings(argv: command.argv, mode: command.stream ? .stream : .interval(.seconds(command.intervalSeconds)),
                                                  timeout: .seconds(command.timeoutSeconds),
                                                  environment: ChildEnvironment.passedOn(ProcessEnvironment.variables()), portIndex: command.portIndex))
        }
        if strategy == .pia, let pia = PIASettings(configuration, loaded.credentials) {
            settings.append(pia)
        }
        if strategy == .pcp || strategy == .auto && configuration.source.autoRouter {
            let standBack = strategy == .auto
                ? RouterGate.Settings(tunnel: configuration.natpmp.interface, portFile: configuration.proton.portFile) : nil
            settings.append(PCPSourceSettings(pcp: PCPSettings(configuration), interface: configuration.pcp.interface,
                                              deleteOnExit: configuration.pcp.deleteOnExit, standBack: standBack))
        }
        if strategy == .privateVPN {
            let privateVPN = configuration.privateVPN
            settings.append(PrivateVPNSettings(interface: privateVPN.interface, url: privateVPN.url, tls: privateVPN.tls.options,
                                               nameServers: privateVPN.nameServers))
        }
        sources = Sources(settings: settings, recovery: recovery)
        // The interface of the first source that has one (auto: NAT-PMP's); [natpmp] interface
        // for a source with none of its own (a static port, a command).
        let tunnel = settings.lazy.compactMap(\.tunnelInterface).first ?? configuration.natpmp.interface
        sinks = configuration.clients.map { $0.sinkSettings(loaded.credentials, interface: tunnel) }
        if let hook = HookSettings(configuration, environment: ProcessEnvironment.variables()) { sinks.append(hook) }
        notify = NotifySettings(configuration, loaded.credentials)
    }
}
