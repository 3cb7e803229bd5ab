import HTTP

/// What qBittorrent's answer to the anonymous first request of a connect (`webapiVersion`) says
/// about the way to it: a 401 before any login comes from its Host-header (or CSRF) check,
/// never from the login (an anonymous request is answered 403); a 404 under a base path means
/// the proxy passed the path on. Each diagnosis names the proxy setting that fixes it.
public enum ProxyDiagnosis: Equatable, Sendable {
    /// 401 behind a reverse proxy (a base path): the proxy passed the client's Host on.
    case hostPassedOn(HTTPURL)
    /// 401 with no proxy: the URL's Host (a port Docker maps, a name) is not qBittorrent's own.
    case hostRefused(HTTPURL)
    /// 404 under a base path: the proxy passes the path on instead of stripping it.
    case basePathPassedOn(HTTPURL, path: String)

    public init?(probe response: HTTPResponse, url: HTTPURL, path: String) {
        let behindProxy = !url.basePath.isEmpty
        switch response.status {
        case 401 where behindProxy: self = .hostPassedOn(url)
        case 401: self = .hostRefused(url)
        case 404 where behindProxy: self = .basePathPassedOn(url, path: path)
        default: return nil
        }
    }

    public var problem: String {
        switch self {
        case .hostPassedOn(let url):
            "\(url) answered 401 before any login: qBittorrent's Host-header check refused the Host header the proxy passed on"
        case .hostRefused(let url):
            "\(url) answered 401 before any login: qBittorrent's Host-header check refused Host \(url.hostHeader)"
        case .basePathPassedOn(let url, let path):
            "\(url.target(path)) answered 404: the proxy passes the base path \(url.basePath) on to qBittorrent"
        }
    }

    public var fix: String {
        switch self {
        case .hostPassedOn:
            "let the proxy send qBittorrent's own address as Host and the client's as X-Forwarded-Host (nginx: proxy_set_header Host $proxy_host; proxy_set_header X-Forwarded-Host $http_host; Caddy: header_up Host {upstream_hostport})"
        case .hostRefused:
            "set [qbittorrent].url to the WebUI's own address and port (a port mapped by Docker differs), or set the proxy's Host to qBittorrent's address"
        case .basePathPassedOn(let url, _):
            "make the proxy strip it (nginx: location \(url.basePath)/ { proxy_pass http://QBITTORRENT:PORT/; } with the trailing slash)"
        }
    }
}
