@testable import portsync

/// ChangeHistory.parse: the history file, which survives restarts and any tampering.
///
/// Properties: reading never traps; every line is a record or is named as skipped, never both;
/// the history it reads, written out again (`jsonLines`), reads back equal with nothing skipped.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHistory(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let bytes = FuzzInput(data, count).bytes
    let (history, skipped) = ChangeHistory.parse(bytes)
    let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).count
    require(min(lines, ChangeHistory.limit) >= history.records.count && skipped.count <= lines,
            "\(lines) lines gave \(history.records.count) records and \(skipped.count) skipped")
    let (again, skippedAgain) = ChangeHistory.parse(Array(history.jsonLines.utf8))
    require(again == history && skippedAgain.isEmpty, "the history \(history.jsonLines) reads back as \(again.jsonLines), skipping \(skippedAgain)")
    return 0
}
