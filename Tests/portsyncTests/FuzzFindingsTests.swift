import Testing
@testable import portsync

/// What the fuzz targets (Fuzz/) found in the executable's parsers, kept as tests. Each input is
/// also in the target's corpus, Fuzz/Corpus/<target>/regression-*.
@Suite struct PortsyncFuzzFindingsTests {
    /// Fuzz/Corpus/TOML/regression-bare-cr-in-message: a bare CR in a line went into the error
    /// message as it was, and broke its line.
    @Test func tomlErrorShowsControlCharactersEscaped() {
        #expect { try TOMLDocument.parse("\r\r\u{3}\r\u{3}\r", fileName: "config.toml") } throws: { error in
            (error as? ConfigurationError)?.description == "config.toml:1: unexpected text after a comment: \"\\x03\\x0d\\x03\""
        }
        #expect { try TOMLDocument.parse("[natpmp]\n\u{1b}[2J = 1\n", fileName: "config.toml") } throws: { error in
            (error as? ConfigurationError)?.description == "config.toml:2: expected a key, found \"\\x1b[2J = 1\""
        }
    }

    /// Fuzz/Corpus/TOML/regression-escape-of-a-control-character: "unknown escape \<CR>" put the
    /// CR itself into the message.
    @Test(arguments: ["key = \"a\\\rb\"\n", "key = \"a\\\u{1b}b\"\n", "key = \"\\\u{7f}\"\n"])
    func tomlEscapeErrorsAreOneLine(text: String) {
        #expect { try TOMLDocument.parse(text, fileName: "config.toml") } throws: { error in
            guard let message = (error as? ConfigurationError)?.description else { return false }
            return message.contains("unknown escape") && !message.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
        }
    }
}
