@testable import Reactor
@testable import portsync
@testable import HTTP

/// TOMLDocument.parse (the configuration file), then every entry through its configuration key.
///
/// Properties: an error names a line of the file and is one line; a document it reads,
/// written out again, reads back to the same tables and entries; what the keys make of it,
/// printed as `portsync config` prints it (each key's rendered value), reads back to the same
/// configuration.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTOML(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    guard let text = String(validating: FuzzInput(data, count).bytes, as: UTF8.self) else { return 0 }
    let lineCount = text.unicodeScalars.filter { $0 == "\n" }.count + 1
    let document: TOMLDocument
    do {
        document = try TOMLDocument.parse(text, fileName: "config.toml")
    } catch {
        require(error.origin.hasPrefix("config.toml:"), "error from \(error.origin)")
        let line = Int(error.origin.dropFirst("config.toml:".count))
        require(line != nil && (1...lineCount).contains(line!), "error on line \(error.origin) of a \(lineCount)-line file")
        require(!hasLineBreak(error.message), "error message on several lines: \(error.message)")
        return 0
    }
    require(document.entries.allSatisfy { (1...lineCount).contains($0.line) }, "an entry on a line the file does not have")

    let written = write(document)
    guard let again = try? TOMLDocument.parse(written, fileName: "written.toml") else {
        fatalError("property violated: the document, written out again, does not parse:\n\(written)")
    }
    require(again.tables.map(\.name) == document.tables.map(\.name), "tables differ once written out")
    require(again.entries.map { [$0.table, $0.key] } == document.entries.map { [$0.table, $0.key] }
            && again.entries.map(\.value) == document.entries.map(\.value), "entries differ once written out:\n\(written)")

    let context = ConfigurationKey.Context(baseDirectory: "/etc/portsync")
    var configuration = Configuration.defaults(environment: [:], userID: 1000)
    for entry in document.entries {
        guard let key = ConfigurationKey.named("\(entry.table).\(entry.key)") else { continue }
        try? key.apply(&configuration, entry.value, context)
    }
    var printed = ""
    for section in ConfigurationKey.printedSections(configuration) {
        printed += "[\(section)]\n"
        for key in ConfigurationKey.all where key.section == section {
            // An unset optional key (a client's port_index) is left out, as `portsync config` does.
            if let value = key.renderedValue(in: configuration) { printed += "\(key.name) = \(value)\n" }
        }
    }
    guard let reread = try? TOMLDocument.parse(printed, fileName: "printed.toml") else {
        fatalError("property violated: the printed configuration does not parse:\n\(printed)")
    }
    var rebuilt = Configuration.defaults(environment: [:], userID: 1000)
    for entry in reread.entries {
        do {
            try ConfigurationKey.named("\(entry.table).\(entry.key)")!.apply(&rebuilt, entry.value, context)
        } catch {
            fatalError("property violated: the printed \(entry.table).\(entry.key) is refused: \(error.message)")
        }
    }
    require(rebuilt == configuration, "the printed configuration reads back differently:\n\(printed)")
    return 0
}

/// The document as TOML: keys outside any table first, then each table with its keys.
func write(_ document: TOMLDocument) -> String {
    func value(_ value: TOMLValue) -> String {
        switch value {
        case .string(let text): JSONValue.quoted(text)
        case .integer(let number): String(number)
        case .boolean(let flag): String(flag)
        case .stringArray(let texts): "[" + texts.map(JSONValue.quoted).joined(separator: ", ") + "]"
        }
    }
    var text = ""
    for entry in document.entries where entry.table.isEmpty { text += "\(entry.key) = \(value(entry.value))\n" }
    for table in document.tables {
        text += "[\(table.name)]\n"
        for entry in document.entries where entry.table == table.name { text += "\(entry.key) = \(value(entry.value))\n" }
    }
    return text
}
