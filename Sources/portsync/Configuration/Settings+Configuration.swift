import Domain
import Reactor
import Sinks
import Watchers

extension ClientSection {
    /// The sink's settings for this client, with its secrets; `interface`: the source's own
    /// (`PortSourceSettings.tunnelInterface`), which qBittorrent binds to with `bind_interface`.
    func sinkSettings(_ credentials: Credentials, interface: String) -> any PortSinkSettings {
        let password = credentials[label, .password]
        switch values {
        case .qbittorrent(let values):
            return QBittorrentSettings(values, label: label, password: password, apiKey: credentials[label, .apiKey], interface: interface)
        case .transmission(let values):
            return TransmissionSettings(label: label, client: ClientSettings(values, password: password), portIndex: values.portIndex)
        case .deluge(let values):
            return DelugeSettings(label: label, client: ClientSettings(values, password: password), portIndex: values.portIndex)
        }
    }
}

extension QBittorrentSettings {
    /// The sink's settings from the configuration: an API key wins over a password; with
    /// neither, qBittorrent must let this client in without a login.
    init(_ qbittorrent: Configuration.QBittorrent, label: String, password: Secret?, apiKey: Secret?, interface: String) {
        let authentication: Authentication
        if let apiKey {
            authentication = .apiKey(apiKey)
        } else if let password {
            authentication = .password(username: qbittorrent.username, password: password)
        } else {
            authentication = .none
        }
        self.init(url: qbittorrent.url, tls: qbittorrent.tls.options, authentication: authentication, disableUPnP: qbittorrent.disableUPnP,
                  interface: qbittorrent.bindInterface ? interface : nil,
                  checkInterval: .seconds(qbittorrent.checkSeconds), label: label, portIndex: qbittorrent.portIndex,
                  reannounce: qbittorrent.reannounce)
    }
}

extension ClientSettings {
    init(_ client: Configuration.TorrentClient, password: Secret?) {
        self.init(url: client.url, tls: client.tls.options, username: client.username, password: password, checkInterval: .seconds(client.checkSeconds),
                  reannounce: client.reannounce)
    }
}

extension HookSettings {
    /// The hook's settings, with what it inherits of `environment` (`ChildEnvironment.passedOn`); nil without
    /// a command.
    init?(_ configuration: Configuration, environment: [String: String]) {
        let hook = configuration.hook
        guard !hook.command.isEmpty else { return nil }
        self.init(command: hook.command, timeout: .seconds(hook.timeoutSeconds), environment: ChildEnvironment.passedOn(environment))
    }
}

extension NATPMPSettings {
    init(_ configuration: Configuration) {
        let natpmp = configuration.natpmp
        self.init(gateway: natpmp.gateway, lease: .seconds(natpmp.leaseSeconds), renewInterval: .seconds(natpmp.renewSeconds),
                  internalPort: natpmp.internalPort == 0 ? nil : UInt16(natpmp.internalPort),
                  zeroInternalPort: natpmp.zeroInternalPort)
    }
}

extension GluetunSettings {
    init(_ configuration: Configuration, _ credentials: Credentials) {
        let gluetun = configuration.gluetun
        self.init(url: gluetun.url, tls: gluetun.tls.options, apiKey: credentials.gluetunAPIKey, username: gluetun.username.isEmpty ? nil : gluetun.username,
                  password: credentials.gluetunPassword, pollInterval: .seconds(gluetun.pollSeconds), portIndex: gluetun.portIndex)
    }
}

extension PCPSettings {
    init(_ configuration: Configuration) {
        let pcp = configuration.pcp
        self.init(gateway: pcp.gateway, lease: .seconds(pcp.leaseSeconds), internalPort: pcp.internalPort == 0 ? nil : UInt16(pcp.internalPort),
                  fallBackToNATPMP: pcp.natpmpFallback, ipv6: pcp.ipv6)
    }
}
