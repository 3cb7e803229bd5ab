@testable import HTTP
import Reactor
import Testing

/// The HTTP client's rules as a pure machine: plain values and an explicit clock, no socket.
@Suite struct HTTPExchangeTests {
    let start = Instant(nanoseconds: 1_000_000_000)
    let timeout = Duration.seconds(10)

    func exchange(tls: Bool = false) -> HTTPExchange {
        HTTPExchange(usesTLS: tls, responseTimeout: timeout)
    }

    func get(_ target: String, method: String = "GET") -> HTTPRequest {
        HTTPRequest(method: method, target: target, headers: ["Host": "127.0.0.1"])
    }

    func wire(_ request: HTTPRequest) -> [UInt8] {
        try! request.serialized()
    }

    func answer(_ text: String, headers: String = "") -> [UInt8] {
        Array("HTTP/1.1 200 OK\r\n\(headers)Content-Length: \(text.utf8.count)\r\n\r\n\(text)".utf8)
    }

    func ok(_ text: String, headers: HTTPHeaders = [:]) -> Result<HTTPResponse, HTTPClientError> {
        var all = headers
        all.add("Content-Length", "\(text.utf8.count)")
        return .success(HTTPResponse(status: 200, reason: "OK", headers: all, body: Array(text.utf8)))
    }

    /// A plain exchange that answered request 1 on a connection it keeps.
    func keptAlive() -> HTTPExchange {
        var exchange = exchange()
        _ = exchange.handle(.requested(id: 1, get("/first"), retryIfStale: true), now: start)
        _ = exchange.handle(.connected, now: start)
        _ = exchange.handle(.received(answer("one")), now: start)
        _ = exchange.handle(.answerTaken, now: start)
        return exchange
    }

    // MARK: Reuse

    @Test func aKeptAliveConnectionCarriesTheNextRequest() {
        var exchange = exchange()
        #expect(exchange.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start) == [.openConnection])
        #expect(exchange.handle(.connected, now: start) == [.send(wire(get("/a")))])
        #expect(exchange.handle(.received(answer("a")), now: start) == [.completed(id: 1, ok("a"))])
        #expect(exchange.handle(.answerTaken, now: start).isEmpty)
        #expect(!exchange.isBusy)
        #expect(exchange.handle(.requested(id: 2, get("/b"), retryIfStale: true), now: start) == [.send(wire(get("/b")))],
                "no new connection")
        #expect(exchange.handle(.received(answer("b")), now: start) == [.completed(id: 2, ok("b"))])
        #expect(exchange.requestsSent == 2)
    }

    @Test func anAnswerThatEndsTheConnectionClosesItAndTheNextRequestConnectsAfresh() {
        var exchange = exchange()
        _ = exchange.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = exchange.handle(.connected, now: start)
        #expect(exchange.handle(.received(answer("a", headers: "Connection: close\r\n")), now: start)
            == [.closeConnection, .completed(id: 1, ok("a", headers: ["Connection": "close"]))])
        _ = exchange.handle(.answerTaken, now: start)
        #expect(exchange.handle(.requested(id: 2, get("/b"), retryIfStale: true), now: start) == [.openConnection])
        _ = exchange.handle(.connected, now: start)
        let http10 = Array("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
        #expect(exchange.handle(.received(http10), now: start)
            == [.closeConnection, .completed(id: 2, .success(HTTPResponse(version: (1, 0), status: 200, reason: "OK", headers: ["Content-Length": "0"])))],
                "HTTP/1.0 without keep-alive")
        _ = exchange.handle(.answerTaken, now: start)
        #expect(exchange.handle(.requested(id: 3, get("/c"), retryIfStale: true), now: start) == [.openConnection])
    }

    @Test func aKeptAliveConnectionTheServerClosesWhileIdleIsForgotten() {
        var exchange = keptAlive()
        #expect(exchange.handle(.closed(nil), now: start).isEmpty)
        #expect(exchange.handle(.requested(id: 2, get("/b"), retryIfStale: true), now: start) == [.openConnection])
        _ = exchange.handle(.connected, now: start)
        #expect(exchange.handle(.closed(nil), now: start) == [.completed(id: 2, .failure(.closedUnanswered))],
                "a fresh connection: no retry")
    }

    @Test func bytesWhileNoAnswerIsAwaitedCloseTheConnection() {
        var exchange = keptAlive()
        #expect(exchange.handle(.received(Array("HTTP/1.1 200 OK\r\n".utf8)), now: start) == [.closeConnection])
        #expect(exchange.handle(.requested(id: 2, get("/b"), retryIfStale: true), now: start) == [.openConnection])
    }

    // MARK: The stale connection

    @Test func aReusedConnectionThatEndsBeforeAByteIsRetriedOnceOnAFreshOne() {
        for ending in [TCPConnectionError?.none, .reset] {
            var exchange = keptAlive()
            #expect(exchange.handle(.requested(id: 2, get("/b"), retryIfStale: true), now: start) == [.send(wire(get("/b")))])
            #expect(exchange.handle(.closed(ending), now: start) == [.openConnection], "\(String(describing: ending))")
            #expect(exchange.nextDeadline == nil, "connecting: the connect timeout is the racer's")
            #expect(exchange.handle(.connected, now: start) == [.send(wire(get("/b")))])
            #expect(exchange.requestsSent == 3, "the retry counts as a request sent")
            let second: [HTTPExchange.Effect] = ending.map { [.forgetAddresses, .completed(id: 2, .failure(.connect($0)))] }
                ?? [.completed(id: 2, .failure(.closedUnanswered))]
            #expect(exchange.handle(.closed(ending), now: start) == second, "only once: the fresh connection's end is the answer")
        }
    }

    @Test func aRequestThatMustNotGoTwiceFailsAsClosed() {
        for ending in [TCPConnectionError?.none, .reset] {
            var exchange = keptAlive()
            #expect(exchange.handle(.requested(id: 2, get("/login"), retryIfStale: false), now: start) == [.send(wire(get("/login")))])
            #expect(exchange.handle(.closed(ending), now: start) == [.completed(id: 2, .failure(.closed))], "\(String(describing: ending))")
        }
    }

    @Test func noRetryOnceBytesOfTheAnswerCame() {
        for ending in [TCPConnectionError?.none, .reset] {
            var exchange = keptAlive()
            _ = exchange.handle(.requested(id: 2, get("/b"), retryIfStale: true), now: start)
            #expect(exchange.handle(.received(Array("HTTP/1.1 200 OK\r\n".utf8)), now: start).isEmpty)
            #expect(exchange.handle(.closed(ending), now: start)
                == [.completed(id: 2, .failure(.malformed(HTTPParseError("connection closed inside the header section"))))])
            var interim = keptAlive()
            _ = interim.handle(.requested(id: 2, get("/b"), retryIfStale: true), now: start)
            #expect(interim.handle(.received(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)), now: start).isEmpty)
            #expect(interim.handle(.closed(ending), now: start) == [.completed(id: 2, .failure(.closed))],
                    "an interim answer is a byte of the answer: the server was there")
        }
    }

    @Test func aFreshConnectionsFailureIsTheAnswer() {
        var exchange = exchange()
        _ = exchange.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        #expect(exchange.handle(.closed(.refused), now: start) == [.forgetAddresses, .completed(id: 1, .failure(.connect(.refused)))],
                "unreachable: the addresses are looked up again")
        _ = exchange.handle(.answerTaken, now: start)
        _ = exchange.handle(.requested(id: 2, get("/a"), retryIfStale: true), now: start)
        #expect(exchange.handle(.closed(.timedOut), now: start) == [.forgetAddresses, .completed(id: 2, .failure(.connect(.timedOut)))],
                "the connect timeout")
        _ = exchange.handle(.answerTaken, now: start)
        _ = exchange.handle(.requested(id: 3, get("/a"), retryIfStale: true), now: start)
        _ = exchange.handle(.connected, now: start)
        #expect(exchange.handle(.closed(.reset), now: start) == [.forgetAddresses, .completed(id: 3, .failure(.connect(.reset)))],
                "reset before a byte of the answer")
    }

    @Test func aFreshConnectionEndedWithoutAByteIsUnansweredOverPlainHTTPOnly() {
        var plain = exchange()
        _ = plain.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = plain.handle(.connected, now: start)
        #expect(plain.handle(.closed(nil), now: start) == [.completed(id: 1, .failure(.closedUnanswered))])
        var secure = exchange(tls: true)
        _ = secure.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = secure.handle(.connected, now: start)
        _ = secure.handle(.tlsEstablished, now: start)
        #expect(secure.handle(.closed(nil), now: start) == [.completed(id: 1, .failure(.closed))])
    }

    // MARK: Timeouts

    @Test func theHandshakeAndTheAnswerEachHaveTheResponseTimeout() {
        var exchange = exchange(tls: true)
        #expect(exchange.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start) == [.openConnection])
        #expect(exchange.nextDeadline == nil, "the lookup and the connect time themselves")
        let connected = start + .seconds(3)
        #expect(exchange.handle(.connected, now: connected) == [.startTLS])
        #expect(exchange.nextDeadline == connected + timeout)
        let established = connected + .seconds(4)
        #expect(exchange.handle(.tlsEstablished, now: established) == [.send(wire(get("/a")))])
        #expect(exchange.nextDeadline == established + timeout, "a fresh timeout from the request's sending")
        #expect(exchange.handle(.deadlineReached, now: connected + timeout).isEmpty, "the handshake's deadline is gone")
        #expect(exchange.handle(.deadlineReached, now: established + timeout) == [.closeConnection, .completed(id: 1, .failure(.timedOut))],
                "no forgetAddresses: a slow server is there")
        #expect(exchange.nextDeadline == nil)
    }

    @Test func aSilentHandshakeTimesOut() {
        var exchange = exchange(tls: true)
        _ = exchange.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = exchange.handle(.connected, now: start)
        #expect(exchange.handle(.deadlineReached, now: start + timeout - .milliseconds(1)).isEmpty)
        #expect(exchange.handle(.deadlineReached, now: start + timeout) == [.closeConnection, .completed(id: 1, .failure(.timedOut))])
    }

    @Test func anAnswerInTimeCancelsTheDeadline() {
        var exchange = exchange()
        _ = exchange.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = exchange.handle(.connected, now: start)
        _ = exchange.handle(.received(answer("a")), now: start + .seconds(1))
        #expect(exchange.nextDeadline == nil)
        #expect(exchange.handle(.deadlineReached, now: start + timeout).isEmpty)
    }

    // MARK: Bodies delimited by the close

    @Test func aBodyThatRunsUntilTheCloseEndsWithIt() {
        let head = Array("HTTP/1.1 200 OK\r\n\r\npart".utf8)
        let whole = Result<HTTPResponse, HTTPClientError>.success(HTTPResponse(status: 200, reason: "OK", body: Array("part".utf8)))
        for ending in [TCPConnectionError?.none, .reset] {
            var plain = exchange()
            _ = plain.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
            _ = plain.handle(.connected, now: start)
            #expect(plain.handle(.received(head), now: start).isEmpty)
            #expect(plain.handle(.closed(ending), now: start) == [.completed(id: 1, whole)], "plain HTTP: any end")
        }
        var secure = exchange(tls: true)
        _ = secure.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = secure.handle(.connected, now: start)
        _ = secure.handle(.tlsEstablished, now: start)
        _ = secure.handle(.received(head), now: start)
        #expect(secure.handle(.closeNotified, now: start) == [.closeConnection, .completed(id: 1, whole)], "TLS said it ended")
        _ = secure.handle(.answerTaken, now: start)
        _ = secure.handle(.requested(id: 2, get("/a"), retryIfStale: true), now: start)
        _ = secure.handle(.connected, now: start)
        _ = secure.handle(.tlsEstablished, now: start)
        _ = secure.handle(.received(head), now: start)
        #expect(secure.handle(.closed(nil), now: start) == [.completed(id: 2, .failure(.truncated))], "a bare TCP close could be a cut")
    }

    @Test func anAnswerCutShortIsMalformed() {
        var exchange = exchange()
        _ = exchange.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = exchange.handle(.connected, now: start)
        _ = exchange.handle(.received(Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".utf8)), now: start)
        #expect(exchange.handle(.closed(nil), now: start)
            == [.completed(id: 1, .failure(.malformed(HTTPParseError("connection closed before the body was complete"))))])
    }

    @Test func aKeptAliveTLSConnectionEndedByCloseNotifyIsStale() {
        var exchange = exchange(tls: true)
        _ = exchange.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = exchange.handle(.connected, now: start)
        _ = exchange.handle(.tlsEstablished, now: start)
        _ = exchange.handle(.received(answer("a")), now: start)
        _ = exchange.handle(.answerTaken, now: start)
        #expect(exchange.handle(.requested(id: 2, get("/b"), retryIfStale: true), now: start) == [.send(wire(get("/b")))])
        #expect(exchange.handle(.closeNotified, now: start) == [.closeConnection, .openConnection])
        #expect(exchange.handle(.connected, now: start) == [.startTLS], "the fresh connection does its handshake")
    }

    // MARK: The queue

    @Test func requestsWaitInOrderAndTheNextStartsOnceTheOwnerHadItsAnswer() {
        var exchange = exchange()
        #expect(exchange.handle(.requested(id: 1, get("/1"), retryIfStale: true), now: start) == [.openConnection])
        #expect(exchange.handle(.requested(id: 2, get("/2"), retryIfStale: true), now: start).isEmpty, "one in flight")
        #expect(exchange.handle(.requested(id: 3, get("/3"), retryIfStale: true), now: start).isEmpty)
        #expect(exchange.handle(.connected, now: start) == [.send(wire(get("/1")))])
        #expect(exchange.handle(.received(answer("1")), now: start) == [.completed(id: 1, ok("1"))], "nothing starts before the owner has it")
        #expect(exchange.isBusy)
        #expect(exchange.handle(.idleCloseRequested, now: start).isEmpty, "requests wait: the connection stays")
        #expect(exchange.handle(.answerTaken, now: start) == [.send(wire(get("/2")))])
        #expect(exchange.handle(.received(answer("2")), now: start) == [.completed(id: 2, ok("2"))])
        #expect(exchange.handle(.requested(id: 4, get("/4"), retryIfStale: true), now: start) == [.send(wire(get("/3")))],
                "a request sent from a completion waits behind the others")
        #expect(exchange.handle(.answerTaken, now: start).isEmpty)
        #expect(exchange.handle(.received(answer("3")), now: start) == [.completed(id: 3, ok("3"))])
        #expect(exchange.handle(.answerTaken, now: start) == [.send(wire(get("/4")))])
    }

    @Test func closingForgetsEveryRequest() {
        var exchange = exchange()
        _ = exchange.handle(.requested(id: 1, get("/1"), retryIfStale: true), now: start)
        _ = exchange.handle(.requested(id: 2, get("/2"), retryIfStale: true), now: start)
        _ = exchange.handle(.connected, now: start)
        #expect(exchange.handle(.closeRequested, now: start) == [.closeConnection])
        #expect(!exchange.isBusy && exchange.nextDeadline == nil)
        #expect(exchange.handle(.received(answer("1")), now: start) == [.closeConnection], "nothing is answered any more")
        #expect(exchange.handle(.answerTaken, now: start).isEmpty)
        #expect(exchange.handle(.requested(id: 3, get("/3"), retryIfStale: true), now: start) == [.openConnection])
    }

    @Test func anIdleConnectionIsClosedOnRequestOnlyWhenNothingNeedsIt() {
        var exchange = keptAlive()
        #expect(exchange.handle(.idleCloseRequested, now: start) == [.closeConnection])
        #expect(exchange.handle(.idleCloseRequested, now: start).isEmpty, "none open")
        #expect(exchange.handle(.requested(id: 2, get("/b"), retryIfStale: true), now: start) == [.openConnection])
        #expect(exchange.handle(.idleCloseRequested, now: start).isEmpty, "in flight")
    }

    // MARK: What is reported

    @Test func aRequestThatCannotGoOnTheWireClosesTheConnectionAndIsNotSent() {
        let broken = HTTPRequest(method: "GET", target: "/a", headers: ["Cookie": "SID=abc\r\ndef"])
        let refused = HTTPClientError.invalidRequest(HTTPRequestError("header Cookie holds a line break or another control character"))
        var fresh = exchange()
        _ = fresh.handle(.requested(id: 1, broken, retryIfStale: true), now: start)
        #expect(fresh.handle(.connected, now: start) == [.closeConnection, .completed(id: 1, .failure(refused))])
        var reused = keptAlive()
        #expect(reused.handle(.requested(id: 2, broken, retryIfStale: true), now: start) == [.closeConnection, .completed(id: 2, .failure(refused))])
        #expect(reused.requestsSent == 1)
    }

    @Test func theAnswerToHEADHasNoBody() {
        var exchange = exchange()
        _ = exchange.handle(.requested(id: 1, get("/a", method: "HEAD"), retryIfStale: true), now: start)
        _ = exchange.handle(.connected, now: start)
        #expect(exchange.handle(.received(Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".utf8)), now: start)
            == [.completed(id: 1, .success(HTTPResponse(status: 200, reason: "OK", headers: ["Content-Length": "5"])))])
    }

    @Test func garbageIsMalformedAndClosesTheConnection() {
        var exchange = keptAlive()
        _ = exchange.handle(.requested(id: 2, get("/b"), retryIfStale: true), now: start)
        #expect(exchange.handle(.received(Array("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".utf8)), now: start)
            == [.closeConnection, .completed(id: 2, .failure(.malformed(HTTPParseError("bad Content-Length \"x\""))))])
        _ = exchange.handle(.answerTaken, now: start)
        #expect(exchange.handle(.requested(id: 3, get("/c"), retryIfStale: true), now: start) == [.openConnection])
    }

    @Test func aTLSRecordWhereAStatusLineBelongsSaysToUseHTTPS() {
        let alert: [UInt8] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]
        var plain = exchange()
        _ = plain.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = plain.handle(.connected, now: start)
        #expect(plain.handle(.received(alert), now: start)
            == [.closeConnection, .completed(id: 1, .failure(.tls(TLSError("the server answered with TLS: use https:// in the URL"))))])
    }

    @Test func tlsFailuresAreReportedAsTLS() {
        var closed = exchange(tls: true)
        _ = closed.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = closed.handle(.connected, now: start)
        #expect(closed.handle(.closed(nil), now: start)
            == [.completed(id: 1, .failure(.tls(TLSError("the server closed the connection during the TLS handshake: is this an https port?"))))])
        var refused = exchange(tls: true)
        _ = refused.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        _ = refused.handle(.connected, now: start)
        let error = TLSError("the certificate of 127.0.0.1 was refused: self-signed certificate")
        #expect(refused.handle(.tlsFailed(error), now: start) == [.closeConnection, .completed(id: 1, .failure(.tls(error)))],
                "the addresses are kept: the server is there")
    }

    @Test func aFailedLookupIsUnreachable() {
        var exchange = exchange()
        _ = exchange.handle(.requested(id: 1, get("/a"), retryIfStale: true), now: start)
        #expect(exchange.handle(.lookupFailed("cannot resolve \"nas.test\": no such name"), now: start)
            == [.forgetAddresses, .completed(id: 1, .failure(.resolve("cannot resolve \"nas.test\": no such name")))])
    }
}
