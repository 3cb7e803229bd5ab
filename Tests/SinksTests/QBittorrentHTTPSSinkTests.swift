import Domain
import HTTP
import Reactor
@testable import Sinks
import TestSupport
import Testing

/// The sink against a real qbittorrent-nox serving its WebUI over HTTPS: the latency path keeps
/// one TLS connection for a burst, as it does over plain HTTP.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available && TestCertificates.available,
                             "needs qbittorrent-nox, openssl and libssl3 (./scripts/test installs them as root)"))
final class QBittorrentHTTPSSinkTests {
    let loop: EventLoop
    let log = LogCapture(level: .debug, trace: true)
    let certificates: TestCertificates
    let qbittorrent: QBittorrentInstance

    init() throws {
        loop = try EventLoop(logger: log.logger)
        certificates = try TestCertificates()
        qbittorrent = try QBittorrentInstance(https: (certificate: certificates.server, key: certificates.key))
    }

    @Test func aBurstOfChangesGoesOverOneTLSConnection() throws {
        let settings = QBittorrentSettings(url: qbittorrent.url, tls: TLSOptions(verification: .chain(caFile: certificates.caCertificate)),
                                           authentication: .password(username: QBittorrentInstance.username,
                                                                     password: Secret(value: QBittorrentInstance.password, origin: "test")),
                                           reannounce: false)  // connections are counted here; the re-announce has tests of its own
        let sink = QBittorrentSink(loop: loop, settings: settings)
        func verified(_ port: Port) throws -> Bool {
            try runUntil(loop, seconds: 15) { sink.status.health == .verified && sink.status.verifiedPort == port }
        }
        // A burst: the second change comes while the first one's login is on its way.
        let first = Port(freePort())!
        sink.apply(first)
        try runUntil(loop, seconds: 5) { sink.counters.requests >= 1 }
        let second = Port(freePort())!
        sink.apply(second)
        #expect(try verified(second))
        #expect(sink.connectionsOpened == 1, "login, version, preferences and the change on one TLS connection")

        // Done for now, the sink closed its connection: the next change opens a new one, with a
        // full handshake (qBittorrent 4.5.2's WebUI issues no session tickets; proxies do).
        let third = Port(freePort())!
        sink.apply(third)
        #expect(try verified(third))
        #expect(sink.connectionsOpened == 2 && sink.tlsResumptions == 0, "\(sink.connectionsOpened) connections, \(sink.tlsResumptions) resumed; \(log.text)")
    }
}
