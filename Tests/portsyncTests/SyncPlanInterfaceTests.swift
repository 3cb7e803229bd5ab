import Domain
import Sinks
import Testing
import Watchers
@testable import portsync

/// `bind_interface` binds qBittorrent to the interface the source speaks through, which each
/// source's settings name (`tunnelInterface`): `[pcp]`, `[perfectprivacy]`, `[privatevpn]` and
/// `[pia]` have their own `interface`, and `[natpmp] interface` is only NAT-PMP's (and the one for
/// a source with no tunnel of its own).
@Suite struct SyncPlanInterfaceTests {
    func boundInterface(_ tables: String) throws -> String? {
        let directory = TemporaryDirectory()
        directory.write("pia-password", "secret\n")
        let file = directory.write("config.toml", tables + """

            [natpmp]
            interface = "natpmp7"
            [qbittorrent]
            bind_interface = true
            """)
        let plan = SyncPlan(try loader(file: file).load())
        return try #require(plan.sinks.first as? QBittorrentSettings).interface
    }

    @Test(arguments: [
        ("pcp", "[pcp]\ninterface = \"eth3\"\n", "eth3"),
        ("perfectprivacy", "[perfectprivacy]\ninterface = \"tun4\"\n", "tun4"),
        ("privatevpn", "[privatevpn]\ninterface = \"tun5\"\n", "tun5"),
        ("pia", "[pia]\ninterface = \"wg6\"\nusername = \"p1\"\npassword_file = \"pia-password\"\nserver_name = \"x1\"\n", "wg6"),
        ("natpmp", "", "natpmp7"),
        ("auto", "", "natpmp7"),
        ("static", "[static]\nport = 6881\n", "natpmp7"),
    ])
    func qBittorrentIsBoundToTheSourcesOwnInterface(strategy: String, table: String, expected: String) throws {
        #expect(try boundInterface("[source]\nstrategy = \"\(strategy)\"\n" + table) == expected)
    }

    @Test func eachSourceSaysItsTunnel() {
        #expect(PerfectPrivacySettings(interface: "tun4").tunnelInterface == "tun4")
        #expect(NATPMPSourceSettings(natpmp: NATPMPSettings(), interface: "wg0").tunnelInterface == "wg0")
        #expect(StaticSourceSettings(port: Port(6881)!).tunnelInterface == nil)
    }
}
