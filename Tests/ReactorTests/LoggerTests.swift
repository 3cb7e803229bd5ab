import Glibc
import Testing
@testable import Reactor
import TestSupport

@Suite struct LoggerTests {
    @Test func journalLinesCarryThePriorityPrefix() {
        var lines: [String] = []
        let logger = Logger(level: .info, style: .journal) { lines.append($0) }
        logger.notice("qbittorrent.http", "listen_port 51413 applied")
        logger.error("natpmp.udp", "sendto: Network is unreachable (errno 101)")
        logger.debug("natpmp.udp", "hidden at info")
        #expect(lines == ["<5>qbittorrent.http: listen_port 51413 applied\n",
                          "<3>natpmp.udp: sendto: Network is unreachable (errno 101)\n"])
    }

    @Test func plainLinesHaveTimeLevelAndSourceOnOneLine() {
        var lines: [String] = []
        let logger = Logger(level: .warning, style: .plain) { lines.append($0) }
        logger.warning("proton.file", "garbage \"abc\nxyz\" in forwarded_port")
        logger.info("proton.file", "filtered out")
        #expect(lines.count == 1)
        let line = lines[0]
        #expect(line.hasSuffix("warning proton.file: garbage \"abc\\nxyz\" in forwarded_port\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
        #expect(Self.isISO8601(String(line.prefix(29))), "\(line)")
        #expect(line.dropFirst(29).hasPrefix(" warning "))
    }

    /// A plain line's stamp names the day too, and its offset: read back as UTC it is the
    /// instant it was made from, in whatever zone the test runs.
    @Test func timestampsAreISO8601DatesWithTheLocalOffset() throws {
        let seconds = 1_796_652_572 // 2026-12-06T14:09:32Z
        let stamp = Logger.timestamp(seconds: seconds, nanoseconds: 123_456_789)
        #expect(Self.isISO8601(stamp), "\(stamp)")
        let characters = Array(stamp)
        func number(_ range: Range<Int>) -> Int { Int(String(characters[range]))! }
        var parts = tm()
        parts.tm_year = Int32(number(0..<4) - 1900)
        parts.tm_mon = Int32(number(5..<7) - 1)
        parts.tm_mday = Int32(number(8..<10))
        parts.tm_hour = Int32(number(11..<13))
        parts.tm_min = Int32(number(14..<16))
        parts.tm_sec = Int32(number(17..<19))
        let offset = (number(24..<26) * 3600 + number(27..<29) * 60) * (characters[23] == "-" ? -1 : 1)
        #expect(timegm(&parts) - offset == seconds)
        #expect(stamp.dropFirst(19).prefix(4) == ".123")
    }

    static func isISO8601(_ text: String) -> Bool {
        let pattern = Array("dddd-dd-ddTdd:dd:dd.ddd+dd:dd")
        let characters = Array(text)
        guard characters.count == pattern.count else { return false }
        return zip(characters, pattern).allSatisfy { character, expected in
            switch expected {
            case "d": character.isASCII && character.isNumber
            case "+": character == "+" || character == "-"
            default: character == expected
            }
        }
    }

    @Test func aCarriageReturnOrControlCharacterCannotForgeALine() {
        var lines: [String] = []
        let logger = Logger(level: .info, style: .journal) { lines.append($0) }
        logger.info("gluetun.http", "answer \"x\r\n<0>portsync: forged\" and \r<3>overwritten and \u{1B}[2K erased")
        #expect(lines == [#"<6>gluetun.http: answer "x\r\n<0>portsync: forged" and \r<3>overwritten and \x1B[2K erased"# + "\n"])
    }

    @Test func traceOnlyWhenEnabledWhateverTheLevel() {
        var lines: [String] = []
        let logger = Logger(level: .error, style: .plain) { lines.append($0) }
        logger.trace("signal", "SIGHUP")
        #expect(lines.isEmpty)
        logger.traceEnabled = true
        logger.trace("signal", "SIGHUP")
        #expect(lines.count == 1 && lines[0].contains("trace   signal: SIGHUP"))
    }

    @Test func levelNamesParse() {
        #expect(LogLevel(name: "DEBUG") == .debug)
        #expect(LogLevel(name: "warning") == .warning)
        #expect(LogLevel(name: "verbose") == nil)
    }
}
