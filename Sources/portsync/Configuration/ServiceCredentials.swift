import Reactor

/// The secrets a systemd unit hands its service (`LoadCredential=ID:PATH`), read from the unit
/// file and its drop-ins, so that `doctor` run by root checks with what the service will get,
/// not with what root's shell has. systemd reads those files as root before it starts the
/// service; the service sees them only as `$CREDENTIALS_DIRECTORY/ID`.
struct ServiceCredentials: Equatable {
    /// The unit file that was read.
    var unitFile: String
    /// Credential id → the file systemd reads it from, in the unit's order.
    var sources: [(id: String, path: String)]

    static func == (left: ServiceCredentials, right: ServiceCredentials) -> Bool {
        left.unitFile == right.unitFile && left.sources.elementsEqual(right.sources) { $0 == $1 }
    }

    func path(of id: String) -> String? {
        sources.last { $0.id == id }?.path
    }

    /// The directories systemd looks for system units in, first match wins; `SYSTEMD_UNIT_PATH`
    /// replaces them as it does for systemd (a trailing `:` adds them after).
    static func searchPath(environment: [String: String]) -> [String] {
        let defaults = ["/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system",
                        "/lib/systemd/system"]
        guard let variable = environment["SYSTEMD_UNIT_PATH"], !variable.isEmpty else { return defaults }
        let given = variable.split(separator: ":").map(String.init)
        return variable.hasSuffix(":") ? given + defaults : given
    }

    /// `unit` found in `searchPath`, with the drop-ins of every directory (`unit.d/*.conf`,
    /// by name); nil when no such unit exists or it loads no credential.
    static func find(unit: String, searchPath: [String]) -> ServiceCredentials? {
        guard let unitFile = searchPath.map({ "\($0)/\(unit)" }).first(where: FileContents.exists),
              let text = try? FileContents.read(atPath: unitFile, maxBytes: 1 << 20) else { return nil }
        var dropIns: [(name: String, path: String)] = []
        for directory in searchPath {
            for name in FileContents.names(inDirectory: "\(directory)/\(unit).d") where name.hasSuffix(".conf") {
                // A drop-in of the same name in an earlier directory hides the later ones.
                if !dropIns.contains(where: { $0.name == name }) { dropIns.append((name, "\(directory)/\(unit).d/\(name)")) }
            }
        }
        var sources: [(id: String, path: String)] = []
        apply(String(decoding: text, as: UTF8.self), to: &sources)
        for dropIn in dropIns.sorted(by: { $0.name < $1.name }) {
            if let bytes = try? FileContents.read(atPath: dropIn.path, maxBytes: 1 << 20) {
                apply(String(decoding: bytes, as: UTF8.self), to: &sources)
            }
        }
        return sources.isEmpty ? nil : ServiceCredentials(unitFile: unitFile, sources: sources)
    }

    /// The `LoadCredential=` lines of a unit file's `[Service]` section: `ID:PATH` adds one (a
    /// relative path is systemd's credential store, `/etc/credstore/PATH`), an empty value
    /// clears the list.
    static func apply(_ text: String, to sources: inout [(id: String, path: String)]) {
        var section = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingSpaces
            if line.hasPrefix("#") || line.hasPrefix(";") || line.isEmpty { continue }
            if line.hasPrefix("[") {
                section = line
                continue
            }
            guard section == "[Service]", let equals = line.firstIndex(of: "="),
                  line[..<equals].trimmingSpaces == "LoadCredential" else { continue }
            let value = line[line.index(after: equals)...].trimmingSpaces
            guard !value.isEmpty else {
                sources = []
                continue
            }
            guard let colon = value.firstIndex(of: ":") else { continue }
            let id = String(value[..<colon])
            let path = String(value[value.index(after: colon)...])
            guard !id.isEmpty, !path.isEmpty else { continue }
            sources.append((id, path.hasPrefix("/") ? path : "/etc/credstore/\(path)"))
        }
    }
}
