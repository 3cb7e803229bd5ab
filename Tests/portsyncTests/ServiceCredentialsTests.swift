import Testing
@testable import portsync

/// What a systemd unit hands its service, read as systemd reads it.
@Suite struct ServiceCredentialsTests {
    @Test func theUnitAndItsDropInsInOrder() {
        let directory = TemporaryDirectory()
        directory.write("first/portsync.service", """
            [Unit]
            Description=LoadCredential=not:this
            [Service]
            # LoadCredential=commented:out
            LoadCredential=qbittorrent-password:/etc/portsync/qbittorrent-password
            LoadCredential = gluetun-api-key:gluetun-key
            LoadCredential=no-path
            """)
        directory.write("second/portsync.service", "[Service]\nLoadCredential=hidden:/by/the/first\n")
        directory.write("second/portsync.service.d/10-tv.conf", "[Service]\nLoadCredential=qbittorrent.tv-password:/etc/portsync/tv\n")
        directory.write("first/portsync.service.d/20-reset.conf", "[Service]\nLoadCredential=\nLoadCredential=deluge-password:/srv/deluge\n")
        let search = ["\(directory.path)/first", "\(directory.path)/second"]
        let found = ServiceCredentials.find(unit: "portsync.service", searchPath: search)
        #expect(found?.unitFile == "\(directory.path)/first/portsync.service")
        #expect(found?.sources.map { "\($0.id)=\($0.path)" } == ["deluge-password=/srv/deluge"], "the drop-ins by name: 10 adds, 20 clears and adds")

        directory.write("first/portsync.service.d/20-reset.conf", "[Service]\n")
        #expect(ServiceCredentials.find(unit: "portsync.service", searchPath: search)?.sources.map { "\($0.id)=\($0.path)" } == [
            "qbittorrent-password=/etc/portsync/qbittorrent-password", "gluetun-api-key=/etc/credstore/gluetun-key",
            "qbittorrent.tv-password=/etc/portsync/tv",
        ])
        #expect(ServiceCredentials.find(unit: "other.service", searchPath: search) == nil)
    }

    @Test func systemdsUnitPathVariable() {
        #expect(ServiceCredentials.searchPath(environment: [:]).first == "/etc/systemd/system")
        #expect(ServiceCredentials.searchPath(environment: ["SYSTEMD_UNIT_PATH": "/a:/b"]) == ["/a", "/b"])
        #expect(ServiceCredentials.searchPath(environment: ["SYSTEMD_UNIT_PATH": "/a:"]).prefix(2) == ["/a", "/etc/systemd/system"])
    }
}
