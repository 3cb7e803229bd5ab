@testable import portsync

/// DaemonState.parse: the state file, which survives restarts and any tampering.
///
/// Properties: reading never traps, whatever the numbers; a state it reads, written out again
/// (`json`), reads back equal.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStateFile(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let bytes = FuzzInput(data, count).bytes
    guard let state = try? DaemonState.parse(bytes) else { return 0 }
    let again = try? DaemonState.parse(Array(state.json.utf8))
    require(again == state, "the state \(state.json) reads back as \(String(describing: again))")
    return 0
}
