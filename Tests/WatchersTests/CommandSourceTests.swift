import Domain
import Foundation
import Reactor
import TestSupport
import Testing
@testable import Watchers

/// The command source with real programs (`/bin/sh` scripts), in a real loop.
@Suite final class CommandSourceTests {
    let directory = makeTemporaryDirectory("command")

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func source(_ script: String, mode: CommandSourceSettings.Mode = .interval(.seconds(60)), timeout: Duration = .seconds(10),
                portIndex: Int = 0, on loop: EventLoop) -> (CommandSource, Box) {
        let box = Box()
        let settings = CommandSourceSettings(argv: ["sh", "-c", script], mode: mode, timeout: timeout,
                                             environment: ChildEnvironment.passedOn(["PATH": "/usr/bin:/bin"]), portIndex: portIndex)
        let source = CommandSource(loop: loop, settings: settings)
        source.onObservation = { box.observations.append($0) }
        source.onStatusChange = { box.changes += 1 }
        return (source, box)
    }

    final class Box {
        var observations: [PortObservation] = []
        var changes = 0
        var ports: [Int?] { observations.map { $0.port.map { Int($0.value) } } }
    }

    @Test func eachRunIsReadLikeAPortFile() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        try "40000\n40001\n".write(toFile: "\(directory)/out", atomically: true, encoding: .utf8)
        let (source, box) = source("cat \(directory)/out", mode: .interval(.seconds(5)), portIndex: 1, on: loop)
        try source.start()
        #expect(try runUntil(loop, seconds: 5) { !box.observations.isEmpty })
        #expect(box.ports == [40001] && box.observations[0].ports == [Port(40000)!, Port(40001)!])
        #expect(source.status.state == SourceStatus.State.forwarding(Port(40001)!))
        source.stop(final: false)
    }

    /// A run that fails says so with its stderr's first line, and the last port stands (no
    /// observation); garbage is said with the content; piactl's words mean no port.
    @Test(arguments: [
        ("echo 'not connected' >&2; exit 3", "sh exited with 3: not connected", nil as Int??),
        ("echo 'port: 51413'", "sh printed not a port number: \"port: 51413\"; keeping the last port", nil),
        ("echo Inactive", "sh says \"Inactive\": no port right now", .some(nil)),
        ("true", "sh printed no port: none is forwarded right now", .some(nil)),
    ])
    func aRunWithoutAPortSaysWhy(script: String, message: String, observed: Int??) throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let (source, box) = source(script, on: loop)
        try source.start()
        #expect(try runUntil(loop, seconds: 5) { source.status.problem != nil })
        #expect(source.status.problem?.message == message)
        if case .some(let port) = observed {
            #expect(box.ports == [port], "\(box.observations)")
        } else {
            #expect(box.observations.isEmpty, "the last good port stands")
        }
        source.stop(final: false)
    }

    @Test func aRunThatOutlivesItsTimeoutIsKilledAndSaid() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let (source, _) = source("echo waiting >&2; sleep 30", timeout: .milliseconds(300), on: loop)
        try source.start()
        #expect(try runUntil(loop, seconds: 5) { source.status.problem != nil })
        #expect(source.status.problem?.message == "sh was still running after 300 ms and was killed: waiting")
        source.stop(final: false)
    }

    /// `piactl monitor portforward`: a port per line as it changes; one that ends is said and
    /// started again.
    @Test func aStreamGivesAPortPerLineAndIsStartedAgainWhenItEnds() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let runs = "\(directory)/runs"
        let (source, box) = source("echo run >> \(runs); echo Attempting; echo 40000; sleep 0.2; echo 40002; exit 1", mode: .stream, on: loop)
        try source.start()
        #expect(try runUntil(loop, seconds: 5) { source.status.problem?.message.contains("exited with 1") == true })
        #expect(box.ports == [nil, 40000, 40002], "each line as it came: \(box.observations)")
        #expect(source.status.problem?.message == "sh exited with 1; starting it again in 1 s")
        #expect(try runUntil(loop, seconds: 5) { ((try? String(contentsOfFile: runs, encoding: .utf8)) ?? "").components(separatedBy: "\n").count == 3 })
        #expect(try runUntil(loop, seconds: 5) { box.ports.count == 5 })
        #expect(box.ports == [nil, 40000, 40002, nil, 40000], "the second run from the start")
        source.stop(final: false)
    }

    @Test func aProgramThatIsNotThereIsAConfigurationProblem() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let settings = CommandSourceSettings(argv: ["no-such-program-here"], mode: .interval(.seconds(60)),
                                             environment: ["PATH=/usr/bin:/bin"])
        let source = CommandSource(loop: loop, settings: settings)
        try source.start()
        guard case .misconfigured(let problem) = source.status.state else {
            Issue.record("\(source.status.state)")
            return
        }
        #expect(problem.message == "\"no-such-program-here\" is not an executable file on PATH (/usr/bin:/bin)")
    }
}
