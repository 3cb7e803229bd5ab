import HTTP
import Sinks
import Testing

/// The reading of qBittorrent's first anonymous answer (the connect's probe).
@Suite struct ProxyDiagnosisTests {
    let path = "/api/v2/app/webapiVersion"

    @Test func a401WithoutAProxyNamesTheHostHeader() throws {
        let url = try HTTPURL(parsing: "http://192.168.1.5:8081")
        let diagnosis = ProxyDiagnosis(probe: HTTPResponse(status: 401), url: url, path: path)
        #expect(diagnosis == .hostRefused(url))
        #expect(diagnosis?.problem == "http://192.168.1.5:8081 answered 401 before any login: qBittorrent's Host-header check refused Host 192.168.1.5:8081")
    }

    @Test func behindAProxyA401IsTheHostPassedOnAndA404ThePathPassedOn() throws {
        let proxied = try HTTPURL(parsing: "https://home.example/qbt/")
        #expect(ProxyDiagnosis(probe: HTTPResponse(status: 401), url: proxied, path: path) == .hostPassedOn(proxied))
        #expect(ProxyDiagnosis(probe: HTTPResponse(status: 404), url: proxied, path: path) == .basePathPassedOn(proxied, path: path))
    }

    @Test func notLoggedInAndOtherAnswersSayNothing() throws {
        let proxied = try HTTPURL(parsing: "https://home.example/qbt/")
        for status in [200, 403, 500] {
            #expect(ProxyDiagnosis(probe: HTTPResponse(status: status), url: proxied, path: path) == nil)
        }
        #expect(ProxyDiagnosis(probe: HTTPResponse(status: 404), url: try HTTPURL(parsing: "http://nas:8080"), path: path) == nil)
    }
}
