/// A fuzzer's bytes read as a sequence of choices, for targets that drive a state machine
/// through a sequence of inputs. Past the end every read gives zeros, so any input is usable.
struct FuzzInput {
    let bytes: [UInt8]
    private(set) var position = 0

    init(_ data: UnsafePointer<UInt8>?, _ count: Int) {
        bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    }

    var isAtEnd: Bool { position >= bytes.count }

    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    mutating func uint32() -> UInt32 { UInt32(uint16()) << 16 | UInt32(uint16()) }

    mutating func bool() -> Bool { byte() & 1 == 1 }

    /// Up to `count` bytes (fewer at the end).
    mutating func bytes(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, position + count)
        defer { position = max(position, end) }
        return position < end ? Array(bytes[position..<end]) : []
    }

    /// A length-prefixed piece: two bytes of length (big-endian), then that many bytes.
    mutating func chunk() -> [UInt8] { bytes(Int(uint16())) }

    /// One of `choices`, by the next byte.
    mutating func pick<T>(_ choices: [T]) -> T { choices[Int(byte()) % choices.count] }
}

/// Stops the run with the property that failed: libFuzzer saves the input that broke it.
func require(_ condition: Bool, _ property: @autoclosure () -> String) {
    if !condition { fatalError("property violated: \(property())") }
}

/// Whether `text` holds a CR or an LF: in a header or a log line, a line break.
func hasLineBreak(_ text: String) -> Bool {
    text.unicodeScalars.contains { $0 == "\r" || $0 == "\n" }
}
