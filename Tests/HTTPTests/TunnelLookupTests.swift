import Foundation
import Glibc
@testable import HTTP
import Reactor
import TestSupport
import Testing

/// Names looked up through a tunnel (`LookupRoute`), in network namespaces the test makes: a
/// wg-quick tunnel (`wg0` = 10.2.0.2, every packet through it but the LAN's) beside a desktop's
/// LAN (`lan0` = 192.168.77.2, its router 192.168.77.1 answering DNS: a resolver reachable only
/// outside the tunnel), and a name server inside it at 10.0.0.243 (PIA's address) in the gateway
/// namespace. The two answer the same name with different addresses, so an answer says who gave it,
/// and each dnsmasq logs who asked it.
@Suite(.serialized, .enabled(if: NetworkLab.available && DNSMasq.available, "needs root, iproute2, python3 and dnsmasq"))
final class TunnelLookupTests {
    let loop: EventLoop
    let lab: NetworkLab
    let lanDNS: DNSMasq
    let tunnelDNS: DNSMasq
    let directory = makeTemporaryDirectory("tunnel-lookup")
    let route: LookupRoute
    static let outside = SocketAddress.v4(IPv4Address(192, 168, 77, 9), port: 443)
    static let inside = SocketAddress.v4(IPv4Address(198, 51, 100, 7), port: 443)

    init() throws {
        loop = try EventLoop(logger: LogCapture().logger)
        lab = try NetworkLab(style: .wgQuick(routeDelay: 0))
        try lab.addLAN()
        try lab.ip("-n", lab.gateway, "addr", "add", "10.0.0.243/32", "dev", "lo")
        lanDNS = try lab.inside(lab.lan!) { try DNSMasq(records: ["api.test": ["192.168.77.9"]], address: "192.168.77.1") }
        tunnelDNS = try lab.inside(lab.gateway) { try DNSMasq(records: ["api.test": ["198.51.100.7"]], address: "10.0.0.243") }
        let index = try lab.inClient { Int32(if_nametoindex("wg0")) }
        route = LookupRoute(interface: "wg0", index: index, address: IPv4Address(10, 2, 0, 2))
        try "".write(toFile: "\(directory)/hosts", atomically: true, encoding: .utf8)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A resolver configuration whose resolv.conf names `resolvConf`, one second per server.
    func configuration(resolvConf: [String], nameServers: [String] = []) throws -> ResolverConfiguration {
        try (resolvConf.map { "nameserver \($0)\n" }.joined() + "search home.lan\n")
            .write(toFile: "\(directory)/resolv.conf", atomically: true, encoding: .utf8)
        return ResolverConfiguration(hostsPath: "\(directory)/hosts", resolvConfPath: "\(directory)/resolv.conf", timeout: .seconds(1),
                                     nameServers: nameServers.map { SocketAddress(numericHost: $0, port: 53)! })
    }

    /// `api.test` looked up from the client namespace, through `route` when given.
    func lookUp(_ configuration: ResolverConfiguration, through route: LookupRoute?) throws -> Result<[SocketAddress], NameLookup.Failure>? {
        let resolver = HostResolver(loop: loop, name: "test.dns", configuration: configuration)
        var result: Result<[SocketAddress], NameLookup.Failure>?
        try lab.inClient {
            resolver.resolve("api.test", port: 443, through: route) { result = $0 }
            _ = try runUntil(loop, seconds: 8) { result != nil }
        }
        return result
    }

    @Test func aLookupThroughTheTunnelAsksItsNameServerThroughItAlone() throws {
        // What an unbound lookup does: resolv.conf's LAN resolver answers, outside the tunnel.
        let lan = try configuration(resolvConf: ["192.168.77.1"])
        #expect(try lookUp(lan, through: nil) == .success([Self.outside]))
        #expect(lanDNS.queries.contains("query[A] api.test from 192.168.77.2"), "\(lanDNS.queries)")
        let before = lanDNS.queries.count

        let routed = try configuration(resolvConf: ["192.168.77.1"], nameServers: ["10.0.0.243"])
        #expect(try lookUp(routed, through: route) == .success([Self.inside]))
        #expect(tunnelDNS.queries == ["query[A] api.test from 10.2.0.2", "query[AAAA] api.test from 10.2.0.2"], "\(tunnelDNS.queries)")
        #expect(lanDNS.queries.count == before, "nothing asked outside the tunnel: \(lanDNS.queries)")
    }

    @Test func resolvConfsNameServersAreAskedThroughTheTunnelOrNotAtAll() throws {
        // The LAN's resolver asked through the tunnel does not answer (nothing holds its address
        // beyond it); the one on this machine cannot be asked; the tunnel's own answers.
        var configuration = try configuration(resolvConf: ["127.0.0.53", "192.168.77.1", "10.0.0.243"])
        #expect(try lookUp(configuration, through: route) == .success([Self.inside]))
        #expect(tunnelDNS.queries.contains("query[A] api.test from 10.2.0.2"), "\(tunnelDNS.queries)")

        configuration = try self.configuration(resolvConf: ["192.168.77.1"])
        #expect(try lookUp(configuration, through: route)
            == .failure(NameLookup.Failure(description: "no answer in time from the name server 192.168.77.1, asked through wg0")))

        configuration = try self.configuration(resolvConf: ["127.0.0.53"])
        #expect(try lookUp(configuration, through: route) == .failure(NameLookup.Failure(
            description: "no name server to ask through wg0: \(directory)/resolv.conf names 127.0.0.53, on this machine or IPv6, which a query through the tunnel cannot reach")))
        #expect(lanDNS.queries == [], "nothing asked outside the tunnel: \(lanDNS.queries)")
        #expect(!tunnelDNS.queries.contains { $0.contains("home.lan") }, "no search domain through the tunnel: \(tunnelDNS.queries)")
    }

    @Test func aTruncatedAnswerIsAskedAgainOverTCPThroughTheTunnel() throws {
        // 192.168.77.1 both on the LAN (the router's dnsmasq) and, beyond the tunnel, in the
        // gateway: a name server there that truncates its UDP answer to A and answers over TCP.
        try lab.ip("-n", lab.gateway, "addr", "add", "192.168.77.1/32", "dev", "lo")
        let scripted = try lab.inside(lab.gateway) {
            try ScriptedNameServer(loop: loop, address: "192.168.77.1", answers: { query in
                [HostResolutionTests.response(to: query, truncated: NameLookupTests.type(of: query) == 1)]
            }, streamAnswers: { query in
                HostResolutionTests.response(to: query, [("api.test", 1, [198, 51, 100, 7])])
            })
        }
        let configuration = try configuration(resolvConf: ["10.0.0.243"], nameServers: ["192.168.77.1"])
        #expect(try lookUp(configuration, through: route) == .success([Self.inside]))
        #expect(scripted.queries.count == 2 && scripted.streamQueries.map { NameLookupTests.type(of: $0) } == [1],
                "both over UDP, A again over TCP, to the gateway's 192.168.77.1: \(scripted.queries.count), \(scripted.streamQueries.count)")
        #expect(lanDNS.queries == [] && tunnelDNS.queries == [], "resolv.conf's not asked, the LAN not at all")
    }
}
