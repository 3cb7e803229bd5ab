import Foundation
import Glibc
import TestSupport
import Testing
@testable import Reactor

@Suite struct FileContentsTests {
    let directory: String

    init() {
        directory = makeTemporaryDirectory("files")
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

    @Test func onlyRegularFilesAreReadAndAFIFODoesNotBlock() throws {
        defer { cleanUp() }
        let fifo = "\(directory)/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: NotARegularFileError.self) { try FileContents.read(atPath: fifo) }
        do {
            _ = try FileContents.read(atPath: fifo)
        } catch {
            #expect("\(error)" == "\(fifo) is a FIFO, not a regular file")
        }
        #expect { try FileContents.read(atPath: directory) } throws: { "\($0)" == "\(directory) is a directory, not a regular file" }
        #expect { try FileContents.read(atPath: "/dev/zero") } throws: { "\($0)" == "/dev/zero is a character device, not a regular file" }

        let file = "\(directory)/port"
        try FileContents.writeAtomically(Array("51413".utf8), toPath: file)
        #expect(symlink(file, "\(directory)/link") == 0)
        #expect(try FileContents.read(atPath: "\(directory)/link") == Array("51413".utf8), "a symbolic link to a regular file is followed")
    }
}
