/// The TCP ports something listens on, from the kernel's socket tables (/proc/net/tcp and
/// /proc/net/tcp6): lines whose state is 0A (LISTEN); the local port is the hex after the colon.
public enum ListeningPorts {
    public static func parse(_ table: String) -> Set<UInt16> {
        var ports: Set<UInt16> = []
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 3, fields[3] == "0A",
                  let colon = fields[1].lastIndex(of: ":"),
                  let port = UInt16(fields[1][fields[1].index(after: colon)...], radix: 16) else { continue }
            ports.insert(port)
        }
        return ports
    }
}
