import Testing
@testable import portsync

@Suite struct TOMLDocumentTests {
    @Test func parsesTheSubset() throws {
        let text = """
            # a comment
            [natpmp]   # trailing comment
            interface = "wg0"
            lease_seconds = 1_200
            literal = 'C:\\no\\escapes'
            escaped = "tab\\there \\"q\\" \\u00e9"
            flag = true
            other = false
            negative = -5
            empty = ""
            list = [ "a", 'b',
                     # comment inside
                     "c", ]
            inline = []

            [daemon]
            log_level="debug"
            """
        let document = try TOMLDocument.parse(text, fileName: "config.toml")
        let values = Dictionary(uniqueKeysWithValues: document.entries.map { ("\($0.table).\($0.key)", $0.value) })
        #expect(values["natpmp.interface"] == .string("wg0"))
        #expect(values["natpmp.lease_seconds"] == .integer(1200))
        #expect(values["natpmp.literal"] == .string("C:\\no\\escapes"))
        #expect(values["natpmp.escaped"] == .string("tab\there \"q\" é"))
        #expect(values["natpmp.flag"] == .boolean(true))
        #expect(values["natpmp.other"] == .boolean(false))
        #expect(values["natpmp.negative"] == .integer(-5))
        #expect(values["natpmp.empty"] == .string(""))
        #expect(values["natpmp.list"] == .stringArray(["a", "b", "c"]))
        #expect(values["natpmp.inline"] == .stringArray([]))
        #expect(values["daemon.log_level"] == .string("debug"))
        #expect(document.entries.first { $0.key == "log_level" }?.line == 17)
        #expect(document.tables.map(\.name) == ["natpmp", "daemon"])
    }

    @Test func windowsLineEndingsAreFine() throws {
        let document = try TOMLDocument.parse("[daemon]\r\nlog_level = \"info\"\r\n", fileName: "c")
        #expect(document.entries.first?.value == .string("info"))
    }

    @Test(arguments: [
        ("[natpmp]\ninterface = wg0\n", "config.toml:2: \"interface\" has an unquoted value \"wg0\"; strings need quotes"),
        ("[natpmp]\ninterface = \"wg0\n", "config.toml:2: unterminated string (missing \")"),
        ("[natpmp]\nlease_seconds = 1.5\n", "config.toml:2: \"lease_seconds\" = 1.5: fractions are not supported; durations are whole seconds"),
        ("[natpmp]\nlease_seconds = 12abc\n", "config.toml:2: \"lease_seconds\" = 12abc is not a whole number"),
        ("[natpmp]\nlease_seconds = 007\n", "config.toml:2: \"lease_seconds\" = 007 is not a whole number"),
        ("[natpmp]\n\ninterface \"wg0\"\n", "config.toml:3: expected = after \"interface\""),
        ("[natpmp]\ninterface = \"wg0\" extra\n", "config.toml:2: unexpected text after the value of \"interface\": \"extra\""),
        ("[natpmp]\ninterface = \"a\"\ninterface = \"b\"\n", "config.toml:3: key \"interface\" is set twice in [natpmp] (first on line 2)"),
        ("[natpmp]\n[daemon]\n[natpmp]\n", "config.toml:3: table [natpmp] is defined twice (first on line 1)"),
        ("[qbittorrent.tv.extra]\n", "config.toml:1: tables nest one level at most ([qbittorrent.tv.…]); name a client [kind.name]"),
        ("[qbittorrent.]\n", "config.toml:1: expected a table name, found \"]\""),
        ("[qbittorrent.tv]\n[ qbittorrent . tv ]\n", "config.toml:2: table [qbittorrent.tv] is defined twice (first on line 1)"),
        ("[[natpmp]]\n", "config.toml:1: arrays of tables ([[…]]) are not supported"),
        ("[natpmp\n", "config.toml:1: expected ] after [natpmp"),
        ("[natpmp]\nnatpmp.interface = \"x\"\n", "config.toml:2: dotted keys (natpmp.…) are not supported"),
        ("[natpmp]\ninterface =\n", "config.toml:2: \"interface\" has no value"),
        ("[natpmp]\nlist = [\"a\" \"b\"]\n", "config.toml:2: expected , or ] in the array of \"list\""),
        ("[natpmp]\nlist = [1, 2]\n", "config.toml:2: \"list\" must be an array of strings; found \"1, 2]\""),
        ("[natpmp]\nlist = [\"a\",\n\n", "config.toml:2: array of \"list\" is not closed with ]"),
        ("[natpmp]\nx = \"bad \\q escape\"\n", "config.toml:2: unknown escape \\q in a string"),
        ("[natpmp]\nx = \"\"\"multi\"\"\"\n", "config.toml:2: multi-line strings are not supported"),
        ("[natpmp]\nx = tru\n", "config.toml:2: \"x\" has an unquoted value \"tru\"; strings need quotes"),
        ("[natpmp]\n# a comment \u{0} with a NUL\n", "config.toml:2: control character U+0 in a comment"),
        ("[natpmp]\ninterface = \"wg0\" # bare \r CR\n", "config.toml:2: control character U+D in a comment"),
        ("[natpmp]\nlist = [ # \u{7F}\n\"a\"]\n", "config.toml:2: control character U+7F in a comment"),
    ])
    func syntaxErrorsNameTheLine(text: String, expected: String) {
        #expect(throws: ConfigurationError.self) { try TOMLDocument.parse(text, fileName: "config.toml") }
        do {
            _ = try TOMLDocument.parse(text, fileName: "config.toml")
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test func commentsMayEndInCRLFAndHoldTabs() throws {
        let document = try TOMLDocument.parse("[natpmp] # the\ttunnel\r\ninterface = \"wg0\" # \u{e9}t\u{e9}\r\n#\r\n", fileName: "config.toml")
        #expect(document.entries == [TOMLDocument.Entry(table: "natpmp", key: "interface", value: .string("wg0"), line: 2)])
    }

    @Test func garbageNeverCrashes() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("[]=\"'#\n\\ abc123_-.,tfu{}\t\r")
        for _ in 0..<500 {
            let text = String((0..<Int.random(in: 0..<80, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            _ = try? TOMLDocument.parse(text, fileName: "fuzz.toml")
        }
    }
}
