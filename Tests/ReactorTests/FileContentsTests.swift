import Foundation
import Glibc
import Testing
@testable import Reactor

@Suite struct FileContentsTests {
    let directory: String

    init() {
        var template = Array("/tmp/portsync-files-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: directory) }

    @Test func aFailedRenameIsAnErrorAndLeavesNoTemporaryFile() throws {
        defer { cleanUp() }
        let target = "\(directory)/state.json"
        mkdir(target, 0o700)
        mkdir("\(target)/inside", 0o700)  // a non-empty directory: rename(2) over it fails
        #expect { try FileContents.writeAtomically(Array("{}".utf8), toPath: target) } throws: { error in
            "\(error)".hasPrefix("rename \(target).tmp.\(getpid()) to \(target): ")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["state.json"])
        try FileContents.writeAtomically(Array("{}".utf8), toPath: "\(directory)/other.json")
        #expect(try FileContents.read(atPath: "\(directory)/other.json") == Array("{}".utf8))
    }
}
