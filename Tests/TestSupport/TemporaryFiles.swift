import Glibc

/// A new directory `/tmp/portsync-<what>-XXXXXX`, private to the test (mkdtemp: mode 0700); the
/// caller removes it.
public func makeTemporaryDirectory(_ what: String) -> String {
    var template = Array("/tmp/portsync-\(what)-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
}
