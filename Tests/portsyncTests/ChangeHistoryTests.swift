import Domain
import Foundation
import HTTP
import Reactor
import Sinks
import TestSupport
import Testing
@testable import portsync

/// The history file and the recorder's rules, without a daemon: records go to JSON and back,
/// the file keeps the last 500, a bad line is left out by number, and a change becomes a record
/// with each client's part once they have all answered.
@Suite struct ChangeHistoryTests {
    let start = Instant(nanoseconds: 1_000_000_000)

    func record(_ time: Int64, _ previous: Int?, _ port: Int?, _ reason: ChangeReason) -> ChangeRecord {
        ChangeRecord(time: time, previous: previous.flatMap { Port($0) }, port: port.flatMap { Port($0) }, source: "natpmp", reason: reason,
                     clients: [.init(label: "qbittorrent", result: .set), .init(label: "transmission", result: .failed, detail: "unreachable")],
                     verifiedAfterMilliseconds: 41)
    }

    @Test func recordsGoToJSONLinesAndBackAndTheFileKeepsTheLast500() {
        var history = ChangeHistory()
        for index in 0..<(ChangeHistory.limit + 20) {
            history.append(record(Int64(index), 40000 + index, 40001 + index, ChangeReason.allCases[index % ChangeReason.allCases.count]))
        }
        #expect(history.records.count == 500 && history.records.first?.time == 20, "the oldest 20 went")
        let (parsed, skipped) = ChangeHistory.parse(Array(history.jsonLines.utf8))
        #expect(parsed == history && skipped.isEmpty)
        #expect(history.lastPort == Port(40520))
        var withdrawn = history
        withdrawn.append(record(600, 40520, nil, .sourceEmptied))
        #expect(withdrawn.lastPort == Port(40520), "a withdrawal moves no port")
        withdrawn.append(record(601, 50000, 50000, .clientDrifted))
        #expect(withdrawn.lastPort == Port(40520), "nor does one client's repair (its port_index may pick another port)")
    }

    @Test(arguments: [
        #"{"time":1,"source":"natpmp","reason":"renewed-for-fun","port":40000}"#,
        #"{"time":1,"source":"natpmp","reason":"start","port":70000}"#,
        #"{"time":1,"source":"natpmp","reason":"start","port":40000,"clients":{"qbittorrent":{"result":"maybe"}}}"#,
        #"{"time":1,"source":"natpmp""#,
        "\u{0}\u{1}garbage",
    ])
    func aLineThatIsNotARecordIsLeftOutByNumber(line: String) {
        let good = record(5, nil, 40000, .started).jsonValue.serialized
        let (parsed, skipped) = ChangeHistory.parse(Array("\(good)\n\(line)\n\(good)\n".utf8))
        #expect(parsed.records.count == 2 && skipped == [2])
    }

    func client(_ label: String, _ health: SinkStatus.Health, verified: Int?, wanted: Int, applies: Int = 0) -> DaemonSnapshot.Client {
        var status = SinkStatus()
        status.health = health
        status.verifiedPort = verified.flatMap { Port($0) }
        var counters = SinkCounters()
        counters.applies = applies
        return DaemonSnapshot.Client(label: label, title: label, status: status, counters: counters, wanted: Port(wanted))
    }

    @Test func aChangeIsRecordedOnceEveryClientAnsweredWithEachOnesPart() throws {
        let directory = TemporaryDirectory()
        let log = LogCapture()
        let recorder = HistoryRecorder(stateFile: "\(directory.path)/state.json", logger: log.logger)
        func records() -> [ChangeRecord] { ((try? ChangeHistory.load(path: recorder.path)) ?? nil)?.history.records ?? [] }
        let before = [client("qbittorrent", .verified, verified: 40000, wanted: 40000, applies: 1),
                      client("transmission", .verified, verified: 40000, wanted: 40000, applies: 1)]
        recorder.observe(before, now: start)
        recorder.handedOff(PortChange(port: Port(40001)!, source: "natpmp", reason: .gatewayRestarted), clients: before, now: start)
        recorder.observe([client("qbittorrent", .applying, verified: 40000, wanted: 40001, applies: 1), before[1]], now: start + .milliseconds(10))
        #expect(records().isEmpty, "nothing until every client answered")
        let after = [client("qbittorrent", .verified, verified: 40001, wanted: 40001, applies: 2),
                     client("transmission", .unreachable("transmission at http://127.0.0.1:9091 is unreachable"), verified: 40000, wanted: 40001)]
        recorder.observe(after, now: start + .milliseconds(52))
        let first = try #require(records().first)
        #expect(first.previous == nil && first.port == Port(40001) && first.reason == .gatewayRestarted)
        #expect(first.clients == [.init(label: "qbittorrent", result: .set),
                                  .init(label: "transmission", result: .failed, detail: "transmission at http://127.0.0.1:9091 is unreachable")])
        #expect(first.verifiedAfterMilliseconds == nil, "not every client was verified")

        // The same port again is no change; a change overtaken by the next is superseded.
        recorder.handedOff(PortChange(port: Port(40001)!, source: "natpmp", reason: .tunnelRecreated), clients: after, now: start + .seconds(1))
        recorder.observe(after, now: start + .seconds(1))
        #expect(records().count == 1)
        let applying = [client("qbittorrent", .applying, verified: 40001, wanted: 40002, applies: 2)]
        recorder.handedOff(PortChange(port: Port(40002)!, source: "natpmp", reason: .renewedToNewPort), clients: applying, now: start + .seconds(2))
        recorder.handedOff(PortChange(port: Port(40003)!, source: "natpmp", reason: .renewedToNewPort), clients: applying, now: start + .seconds(2))
        recorder.observe([client("qbittorrent", .verified, verified: 40003, wanted: 40003, applies: 3)], now: start + .seconds(2) + .milliseconds(7))
        #expect(records().dropFirst().map { "\($0.previous!)→\($0.port!) \($0.clients.map(\.result.rawValue))" }
                == ["40001→40002 [\"superseded\"]", "40002→40003 [\"set\"]"])
        #expect(records().last?.verifiedAfterMilliseconds == 7 && recorder.last == records().last)
        #expect(recorder.counts == [.gatewayRestarted: 1, .renewedToNewPort: 2])

        // Read back, as the next start does.
        let again = HistoryRecorder(stateFile: "\(directory.path)/state.json", logger: log.logger)
        again.load()
        #expect(again.changes == 3 && again.lastPort == Port(40003) && again.last == records().last)
    }

    /// The file takes one appended line per change and is cut back to the last 500 once it
    /// holds 1000; a line cut short by a crash is not glued to the next record.
    @Test func theFileIsAppendedToAndCutBackAndACutLineStaysApart() throws {
        let directory = TemporaryDirectory()
        let log = LogCapture()
        let recorder = HistoryRecorder(stateFile: "\(directory.path)/state.json", logger: log.logger)
        let settled = [client("qbittorrent", .verified, verified: 1, wanted: 1)]
        func change(_ port: Int) {
            let clients = [client("qbittorrent", .verified, verified: port, wanted: port)]
            recorder.handedOff(PortChange(port: Port(port)!, source: "natpmp", reason: .renewedToNewPort), clients: settled, now: start)
            recorder.observe(clients, now: start)
        }
        func lines() throws -> Int { try String(contentsOfFile: recorder.path, encoding: .utf8).split(separator: "\n").count }
        for port in 1...1000 { change(40000 + port) }
        #expect(try lines() == 1000 && recorder.lines == 1000)
        change(42000)
        #expect(try lines() == 500 && recorder.lines == 500, "cut back to the last 500")
        let (kept, _) = try #require(try ChangeHistory.load(path: recorder.path))
        #expect(kept.records.first?.port == Port(40502) && kept.records.last?.port == Port(42000))

        let handle = try #require(FileHandle(forWritingAtPath: recorder.path))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"time":1,"source":"nat"#.utf8))
        handle.closeFile()
        let after = HistoryRecorder(stateFile: "\(directory.path)/state.json", logger: log.logger)
        after.load()
        #expect(log.lines.contains { $0.contains("line(s) 501 are not change records") }, "\(log.lines)")
        recorder.load()
        change(43000)
        let (read, skipped) = try #require(try ChangeHistory.load(path: recorder.path))
        #expect(read.records.last?.port == Port(43000) && skipped == [501], "the new record on a line of its own")
    }
}
