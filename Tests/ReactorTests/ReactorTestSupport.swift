import CLinux
import Glibc
@testable import Reactor
import TestSupport

/// A non-blocking pipe; closed by the test. Close-on-exec from the start (`pipe2`): a child
/// spawned by a test running alongside would otherwise inherit the ends and keep them open.
struct Pipe {
    let readEnd: FileDescriptor
    let writeEnd: FileDescriptor

    init() {
        var fds: [Int32] = [0, 0]
        precondition(pipe2(&fds, O_CLOEXEC | O_NONBLOCK) == 0)
        readEnd = FileDescriptor(rawValue: fds[0])
        writeEnd = FileDescriptor(rawValue: fds[1])
    }

    func write(_ text: String) {
        _ = try! writeEnd.write(Array(text.utf8))
    }

    func close() {
        readEnd.close()
        writeEnd.close()
    }
}

/// Reads everything that is there, until EAGAIN.
func drain(_ fd: FileDescriptor) throws -> [UInt8] {
    var all: [UInt8] = []
    while case .done(let bytes) = try fd.read(upTo: 4096), !bytes.isEmpty {
        all += bytes
    }
    return all
}

