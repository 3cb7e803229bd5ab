import Testing
import Reactor

@Suite struct OneLineTests {
    @Test func lineBreaksAndControlCharactersAreEscaped() {
        #expect("v9\nWATCHDOG=trigger\r\nX".oneLine() == #"v9\nWATCHDOG=trigger\r\nX"#)
        #expect("a\tb\u{0}c\u{1B}[31md\u{7F}e\u{85}f\u{2028}g".oneLine() == #"a\tb\x00c\x1B[31md\x7Fe\x85f\u{2028}g"#)
        #expect("qBittorrent v5.0.1 — ünïcode".oneLine() == "qBittorrent v5.0.1 — ünïcode")
    }

    @Test func longTextIsShortenedWithAnEllipsis() {
        let long = String(repeating: "x", count: 3_000_000)
        #expect(long.oneLine() == String(repeating: "x", count: 200) + "…")
        #expect(long.oneLine(limit: 10) == "xxxxxxxxxx…")
        #expect("exactly".oneLine(limit: 7) == "exactly")
    }
}
