import Domain
import Glibc
import Reactor
import Testing
@testable import Watchers

@Suite struct PortFileTests {
    private func parse(_ text: String) throws -> PortFile.Content { try PortFile.parse(Array(text.utf8)) }

    @Test func protonDigitsWithOrWithoutWhitespace() throws {
        #expect(try parse("51413") == .ports([Port(51413)!]))
        #expect(try parse("51413\n") == .ports([Port(51413)!]))
        #expect(try parse("  51413 \r\n") == .ports([Port(51413)!]))
    }

    @Test func emptyMeansNoPortNeverZero() throws {
        #expect(try parse("") == .noPort)
        #expect(try parse("\n  \n") == .noPort)
    }

    @Test func gluetunPortsOnePerLine() throws {
        #expect(try parse("40000\n40001") == .ports([Port(40000)!, Port(40001)!]))
    }

    @Test(arguments: [
        ("0", "port 0 is out of range (1-65535)"),
        ("70000", "port 70000 is out of range (1-65535)"),
        ("99999999999999999999", "port 99999999999999999999 is out of range (1-65535)"),
        ("-1", "not a port number: \"-1\""),
        ("51413abc", "not a port number: \"51413abc\""),
        ("port=51413", "not a port number: \"port=51413\""),
        ("12 34", "not a port number: \"12 34\""),
        ("\u{1}\u{2}binary", "not a port number: \"\\x01\\x02binary\""),
        ("00080", "port \"00080\" has a leading zero"),
        ("000080", "port \"000080\" has a leading zero"),
        ("080", "port \"080\" has a leading zero"),
    ])
    func garbageIsAnErrorThatShowsTheContent(text: String, message: String) {
        #expect(throws: PortFile.ParseError(message: message)) { try parse(text) }
    }

    @Test func invalidUTF8AndLongGarbageStayReadable() {
        #expect(throws: PortFile.ParseError.self) { try PortFile.parse([0xff, 0xfe, 0x31]) }
        do {
            _ = try parse(String(repeating: "x", count: 100))
        } catch {
            #expect("\(error)".count < 60)
        }
    }

    /// The one reading the watcher, `once` and `doctor` share: each outcome a case of its own.
    @Test func aReadingNamesWhatItFound() throws {
        let ports = [Port(40000)!, Port(40001)!]
        #expect(PortFile.reading(Array("40000\n40001\n".utf8), portIndex: 1) == .port(Port(40001)!, all: ports))
        #expect(PortFile.reading(Array("40000\n40001\n".utf8), portIndex: 2) == .noPortAtIndex(count: 2))
        #expect(PortFile.reading([]) == .empty)
        #expect(PortFile.reading(Array("51413x".utf8)) == .garbage(PortFile.ParseError(message: "not a port number: \"51413x\"")))
        let directory = "/tmp/portsync-portfile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(directory, 0o700)
        defer { unlink("\(directory)/fifo"); rmdir(directory) }
        #expect(PortFile.read(atPath: "\(directory)/forwarded_port") == .missing)
        mkfifo("\(directory)/fifo", 0o600)
        guard case .notARegularFile(let why) = PortFile.read(atPath: "\(directory)/fifo") else {
            Issue.record("a FIFO is not read")
            return
        }
        #expect(why.contains("\(directory)/fifo"), "\(why)")
    }
}
