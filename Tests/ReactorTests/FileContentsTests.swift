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
            "\(error)".hasPrefix("rename \(target).tmp.") && "\(error)".contains(" to \(target): ")
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

    /// A symbolic link planted where the temporary file goes (the old name, `state.json.tmp.<pid>`)
    /// is never written through: the file it points at stays as it was.
    @Test func aPlantedSymlinkIsNeverWrittenThrough() throws {
        defer { cleanUp() }
        let victim = "\(directory)/root-only"
        try FileContents.writeAtomically(Array("secret".utf8), toPath: victim, mode: 0o600)
        let target = "\(directory)/state.json"
        #expect(symlink(victim, "\(target).tmp.\(getpid())") == 0)
        try FileContents.writeAtomically(Array("{}".utf8), toPath: target)
        #expect(try FileContents.read(atPath: victim) == Array("secret".utf8))
        #expect(try FileContents.read(atPath: target) == Array("{}".utf8))
        var info = stat()
        #expect(lstat(target, &info) == 0 && info.st_mode & S_IFMT == S_IFREG, "the state file itself is a new regular file")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(names == ["root-only", "state.json", "state.json.tmp.\(getpid())"], "no temporary file left, the planted link untouched")
        #expect(Set((0..<16).map { _ in FileContents.temporaryName(besides: target) }).count == 16, "every temporary name is drawn anew")
    }

    @Test func theDirectoryOfAPathIsWhereItsFileIsMade() {
        #expect(FileContents.directory(of: "/var/lib/portsync/state.json") == "/var/lib/portsync")
        #expect(FileContents.directory(of: "/state.json") == "/")
        #expect(FileContents.directory(of: "state.json") == ".")
    }
}
