import Domain
import HTTP
import Reactor
import Testing
import Watchers

@Suite struct PrivateVPNAnswerTests {
    @Test(arguments: [
        (#"{"supported":true,"status":"Port 61527 UDP/TCP"}"#, PrivateVPNAnswer.port(Port(61527)!)),
        (#"{"status":"Port 1 UDP/TCP","supported":true,"extra":[1,2]}"#, .port(Port(1)!)),
        (#" {"supported":false} "#, .unsupported),
        (#"{"supported":false,"status":"Port 61527 UDP/TCP"}"#, .unsupported),
    ])
    func readsThePortOrNone(body: String, answer: PrivateVPNAnswer) throws {
        #expect(try PrivateVPNAnswer.parse(Array(body.utf8)) == answer)
    }

    @Test(arguments: [
        (#"{"supported":true,"status":"no port here"}"#, #"the status "no port here" names no port (1 to 65535)"#),
        (#"{"supported":true,"status":"Port 91527 UDP/TCP"}"#, #"the status "Port 91527 UDP/TCP" names no port (1 to 65535)"#),
        (#"{"supported":true,"status":"Port 0 UDP/TCP"}"#, #"the status "Port 0 UDP/TCP" names no port (1 to 65535)"#),
        (#"{"supported":true,"status":"Port 6152712 UDP/TCP"}"#, #"the status "Port 6152712 UDP/TCP" names no port (1 to 65535)"#),
        (#"{"supported":true,"status":"Port 99999999999999999999999 UDP/TCP"}"#,
         #"the status "Port 99999999999999999999999 UDP/TCP" names no port (1 to 65535)"#),
        (#"{"supported":true}"#, #"the answer is supported but has no "status" string: {"supported":true}"#),
        (#"{"supported":true,"status":61527}"#, #"the answer is supported but has no "status" string: {"status":61527,"supported":true}"#),
        (#"{"supported":"yes"}"#, #"the answer has no "supported" true or false: {"supported":"yes"}"#),
        (#"{}"#, #"the answer has no "supported" true or false: {}"#),
        ("", #"the answer is not a JSON object (unexpected end of input at byte 0): """#),
        ("<html>Bad Gateway</html>", #"the answer is not a JSON object (unexpected character at byte 0): "<html>Bad Gateway</html>""#),
        ("[1]", #"the answer is not a JSON object (an array): "[1]""#),
    ])
    func refusesAnAnswerWithoutAPort(body: String, message: String) {
        #expect(throws: PrivateVPNAnswer.ParseError(message: message)) { try PrivateVPNAnswer.parse(Array(body.utf8)) }
    }
}

@Suite struct PrivateVPNSessionTests {
    let settings = PrivateVPNSettings(interface: "tun0", url: try! HTTPURL(parsing: "https://api.test:8443/v3/Api/port"))
    let start = Instant(nanoseconds: 1_000_000_000)
    let first = IPv4Address(10, 96, 3, 37)
    let second = IPv4Address(10, 96, 5, 9)

    static func ok(_ body: String) -> PrivateVPNSession.Input {
        .responseReceived(HTTPResponse(status: 200, body: Array(body.utf8)))
    }

    static let port61527 = ok(#"{"supported":true,"status":"Port 61527 UDP/TCP"}"#)

    func sent(_ effects: [PrivateVPNSession.Effect]) -> [String] {
        effects.compactMap { effect in
            guard case .send(let request, let from) = effect else { return nil }
            return "\(request.method) \(request.target) Host=\(request.headers["Host"] ?? "") from \(from)"
        }
    }

    func ports(_ effects: [PrivateVPNSession.Effect]) -> [String] {
        effects.compactMap { effect in
            guard case .port(let port, let reason) = effect else { return nil }
            return "\(port.map(String.init(describing:)) ?? "none") \(reason.rawValue)"
        }
    }

    @Test func asksAboutTheAddressFromItAndNamesThePortOnce() {
        var session = PrivateVPNSession(settings: settings)
        #expect(session.handle(.deadlineReached, now: start).isEmpty, "nothing is asked before the tunnel has an address")
        #expect(sent(session.handle(.tunnelAddress(first), now: start)) == ["GET /v3/Api/port?ip[]=10.96.3.37 Host=api.test:8443 from 10.96.3.37"])
        #expect(session.handle(.tunnelAddress(first), now: start).isEmpty, "the same address is not asked twice")
        #expect(ports(session.handle(Self.port61527, now: start)) == ["61527 source-changed"])
        #expect(session.outcome == .forwarding(Port(61527)!))
        // No renewal: the same address is asked again on the slow interval, and the same port is not reported again.
        #expect(session.nextDeadline == start + .seconds(900))
        #expect(session.handle(.deadlineReached, now: start + .seconds(899)).isEmpty)
        #expect(sent(session.handle(.deadlineReached, now: start + .seconds(900))).count == 1)
        #expect(ports(session.handle(Self.port61527, now: start + .seconds(900))) == [])
        #expect(session.nextDeadline == start + .seconds(1800))
    }

    @Test func anotherAddressIsAnotherServerAskedAtOnce() {
        var session = PrivateVPNSession(settings: settings)
        _ = session.handle(.tunnelAddress(first), now: start)
        _ = session.handle(Self.port61527, now: start)
        // The tunnel goes away: nothing is taken back, nothing asked.
        #expect(session.handle(.tunnelAddress(nil), now: start + .seconds(5)).isEmpty)
        #expect(session.nextDeadline == nil && session.outcome == nil)
        // It comes back with another address: asked at once; a request in flight for the old one is dropped.
        #expect(sent(session.handle(.tunnelAddress(second), now: start + .seconds(6))) == ["GET /v3/Api/port?ip[]=10.96.5.9 Host=api.test:8443 from 10.96.5.9"])
        #expect(ports(session.handle(Self.ok(#"{"supported":true,"status":"Port 40123 UDP/TCP"}"#), now: start + .seconds(7))) == ["40123 tunnel-recreated"])
        #expect(session.handle(Self.port61527, now: start + .seconds(8)).isEmpty, "an answer nobody waits for")
    }

    @Test func aServerThatForwardsNoneTakesThePortBack() {
        var session = PrivateVPNSession(settings: settings)
        _ = session.handle(.tunnelAddress(first), now: start)
        _ = session.handle(Self.port61527, now: start)
        _ = session.handle(.tunnelAddress(second), now: start + .seconds(1))
        let effects = session.handle(Self.ok(#"{"supported":false}"#), now: start + .seconds(2))
        #expect(ports(effects) == ["none source-emptied"])
        #expect(effects.contains { if case .log(.warning, _) = $0 { true } else { false } })
        #expect(session.outcome == .unsupported)
        #expect(session.nextDeadline == start + .seconds(902), "asked again on the slow interval, not hammered")
        #expect(ports(session.handle(.deadlineReached, now: start + .seconds(902))) == [])
        #expect(ports(session.handle(Self.ok(#"{"supported":false}"#), now: start + .seconds(902))) == [], "none is said once")
    }

    @Test(arguments: [
        (PrivateVPNSession.Input.responseReceived(HTTPResponse(status: 503, body: Array("down".utf8))),
         #"PrivateVPN's port API answered 503 "down""#),
        (PrivateVPNSessionTests.ok(#"{"supported":true,"status":"no port here"}"#),
         #"PrivateVPN's port API: the status "no port here" names no port (1 to 65535)"#),
        (PrivateVPNSessionTests.ok("garbage"),
         #"PrivateVPN's port API: the answer is not a JSON object (unexpected character at byte 0): "garbage""#),
        (.requestFailed(.timedOut), "PrivateVPN's port API at https://api.test:8443/v3/Api/port failed: no answer in time"),
        (.requestFailed(.resolve("cannot resolve \"api.test\": no such name")),
         #"PrivateVPN's port API at https://api.test:8443/v3/Api/port is unreachable: cannot resolve "api.test": no such name"#),
    ])
    func aFailureKeepsThePortAndBacksOff(failure: PrivateVPNSession.Input, message: String) {
        var session = PrivateVPNSession(settings: settings)
        _ = session.handle(.tunnelAddress(first), now: start)
        _ = session.handle(Self.port61527, now: start)
        var now = start + .seconds(900)
        _ = session.handle(.deadlineReached, now: now)
        var delays: [Int64] = []
        for attempt in 1...9 {
            let effects = session.handle(failure, now: now)
            #expect(ports(effects) == [], "a failure reports nothing: the clients keep 61527")
            let levels = effects.compactMap { if case .log(let level, _) = $0 { level } else { nil } }
            #expect(levels == [attempt == 1 ? .error : .debug], "said once, then quietly")
            guard case .failed(let problem)? = session.outcome, let deadline = session.nextDeadline else {
                Issue.record("no problem or no retry: \(String(describing: session.outcome))")
                return
            }
            #expect(problem.message == message)
            #expect(!problem.fix.isEmpty)
            #expect(session.failureStreak == attempt)
            delays.append((deadline - now).components.seconds)
            now = deadline
            #expect(sent(session.handle(.deadlineReached, now: now)).count == 1)
        }
        #expect(delays == [2, 4, 8, 16, 32, 64, 128, 256, 300])
        if case .requestFailed(.resolve) = failure, case .failed(let problem)? = session.outcome {
            #expect(problem.fix.hasPrefix("set [privatevpn] nameserver to a name server reached through tun0"), "\(problem.fix)")
        }
        let effects = session.handle(Self.port61527, now: now)
        #expect(ports(effects) == [] && session.failureStreak == 0 && session.outcome == .forwarding(Port(61527)!))
        #expect(session.nextDeadline == now + .seconds(900))
    }
}
