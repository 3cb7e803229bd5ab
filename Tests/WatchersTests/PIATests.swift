import Domain
import Foundation
@testable import HTTP
import Reactor
import TestSupport
import Testing
@testable import Watchers

/// PIA's answers in the shapes its API sends (pia-foss/manual-connections, Gluetun's
/// privateinternetaccess/portforward.go).
enum PIAShapes {
    static let unixStart: Int64 = 1_800_000_000  // 2027-01-15T08:00:00Z

    static func rfc3339(_ unix: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        let text = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(unix)))
        return text.replacingOccurrences(of: "Z", with: ".788870376Z")
    }

    /// base64 of `{"token":…,"port":N,"expires_at":…}`, as getSignature's payload.
    static func payload(port: Int, expiresAt: Int64, token: String = "tok-abcdef") -> String {
        Data(#"{"token":"\#(token)","port":\#(port),"expires_at":"\#(rfc3339(expiresAt))"}"#.utf8).base64EncodedString()
    }

    static func signatureAnswer(port: Int, expiresAt: Int64, signature: String = "sig-0123") -> String {
        #"{"status":"OK","payload":"\#(payload(port: port, expiresAt: expiresAt))","signature":"\#(signature)"}"#
    }

    static let bound = #"{"status":"OK","message":"port scheduled for add"}"#
    static func busy(_ port: Int) -> String { #"{"status":"ERROR","message":"port \#(port) is busy. Try another one."}"# }
}

@Suite struct PIAAnswerTests {
    @Test func theShapesPIASends() throws {
        #expect(try PIAAnswer.token(Array(#"{"token":"abc"}"#.utf8)) == "abc")
        let expires = PIAShapes.unixStart + 60 * 86_400
        let granted = try PIAAnswer.signature(Array(PIAShapes.signatureAnswer(port: 47123, expiresAt: expires).utf8))
        #expect(granted.port == Port(47123))
        #expect(granted.expiresAt == expires)
        #expect(granted.signature == "sig-0123")
        #expect(try PIAAnswer.binding(HTTPResponse(status: 200, body: Array(PIAShapes.bound.utf8))) == .bound)
        #expect(try PIAAnswer.binding(HTTPResponse(status: 409, body: Array(PIAShapes.busy(47123).utf8)))
            == .refused("port 47123 is busy. Try another one."))
    }

    @Test func timestamps() {
        #expect(PIAAnswer.unixTime(rfc3339: "1970-01-01T00:00:00Z") == 0)
        #expect(PIAAnswer.unixTime(rfc3339: "2027-01-15T08:00:00.788870376Z") == PIAShapes.unixStart)
        #expect(PIAAnswer.unixTime(rfc3339: "2027-01-15T10:00:00+02:00") == PIAShapes.unixStart)
        #expect(PIAAnswer.unixTime(rfc3339: "2000-02-29T00:00:00Z") == 951_782_400)
        for bad in ["", "2027-01-15", "2027-13-01T00:00:00Z", "2027-01-15T08:00:00", "2027-01-15T08:00:00.Z", "2027-01-15T08:00:00Zjunk"] {
            #expect(PIAAnswer.unixTime(rfc3339: bad) == nil, "\(bad)")
        }
    }

    @Test(arguments: [
        (#"{"status":"ERROR","message":"bad token"}"#, "status \"ERROR\": bad token"),
        (#"{"status":"OK","payload":"!!","signature":"s"}"#, "the payload is not base64"),
        (#"{"status":"OK","payload":"e30=","signature":"s"}"#, "the payload names no port"),
        (#"{"status":"OK"}"#, "status OK without a payload and a signature"),
        ("<html>", "is not a JSON object"),
    ])
    func garbageIsAnError(json: String, message: String) {
        #expect { try PIAAnswer.signature(Array(json.utf8)) } throws: { ($0 as? PIAAnswer.ParseError)?.message.contains(message) == true }
    }

    @Test func base64RoundTrips() {
        for text in ["", "a", "ab", "abc", "abcd", #"{"port":1}"#] {
            #expect(Base64.decode(Base64.encode(Array(text.utf8))) == Array(text.utf8))
            #expect(Base64.decode(String(Base64.encode(Array(text.utf8)).filter { $0 != "=" })) == Array(text.utf8), "unpadded")
        }
        for bad in ["a", "ab=c", "a===", "ab!d", "YR=="] { #expect(Base64.decode(bad) == nil, "\(bad)") }
    }

    @Test func theKeptFileRoundTrips() throws {
        let expires = PIAShapes.unixStart + 30 * 86_400
        let payload = PIAShapes.payload(port: 40000, expiresAt: expires)
        let signature = PIASignature(payload: Secret(value: payload, origin: "t"), signature: Secret(value: "sig", origin: "t"),
                                     port: Port(40000)!, expiresAt: expires, serverName: "amsterdam401")
        let read = try #require(PIASignature.parse(signature.fileContents, origin: "t"))
        #expect(read.payload.value == payload && read.signature.value == "sig" && read.port == Port(40000) && read.expiresAt == expires
                && read.serverName == "amsterdam401")
        #expect(PIASignature.parse(Array("{}".utf8), origin: "t") == nil)
    }
}

@Suite struct PIASessionTests {
    static let password = "hunter2&=+ secret"
    let start = Instant(nanoseconds: 1_000_000_000)
    let tunnel = Tunnel(interface: "pia", index: 7, address: IPv4Address(10, 13, 0, 2), gateway: IPv4Address(10, 13, 128, 1), gatewayRule: .configured)

    static func settings() -> PIASettings {
        PIASettings(username: "p1234567", password: Secret(value: password, origin: "test"), serverName: "amsterdam401", interface: "pia",
                    signatureFile: "/nonexistent/pia")
    }

    static func kept(port: Int, daysLeft: Double, server: String = "amsterdam401") -> PIASignature {
        let expires = PIAShapes.unixStart + Int64(daysLeft * 86_400)
        return PIASignature(payload: Secret(value: PIAShapes.payload(port: port, expiresAt: expires), origin: "kept"),
                            signature: Secret(value: "kept-signature", origin: "kept"), port: Port(UInt16(port))!, expiresAt: expires, serverName: server)
    }

    struct Driver {
        var session: PIASession
        var now: Instant
        var sent: [(PIASession.Request, HTTPRequest)] = []
        var forwarded: [(Port, Instant, ChangeReason?)] = []
        var withdrawn: [ChangeReason] = []
        var kept: [PIASignature?] = []
        var cancels = 0
        var logs: [(LogLevel, String)] = []

        mutating func feed(_ input: PIASession.Input) {
            for effect in session.handle(input, now: now) {
                switch effect {
                case .send(let request, let http, _): sent.append((request, http))
                case .cancelRequests: cancels += 1
                case .forwarding(let port, let expiry, let reason): forwarded.append((port, expiry, reason))
                case .withdrawn(let reason): withdrawn.append(reason)
                case .keep(let signature): kept.append(signature)
                case .log(let level, let message): logs.append((level, message))
                }
            }
        }

        mutating func answer(_ status: Int, _ body: String) {
            feed(.answered(session.inFlight!, HTTPResponse(status: status, body: Array(body.utf8))))
        }

        mutating func advance(to instant: Instant) {
            now = instant
            feed(.deadlineReached)
        }

        var last: PIASession.Request? { sent.last?.0 }
        var unixNow: Int64 { PIAShapes.unixStart + (now - Instant(nanoseconds: 1_000_000_000)).components.seconds }
    }

    func driver(kept: PIASignature? = nil, settings: PIASettings = PIASessionTests.settings()) -> Driver {
        var driver = Driver(session: PIASession(settings: settings, kept: kept), now: start)
        driver.feed(.start(unixTime: PIAShapes.unixStart))
        return driver
    }

    /// Token, signature, bind: the first run.
    func firstPort(_ driver: inout Driver, port: Int = 47123, days: Int64 = 60) {
        driver.feed(.tunnelUp(tunnel))
        driver.answer(200, #"{"token":"tok-abcdef"}"#)
        driver.answer(200, PIAShapes.signatureAnswer(port: port, expiresAt: driver.unixNow + days * 86_400))
        driver.answer(200, PIAShapes.bound)
    }

    @Test func tokenThenSignatureThenBindAtOnceAndEvery15Minutes() throws {
        var driver = driver()
        #expect(driver.sent.isEmpty, "nothing before the tunnel is up")
        driver.feed(.tunnelUp(tunnel))
        let (kind, token) = try #require(driver.sent.first)
        #expect(kind == .token)
        #expect(token.method == "POST" && token.target == "/api/client/v2/token")
        #expect(String(decoding: token.body, as: UTF8.self) == "username=p1234567&password=" + FormEncoding.percentEncode(Self.password))
        #expect(token.headers["Host"] == "www.privateinternetaccess.com")

        driver.answer(200, #"{"token":"tok-abcdef"}"#)
        let signature = try #require(driver.sent.last)
        #expect(signature.0 == .signature)
        #expect(signature.1.target == "/getSignature?token=tok-abcdef")
        #expect(signature.1.headers["Host"] == "amsterdam401:19999")

        let expires = driver.unixNow + 60 * 86_400
        let payload = PIAShapes.payload(port: 47123, expiresAt: expires)
        driver.answer(200, PIAShapes.signatureAnswer(port: 47123, expiresAt: expires))
        #expect(driver.kept.count == 1 && driver.kept[0]?.port == Port(47123) && driver.kept[0]?.payload.value == payload)
        let bind = try #require(driver.sent.last)
        #expect(bind.0 == .bind)
        #expect(bind.1.target == "/bindPort?payload=\(FormEncoding.percentEncode(payload))&signature=sig-0123")
        #expect(driver.forwarded.isEmpty, "no port before the bind answered")

        driver.answer(200, PIAShapes.bound)
        #expect(driver.forwarded.count == 1)
        #expect(driver.forwarded[0].0 == Port(47123))
        #expect(driver.forwarded[0].1 == driver.now + .seconds(60 * 86_400), "the lease is the payload's life")
        #expect(driver.session.boundPort == Port(47123))
        #expect(driver.session.nextDeadline == driver.now + .seconds(900))

        for round in 1...4 {
            driver.advance(to: driver.session.nextDeadline!)
            #expect(driver.last == .bind, "round \(round)")
            driver.answer(200, PIAShapes.bound)
        }
        #expect(driver.sent.map(\.0) == [.token, .signature, .bind, .bind, .bind, .bind, .bind])
        #expect(driver.forwarded.count == 1, "a rebind of the same port is no new observation")
        #expect(driver.session.binds == 5)
        #expect(driver.now == start + .seconds(4 * 900))
    }

    @Test func restartWithAKeptPayloadBindsAtOnceWithoutTokenOrSignature() throws {
        var driver = driver(kept: Self.kept(port: 40001, daysLeft: 50))
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.sent.map(\.0) == [.bind])
        #expect(driver.sent[0].1.target.contains("signature=kept-signature"))
        driver.answer(200, PIAShapes.bound)
        #expect(driver.forwarded.map(\.0) == [Port(40001)!])
        #expect(driver.session.tokensAsked == 0 && driver.session.signaturesAsked == 0)
        #expect(driver.kept.isEmpty, "the kept file stays as it is")
    }

    @Test func anotherServersKeptPayloadIsNotUsed() {
        var driver = driver(kept: Self.kept(port: 40001, daysLeft: 50, server: "toronto402"))
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.sent.map(\.0) == [.token])
    }

    @Test func busyPortMeansANewSignature() throws {
        var driver = driver(kept: Self.kept(port: 40001, daysLeft: 50))
        driver.feed(.tunnelUp(tunnel))
        driver.answer(200, PIAShapes.bound)
        driver.advance(to: driver.session.nextDeadline!)
        driver.answer(409, PIAShapes.busy(40001))
        #expect(driver.kept.count == 1 && driver.kept[0] == nil, "the refused payload is forgotten")
        #expect(driver.withdrawn == [.sourceChanged])
        #expect(driver.last == .token, "no token yet in this run")
        #expect(driver.session.lastProblem?.contains("port 40001 is busy.") == true)
        driver.answer(200, #"{"token":"tok-abcdef"}"#)
        driver.answer(200, PIAShapes.signatureAnswer(port: 52000, expiresAt: driver.unixNow + 60 * 86_400))
        driver.answer(200, PIAShapes.bound)
        #expect(driver.forwarded.map(\.0) == [Port(40001)!, Port(52000)!])
        #expect(driver.session.lastProblem == nil)
    }

    @Test func aFreshSignatureRefusedTwiceWaitsInsteadOfLooping() {
        var driver = driver()
        driver.feed(.tunnelUp(tunnel))
        driver.answer(200, #"{"token":"tok-abcdef"}"#)
        driver.answer(200, PIAShapes.signatureAnswer(port: 47123, expiresAt: driver.unixNow + 60 * 86_400))
        driver.answer(409, PIAShapes.busy(47123))
        #expect(driver.sent.map(\.0) == [.token, .signature, .bind, .signature], "a busy port: another signature at once, as Gluetun does")
        driver.answer(200, PIAShapes.signatureAnswer(port: 47124, expiresAt: driver.unixNow + 60 * 86_400))
        driver.answer(409, PIAShapes.busy(47124))
        #expect(driver.sent.map(\.0) == [.token, .signature, .bind, .signature, .bind], "the second in a row waits")
        #expect(driver.session.nextDeadline == driver.now + .seconds(60))
        driver.advance(to: driver.session.nextDeadline!)
        #expect(driver.last == .signature, "the day's token serves again")
        #expect(driver.session.tokensAsked == 1)
    }

    @Test func anAnswerThatIsNotOKIsARefusalToo() {
        var driver = driver(kept: Self.kept(port: 40001, daysLeft: 50))
        driver.feed(.tunnelUp(tunnel))
        driver.answer(400, #"{"status":"ERROR","message":"invalid signature"}"#)
        #expect(driver.kept.count == 1 && driver.kept[0] == nil)
        #expect(driver.last == .token)
    }

    @Test func anExpiredPayloadIsReplaced() {
        var driver = driver(kept: Self.kept(port: 40001, daysLeft: -1))
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.sent.map(\.0) == [.token], "an expired payload is not bound")
        #expect(driver.kept.count == 1 && driver.kept[0] == nil)
        #expect(driver.forwarded.isEmpty && driver.withdrawn.isEmpty, "it was never announced in this run")
    }

    @Test func aPayloadThatExpiresWhileBoundIsWithdrawnAndReplaced() {
        var settings = Self.settings()
        settings.renewBefore = .seconds(0)
        var driver = self.driver(kept: Self.kept(port: 40001, daysLeft: 0.01), settings: settings)  // 864 s left
        driver.feed(.tunnelUp(tunnel))
        driver.answer(200, PIAShapes.bound)
        #expect(driver.session.nextDeadline == driver.now + .seconds(864), "at the expiry, before the next 15 minutes")
        driver.advance(to: driver.session.nextDeadline!)
        #expect(driver.withdrawn == [.leaseLapsed])
        #expect(driver.last == .token)
    }

    @Test func fewerThanSevenDaysLeftMeansANewSignatureAndTheOldIsBoundMeanwhile() throws {
        var driver = driver(kept: Self.kept(port: 40001, daysLeft: 7 + 600.0 / 86_400))
        driver.feed(.tunnelUp(tunnel))
        driver.answer(200, PIAShapes.bound)
        #expect(driver.session.nextDeadline == driver.now + .seconds(600), "the 7-day mark comes before the next 15 minutes")
        driver.advance(to: driver.session.nextDeadline!)
        #expect(driver.last == .token)
        driver.answer(503, "down for maintenance")
        #expect(driver.last == .bind, "the old port is bound while the renewal waits")
        driver.answer(200, PIAShapes.bound)
        #expect(driver.session.nextDeadline == driver.now + .seconds(60), "the renewal is tried again after the retry delay")
        driver.advance(to: driver.session.nextDeadline!)
        #expect(driver.last == .token)
        driver.answer(200, #"{"token":"tok-abcdef"}"#)
        driver.answer(200, PIAShapes.signatureAnswer(port: 52000, expiresAt: driver.unixNow + 60 * 86_400))
        driver.answer(200, PIAShapes.bound)
        #expect(driver.forwarded.map(\.0) == [Port(40001)!, Port(52000)!])
        #expect(driver.forwarded.last?.2 == .renewedToNewPort)
        #expect(driver.session.nextDeadline == driver.now + .seconds(900))
    }

    @Test func theTokenIsAskedOnceADay() {
        var driver = driver()
        firstPort(&driver)
        // An hour later the port is busy: a new signature with the same token.
        driver.advance(to: start + .seconds(900))
        driver.now = start + .seconds(3600)
        driver.answer(409, PIAShapes.busy(47123))
        #expect(driver.last == .signature)
        #expect(driver.session.tokensAsked == 1)
        driver.answer(200, PIAShapes.signatureAnswer(port: 47200, expiresAt: driver.unixNow + 60 * 86_400))
        driver.answer(200, PIAShapes.bound)
        // A day later, busy again: the token is a day old, so a new one first.
        driver.advance(to: start + .seconds(86_400))
        driver.answer(409, PIAShapes.busy(47200))
        #expect(driver.last == .token)
        #expect(driver.session.tokensAsked == 2)
    }

    @Test func aLostTunnelMidBindBindsTheSameSignatureOnceItIsBack() {
        var driver = driver(kept: Self.kept(port: 40001, daysLeft: 50))
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.session.inFlight == .bind)
        driver.feed(.tunnelDown("pia is gone"))
        #expect(driver.cancels == 1)
        #expect(driver.session.inFlight == nil && driver.session.nextDeadline == nil)
        driver.feed(.answered(.bind, HTTPResponse(status: 200, body: Array(PIAShapes.bound.utf8))))
        #expect(driver.forwarded.isEmpty, "an answer after the tunnel went is not taken")
        driver.now = start + .seconds(30)
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.sent.map(\.0) == [.bind, .bind])
        #expect(driver.sent[1].1.target == driver.sent[0].1.target)
        driver.answer(200, PIAShapes.bound)
        #expect(driver.forwarded.map(\.0) == [Port(40001)!])
        #expect(driver.kept.isEmpty)
    }

    @Test func aBindWithNoAnswerIsTriedAgainWithTheSameSignature() {
        var driver = driver(kept: Self.kept(port: 40001, daysLeft: 50))
        driver.feed(.tunnelUp(tunnel))
        driver.feed(.failed(.bind, .timedOut))
        #expect(driver.kept.isEmpty)
        #expect(driver.session.failureStreak == 1)
        #expect(driver.session.nextDeadline == driver.now + .seconds(60))
        driver.advance(to: driver.session.nextDeadline!)
        #expect(driver.sent.map(\.0) == [.bind, .bind])
    }

    @Test func aRefusedLoginIsTheSettingsFaultAndWaitsAnHour() {
        var driver = driver()
        driver.feed(.tunnelUp(tunnel))
        driver.answer(401, #"{"message":"bad credentials for p1234567 with \#(Self.password)"}"#)
        #expect(driver.session.trouble == .refused)
        #expect(driver.session.nextDeadline == driver.now + .seconds(3600))
        let errors = driver.logs.filter { $0.0 == .error }
        #expect(errors.count == 1)
        #expect(!errors[0].1.contains("\n"))
    }

    @Test func noSecretReachesALogOrTheProblem() {
        var driver = driver()
        let echo = { (what: String) in #"{"status":"ERROR","message":"echo \#(what)"}"# }
        driver.feed(.tunnelUp(tunnel))
        driver.answer(500, echo(Self.password) + FormEncoding.percentEncode(Self.password))
        driver.advance(to: driver.session.nextDeadline!)
        driver.answer(200, #"{"token":"tok-abcdef"}"#)
        driver.answer(500, echo("tok-abcdef"))
        driver.advance(to: driver.session.nextDeadline!)
        let payload = PIAShapes.payload(port: 47123, expiresAt: driver.unixNow + 60 * 86_400)
        driver.answer(200, PIAShapes.signatureAnswer(port: 47123, expiresAt: driver.unixNow + 60 * 86_400, signature: "sig-verysecret"))
        driver.answer(400, echo("\(payload) sig-verysecret"))
        let texts = driver.logs.map(\.1) + [driver.session.lastProblem ?? ""]
        for secret in [Self.password, FormEncoding.percentEncode(Self.password), "tok-abcdef", payload, "sig-verysecret"] {
            #expect(!texts.contains { $0.contains(secret) }, "\(secret.prefix(6))… in \(texts)")
        }
        #expect(driver.logs.contains { $0.1.contains(Redaction.replacement) })
    }
}

extension PIASessionTests {
    @Test func aNewPayloadThatIsAlreadyShortLivedIsNotAskedForAgainAtOnce() {
        var driver = driver()
        firstPort(&driver, days: 3)
        #expect(driver.session.nextDeadline == driver.now + .seconds(900), "bound every 15 minutes, not renewed in a loop")
        driver.advance(to: driver.session.nextDeadline!)
        #expect(driver.last == .bind)
        #expect(driver.session.signaturesAsked == 1)
    }
}

extension PIASessionTests {
    /// Fuzz/Corpus/PIA/regression-expired-payload-announced: a payload that expired before it was
    /// bound was announced as a port.
    @Test func aPayloadThatIsExpiredWhenItComesIsNoPort() {
        var driver = driver()
        driver.feed(.tunnelUp(tunnel))
        driver.answer(200, #"{"token":"tok-abcdef"}"#)
        driver.answer(200, PIAShapes.signatureAnswer(port: 47123, expiresAt: driver.unixNow - 3600))
        #expect(driver.kept.isEmpty && driver.session.signature == nil)
        #expect(driver.session.nextDeadline == driver.now + .seconds(60))
        #expect(driver.session.lastProblem?.contains("expired already") == true)

        var settings = Self.settings()
        settings.renewBefore = .seconds(0)
        var late = self.driver(kept: Self.kept(port: 40001, daysLeft: 0.001), settings: settings)  // 86 s left
        late.feed(.tunnelUp(tunnel))
        #expect(late.last == .bind)
        late.now = start + .seconds(90)
        late.answer(200, PIAShapes.bound)
        #expect(late.forwarded.isEmpty, "the bind answered after the payload expired")
        #expect(late.last == .token)
    }
}

extension PIAAnswerTests {
    /// The built-in CA is PIA's ca.rsa.4096.crt, readable by OpenSSL.
    @Test(.enabled(if: TestSupport.TestCertificates.available, "needs libssl3"))
    func theBuiltInCAIsPIAs() throws {
        #expect(PIACertificate.authority.hasPrefix("-----BEGIN CERTIFICATE-----\nMIIHqzCCBZOgAwIBAgIJAJ0u+vODZJntMA0GCSqGSIb3DQEBDQUAMIHoMQswCQYD\n"))
        _ = try TLSContext(options: PIASessionTests.settings().apiTLS)
    }
}
