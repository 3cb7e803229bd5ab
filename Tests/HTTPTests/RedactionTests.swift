import Domain
import HTTP
import Reactor
import Testing

/// Issue 20: a configured secret echoed by a peer, in whatever form it went there, never
/// leaves in what portsync quotes.
@Suite struct RedactionTests {
    static let secret = Secret(value: "p@ss wörd&\"x\"", origin: "test")
    let redaction = Redaction([secret], basicUser: "admin")

    @Test(arguments: [
        "p@ss wörd&\"x\"",
        "p%40ss%20w%C3%B6rd%26%22x%22",
        "p%40ss+w%C3%B6rd%26%22x%22",
        "p%40ss%20w%c3%b6rd%26%22x%22",
        "p@ss wörd&\\\"x\\\"",
        "p@ss w\\u00f6rd&\\\"x\\\"",
        "p@ss wörd&amp;&quot;x&quot;",
        "YWRtaW46cEBzcyB3w7ZyZCYieCI=",
    ])
    func everyFormIsReplaced(form: String) {
        #expect(redaction("answered 500 \"username=admin&password=\(form)&x=1\"") == "answered 500 \"username=admin&password=<redacted>&x=1\"")
    }

    @Test func aSecretWithALineBreakIsFoundAsOneLinePrintsItAndTheResultIsOneLine() {
        let redaction = Redaction([Secret(value: "a\nb\tc", origin: "test")])
        #expect(redaction("body: a\nb\tc\r\nnext") == "body: <redacted>\\r\\nnext")
        #expect(redaction("body: a\\nb\\tc") == "body: <redacted>")
        #expect(Redaction.none("two\nlines") == "two\\nlines")
    }

    @Test func anExcerptCutInsideTheSecretLosesItsBeginningToo() {
        let cut = "password=" + String(Self.secret.value.prefix(5))
        let excerpt = String(repeating: "x", count: 80 - cut.count) + cut
        #expect(excerpt.count == 80)
        let quoted = "answered 500 \"\((excerpt + Self.secret.value + "&more").oneLine(limit: 80))\""
        #expect(quoted.hasSuffix("password=p@ss …\""))
        #expect(redaction(quoted) == "answered 500 \"\(String(repeating: "x", count: 80 - cut.count))password=<redacted>…\"")
    }

    @Test func textWithoutTheSecretIsUntouchedAndNoSecretsChangeNothing() {
        #expect(redaction("logged in to qBittorrent as \"admin\"") == "logged in to qBittorrent as \"admin\"")
        #expect(redaction("an excerpt that ends…") == "an excerpt that ends…")
        #expect(Redaction([nil, Secret(value: "", origin: "empty")])("password=") == "password=")
    }
}
