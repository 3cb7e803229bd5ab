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
        #expect(line.prefix(12).allSatisfy { $0.isNumber || $0 == ":" || $0 == "." })
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
