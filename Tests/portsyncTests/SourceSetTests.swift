import Domain
import Glibc
import Reactor
import TestSupport
import Testing
import Watchers
@testable import portsync

/// The set knows its sources only through `PortSource`: a scripted one stands in for any (the
/// real ones are tested with their real files, gateways and servers), to show what the set
/// makes of what a source says.
@Suite struct SourceSetTests {
    /// A source whose status the test sets; `onStatusChange` is called for each.
    final class ScriptedSource: PortSource {
        let identity: PortObservation.Source
        var onObservation: ((PortObservation) -> Void)?
        var onStatusChange: (() -> Void)?
        private(set) var verified: [Port] = []
        var status = SourceStatus() {
            didSet { onStatusChange?() }
        }

        init(_ identity: PortObservation.Source) {
            self.identity = identity
        }

        func start() throws {}
        func stop(final: Bool) {}
        func clientsVerified(_ port: Port) { verified.append(port) }
    }

    /// Hands out the sources it made, for the test to script.
    final class Factory: @unchecked Sendable {
        var made: [ScriptedSource] = []
    }

    struct ScriptedSettings: PortSourceSettings, Equatable {
        let identity: PortObservation.Source
        let factory: Factory
        var summary: String { identity.rawValue }

        func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
            let source = ScriptedSource(identity)
            factory.made.append(source)
            return source
        }

        static func == (left: ScriptedSettings, right: ScriptedSettings) -> Bool { left.identity == right.identity }
    }

    static let leased = PortObservation.Source("leased", rank: .lease, title: "leased", spokenName: "the leased source")
    static let hinted = PortObservation.Source("hinted", rank: .hint, title: "hinted", spokenName: "the hinted source")

    func tunnel(index: Int32) -> Tunnel {
        Tunnel(interface: "wg0", index: index, address: IPv4Address(10, 2, 0, 2), gateway: IPv4Address(10, 2, 0, 1), gatewayRule: .lastByteOne)
    }

    func makeSet(_ identities: [PortObservation.Source], recovery: SyncPlan.Recovery? = nil) throws
        -> (SourceSet, [ScriptedSource], EventLoop) {
        let loop = try EventLoop(logger: LogCapture().logger)
        let factory = Factory()
        let set = SourceSet(loop: loop, plan: SyncPlan.Sources(settings: identities.map { ScriptedSettings(identity: $0, factory: factory) },
                                                                recovery: recovery))
        try set.start { _ in SourceMemory() }
        return (set, factory.made, loop)
    }

    @Test func aTunnelThatComesBackIsSaidOncePerReturn() throws {
        let (set, sources, _) = try makeSet([Self.leased])
        var back: [Int32] = []
        set.onTunnelBack = { back.append($0.index) }
        let source = sources[0]
        source.status.link = .unusable("wg0 does not exist")
        source.status.link = .usable(tunnel(index: 4))
        #expect(back.isEmpty, "the first time is not a return")
        source.status.failureStreak = 1  // another change, same tunnel
        #expect(back.isEmpty)
        source.status.link = .unusable("wg0 is down")
        source.status.link = .usable(tunnel(index: 5))
        source.status.link = .usable(tunnel(index: 6))
        #expect(back == [5, 6], "each return and each recreation, once")
        withExtendedLifetime(set) {}
    }

    @Test func settledAndTheTunnelsSayComeFromTheStatuses() throws {
        var (set, sources, _) = try makeSet([Self.hinted, Self.leased])
        sources[1].status.settled = false
        sources[1].status.link = .awaitingRoute(tunnel(index: 3))
        #expect(!set.settled && !set.tunnelDecides, "two sources: a tunnel down is not the health")
        sources[1].status.settled = true
        #expect(set.settled && set.link == .awaitingRoute(tunnel(index: 3)))
        set.clientsVerified(Port(40000)!)
        #expect(sources.map(\.verified) == [[Port(40000)!], [Port(40000)!]])

        (set, sources, _) = try makeSet([Self.leased])
        #expect(!set.tunnelDecides, "no tunnel seen yet")
        sources[0].status.link = .usable(tunnel(index: 3))
        #expect(set.tunnelDecides, "the only source speaks through the tunnel")
        withExtendedLifetime(set) {}
    }

    /// The recovery command belongs to one source: it hears that source's streak grow, never
    /// another's, and not the same streak twice.
    @Test func theRecoveryCommandHearsItsOwnSourcesStreakGrow() throws {
        let marker = TemporaryDirectory()
        let (set, sources, loop) = try makeSet([Self.hinted, Self.leased],
                                             recovery: SyncPlan.Recovery(source: Self.leased, command: "echo ran >> \(marker.path)/runs",
                                                                         after: 2, cooldown: .seconds(0)))
        func runs() -> Int { ((try? String(contentsOfFile: "\(marker.path)/runs", encoding: .utf8)) ?? "").split(separator: "\n").count }
        sources[0].status.failureStreak = 5
        sources[1].status.failureStreak = 1
        sources[1].status.detail = "a change, the same streak"
        _ = try loop.run(within: .milliseconds(300)) { false }
        #expect(runs() == 0, "the other source's streak, and one below the threshold")
        sources[1].status.failureStreak = 2
        #expect(try loop.run(within: .seconds(5)) { runs() == 1 })
        sources[1].status.detail = "still 2"
        _ = try loop.run(within: .milliseconds(300)) { false }
        #expect(runs() == 1, "the same streak again is no new failure")
        withExtendedLifetime(set) {}
    }
}
