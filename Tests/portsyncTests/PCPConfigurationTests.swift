import Reactor
import Testing
import Watchers
@testable import portsync

/// `strategy = "pcp"` and `[pcp]`: the keys reach `PCPSettings`, and the interface is required.
@Suite struct PCPConfigurationTests {
    @Test func thePCPSectionMakesOnePCPSource() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("config.toml", """
            [source]
            strategy = "pcp"
            [pcp]
            interface = "eth0"
            gateway = "192.168.1.1"
            lease_seconds = 3600
            internal_port = 6881
            natpmp_fallback = false
            delete_on_exit = true
            """)
        let loaded = try loader(file: file).load()
        let sources = SyncPlan(loaded).sources.settings
        #expect(sources.count == 1)
        let pcp = try #require(sources.first as? PCPSourceSettings)
        #expect(pcp == PCPSourceSettings(pcp: PCPSettings(gateway: IPv4Address(192, 168, 1, 1), lease: .seconds(3600), internalPort: 6881,
                                                          fallBackToNATPMP: false), interface: "eth0", deleteOnExit: true))
        #expect(pcp.identity == .pcp && pcp.identity.rank == .lease)
        let printed = ConfigurationPrinter.render(loaded)
        #expect(printed.contains("delete_on_exit = true".padded(to: 52) + "# \(file):9"), "\(printed)")
    }

    @Test func pcpNeedsItsInterface() {
        #expect(loadError("[source]\nstrategy = \"pcp\"\n") == "config.toml:2: strategy \"pcp\" needs the interface that faces the router: set [pcp] interface")
        #expect(loadError("[pcp]\nlease_seconds = 1\n") == "config.toml:2: lease_seconds 1 is out of range (2 to 86400 seconds)")
    }
}
