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

    /// With no interface, `pcp` asks the router of the default route, whatever the tunnel does;
    /// `auto` asks it too, standing back for the tunnel and the ProtonVPN app's file, unless
    /// `auto_router` is off.
    @Test func withoutAnInterfacePCPAsksTheDefaultRoutesRouter() throws {
        let explicit = SyncPlan(try loader(environment: ["PORTSYNC_SOURCE_STRATEGY": "pcp"]).load()).sources.settings
        #expect(explicit.map(\.identity) == [.pcp])
        let pcp = try #require(explicit.first as? PCPSourceSettings)
        #expect(pcp.interface == "" && pcp.standBack == nil && pcp.tunnelInterface == nil)
        #expect(pcp.summary == "PCP on the router of the default route (NAT-PMP if the gateway does not speak PCP)")
        let auto = SyncPlan(try loader(withTestDefaults: false).load()).sources.settings
        #expect(auto.map(\.identity) == [.protonFile, .natpmp, .pcp])
        let router = try #require(auto.last as? PCPSourceSettings)
        #expect(router.standBack == RouterGate.Settings(tunnel: "proton0", portFile: "/run/user/1000/Proton/VPN/forwarded_port", grace: .seconds(60)))
        #expect(router.summary.hasSuffix(", while proton0 is absent"))
        let off = SyncPlan(try loader(environment: ["PORTSYNC_SOURCE_AUTO_ROUTER": "false"], withTestDefaults: false).load()).sources.settings
        #expect(off.map(\.identity) == [.protonFile, .natpmp])
        let printed = ConfigurationPrinter.render(try loader(withTestDefaults: false).load())
        #expect(printed.contains("# source 3: PCP on the router of the default route (NAT-PMP if the gateway does not speak PCP), while proton0 is absent"), "\(printed)")
    }

    @Test func pcpsLeaseIsChecked() {
        #expect(loadError("[pcp]\nlease_seconds = 1\n") == "config.toml:2: lease_seconds 1 is out of range (2 to 86400 seconds)")
    }
}
