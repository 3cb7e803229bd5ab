import Domain
import Foundation
import Testing
import Reactor
@testable import Watchers
@testable import portsync

/// `[pia]`: its keys, its secret, what `strategy = "pia"` needs, and the settings `SyncPlan` makes.
@Suite struct ConfigurationPIATests {
    static let table = """
        [source]
        strategy = "pia"

        [pia]
        username = "p1234567"
        password_file = "pia-password"
        server_name = "amsterdam401"
        server_address = "212.102.57.138"
        interface = "wg0"

        [daemon]
        state_file = "/var/lib/portsync/state.json"

        """

    @Test func theTableMakesThePIASourceWithItsSignatureBesideTheStateFile() throws {
        let directory = TemporaryDirectory()
        directory.write("pia-password", "s3cret&=\n")
        let file = directory.write("config.toml", Self.table)
        let loaded = try loader(file: file).load()
        let settings = try #require(SyncPlan(loaded).sources.settings.only as? PIASettings)
        #expect(settings.username == "p1234567" && settings.password.value == "s3cret&=")
        #expect(settings.serverName == "amsterdam401" && settings.serverAddress == IPv4Address(212, 102, 57, 138))
        #expect(settings.interface == "wg0")
        #expect(settings.signatureFile == "/var/lib/portsync/state.json.pia")
        #expect(settings.caFile == nil && settings.tokenURL == PIASettings.tokenURL)
        #expect(settings.nameServers == [IPv4Address(10, 0, 0, 243), IPv4Address(10, 0, 0, 242)], "PIA's own, inside the tunnel")
        #expect(settings.apiTLS.serverName == "amsterdam401")
        #expect(settings.apiTLS.verification == .authority(pem: PIACertificate.authority), "PIA's CA, built in")
        let printed = ConfigurationPrinter.render(loaded)
        #expect(printed.contains("[pia]") && printed.contains("server_name = \"amsterdam401\""))
        #expect(!printed.contains("s3cret"))
        #expect(printed.contains("# pia password: set (file \(directory.path)/pia-password)"), "\(printed)")
    }

    @Test func thePasswordMayComeFromTheEnvironmentOrACredential() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("config.toml", Self.table.replacingOccurrences(of: "password_file = \"pia-password\"\n", with: ""))
        let fromVariable = try loader(file: file, environment: ["PORTSYNC_PIA_PASSWORD": "from-env"]).load()
        #expect(fromVariable.credentials.piaPassword?.value == "from-env")
        directory.write("credentials/pia-password", "from-credential")
        let fromCredential = try loader(file: file, environment: ["CREDENTIALS_DIRECTORY": "\(directory.path)/credentials"]).load()
        #expect(fromCredential.credentials.piaPassword?.value == "from-credential")
    }

    @Test(arguments: [
        ("username = \"p1234567\"\n", "strategy \"pia\" needs the account: set [pia] username"),
        ("password_file = \"pia-password\"\n", "strategy \"pia\" needs the account's password: set [pia] password_file (or the credential pia-password)"),
        ("server_name = \"amsterdam401\"\n", "strategy \"pia\" needs the server's common name: set [pia] server_name"),
    ])
    func whatThePIAStrategyNeeds(missing: String, message: String) {
        let directory = TemporaryDirectory()
        directory.write("pia-password", "s3cret")
        let file = directory.write("config.toml", Self.table.replacingOccurrences(of: missing, with: ""))
        #expect(throws: ConfigurationError.self) { try loader(file: file).load() }
        do {
            _ = try loader(file: file).load()
        } catch {
            #expect(error.description.hasSuffix(message), "\(error.description)")
        }
    }

    @Test(arguments: [
        ("[pia]\nserver_address = \"pia.example\"\n", "config.toml:2: server_address \"pia.example\" is not an IPv4 address"),
        ("[pia]\nserver_name = \"a b\"\n", "config.toml:2: server_name \"a b\" is not a server name (letters, digits, - and . only)"),
        ("[pia]\ntoken_url = \"http://10.0.0.1/token\"\n", "config.toml:2: token_url must be https: the password goes to it"),
        ("[pia]\ninterface = \"a/b\"\n", "config.toml:2: interface \"a/b\" is not a valid interface name"),
        ("[pia]\nnameserver = [\"dns.example\"]\n",
         "config.toml:2: nameserver \"dns.example\" is not an IPv4 address (the queries leave from the tunnel's IPv4 address)"),
        ("[pia]\nnameserver = [\"127.0.0.53\"]\n", "config.toml:2: nameserver 127.0.0.53 is on this machine, not reached through the tunnel"),
        ("[privatevpn]\nnameserver = [\"1.1.1.1\", \"1.0.0.1\", \"8.8.8.8\", \"9.9.9.9\"]\n",
         "config.toml:2: nameserver names 4 name servers; at most 3 are asked"),
        ("[privatevpn]\nnameserver = 53\n", "config.toml:2: nameserver must be an array of IPv4 addresses like [\"10.0.0.243\"], not a whole number"),
    ])
    func badValuesNameTheirLine(text: String, expected: String) {
        #expect(loadError(text) == expected)
    }

    @Test func theNameServersAskedThroughTheTunnelAreTheTablesOwn() throws {
        let directory = TemporaryDirectory()
        directory.write("pia-password", "s3cret")
        let pia = directory.write("pia.toml", Self.table.replacingOccurrences(of: "interface = \"wg0\"\n", with: "interface = \"wg0\"\nnameserver = []\n"))
        let empty = try #require(SyncPlan(try loader(file: pia).load()).sources.settings.only as? PIASettings)
        #expect(empty.nameServers == [], "[]: resolv.conf's, through the tunnel")
        let privateVPN = directory.write("privatevpn.toml", "[source]\nstrategy = \"privatevpn\"\n\n[privatevpn]\nnameserver = \"10.34.0.1\"\n")
        let loaded = try loader(file: privateVPN).load()
        let settings = try #require(SyncPlan(loaded).sources.settings.only as? PrivateVPNSettings)
        #expect(settings.nameServers == [IPv4Address(10, 34, 0, 1)], "a single address is a list of one")
        #expect(ConfigurationPrinter.render(loaded).contains("nameserver = [\"10.34.0.1\"]"))
        let defaults = try #require(SyncPlan(try loader(environment: ["PORTSYNC_SOURCE_STRATEGY": "privatevpn"]).load()).sources.settings.only as? PrivateVPNSettings)
        #expect(defaults.nameServers == [], "PrivateVPN's own are not published: resolv.conf's, through the tunnel")
    }

    @Test func theTableIsPrintedOnlyWithItsStrategy() throws {
        let printed = ConfigurationPrinter.render(try loader().load())
        #expect(!printed.contains("[pia]"))
    }
}

private extension Array {
    var only: Element? { count == 1 ? first : nil }
}
