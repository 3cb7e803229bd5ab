import HTTP
import Reactor
import Testing
@testable import Watchers

/// What the fuzz targets (Fuzz/) found in the watchers, kept as tests. Each input is also in the
/// target's corpus, Fuzz/Corpus/<target>/regression-*.
@Suite struct WatchersFuzzFindingsTests {
    /// Fuzz/Corpus/GluetunSession/regression-control-character-in-location: a redirect's
    /// Location went into the next request line as it was, CR, spaces and all.
    @Test(arguments: ["/v1/portforward\r\nX-Injected: 1", "/v1/port forward", "/v1/\u{0}", "http://127.0.0.1:8000/v1/a b", "/v1/caf\u{E9}"])
    func aRedirectToAnUnusableLocationIsNotFollowed(location: String) throws {
        let url = try HTTPURL(parsing: "http://127.0.0.1:8000")
        var session = GluetunSession(settings: GluetunSettings(url: url), jitter: { 0 })
        let now = Instant(nanoseconds: 1_000_000_000)
        _ = session.handle(.start, now: now)
        let effects = session.handle(.responseReceived(HTTPResponse(status: 301, headers: ["Location": location])), now: now)
        #expect(!effects.contains { if case .send = $0 { true } else { false } })
        #expect(session.lastProblem == "GET /v1/portforward answered 301 without a usable Location")
        #expect(session.nextDeadline == now + .seconds(10))
    }
}
