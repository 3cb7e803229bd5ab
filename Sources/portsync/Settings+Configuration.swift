import Reactor
import Sinks
import Watchers

extension QBittorrentSettings {
    /// The sink's settings from the configuration: an API key wins over a password; with
    /// neither, qBittorrent must let this client in without a login.
    init(_ configuration: Configuration, _ credentials: Credentials) {
        let qbittorrent = configuration.qbittorrent
        let authentication: Authentication
        if let key = credentials.qbittorrentAPIKey {
            authentication = .apiKey(key)
        } else if let password = credentials.qbittorrentPassword {
            authentication = .password(username: qbittorrent.username, password: password)
        } else {
            authentication = .none
        }
        self.init(url: qbittorrent.url, tls: qbittorrent.tls.options, authentication: authentication, disableUPnP: qbittorrent.disableUPnP,
                  interface: qbittorrent.bindInterface ? configuration.natpmp.interface : nil,
                  checkInterval: .seconds(qbittorrent.checkSeconds))
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
