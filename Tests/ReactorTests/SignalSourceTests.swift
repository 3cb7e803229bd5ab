import CLinux
import Glibc
import Testing
@testable import Reactor
import TestSupport

/// Signals are process-wide: these tests send them to their own thread only (the thread that
/// blocked them), so that the other test threads never see one.
@Suite(.serialized) struct SignalSourceTests {
    private func raiseOnThisThread(_ signal: Int32) {
        precondition(pthread_kill(pthread_self(), signal) == 0)
    }

    @Test func signalsArriveThroughTheSignalfd() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var received: [Signal] = []
        let source = try SignalSource(loop: loop, signals: [.hangup, .terminate]) { received.append($0) }
        defer { source.close() }
        raiseOnThisThread(SIGHUP)
        try runUntil(loop) { received.count == 1 }
        #expect(received == [.hangup])
    }

    @Test func severalPendingSignalsAreDrainedInOneWakeup() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var received: [Signal] = []
        let source = try SignalSource(loop: loop, signals: [.hangup, .interrupt, .terminate]) { received.append($0) }
        defer { source.close() }
        raiseOnThisThread(SIGTERM)
        raiseOnThisThread(SIGHUP)
        raiseOnThisThread(SIGINT)
        try loop.runOnce(timeout: .milliseconds(500))
        #expect(Set(received.map(\.description)) == ["SIGHUP", "SIGINT", "SIGTERM"])
        #expect(loop.dispatches == 1)
    }

    @Test func closingUnblocksTheSignalsAgain() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let source = try SignalSource(loop: loop, signals: [.hangup]) { _ in }
        var mask = sigset_t()
        pthread_sigmask(SIG_BLOCK, nil, &mask)
        #expect(sigismember(&mask, SIGHUP) == 1)
        source.close()
        pthread_sigmask(SIG_BLOCK, nil, &mask)
        #expect(sigismember(&mask, SIGHUP) == 0)
    }
}
