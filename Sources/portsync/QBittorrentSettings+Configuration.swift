import Reactor
import Sinks

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
        self.init(url: qbittorrent.url, authentication: authentication, disableUPnP: qbittorrent.disableUPnP,
                  interface: qbittorrent.bindInterface ? configuration.natpmp.interface : nil,
                  checkInterval: .seconds(qbittorrent.checkSeconds))
    }
}
