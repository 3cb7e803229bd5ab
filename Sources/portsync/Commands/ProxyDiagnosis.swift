import HTTP

/// What qBittorrent's answer to an anonymous first request says about the way to it: a 401
/// before any login comes from its Host-header (or CSRF) check, never from the login (an
/// anonymous request is answered 403); a 404 under a base path means the proxy passed the path
/// on. Each diagnosis names the proxy setting that fixes it.
enum ProxyDiagnosis {
    struct Finding: Equatable {
        let problem: String
        let fix: String
    }

    static func diagnose(probe response: HTTPResponse, url: HTTPURL, path: String) -> Finding? {
        let behindProxy = !url.basePath.isEmpty
        switch response.status {
        case 401 where behindProxy:
            return Finding(problem: "\(url) answered 401 before any login: qBittorrent's Host-header check refused the Host header the proxy passed on",
                           fix: "let the proxy send qBittorrent's own address as Host and the client's as X-Forwarded-Host (nginx: proxy_set_header Host $proxy_host; proxy_set_header X-Forwarded-Host $http_host; Caddy: header_up Host {upstream_hostport})")
        case 401:
            return Finding(problem: "\(url) answered 401 before any login: qBittorrent's Host-header check refused Host \(url.hostHeader)",
                           fix: "set [qbittorrent].url to the WebUI's own address and port (a port mapped by Docker differs), or set the proxy's Host to qBittorrent's address")
        case 404 where behindProxy:
            return Finding(problem: "\(url.target(path)) answered 404: the proxy passes the base path \(url.basePath) on to qBittorrent",
                           fix: "make the proxy strip it (nginx: location \(url.basePath)/ { proxy_pass http://QBITTORRENT:PORT/; } with the trailing slash)")
        default:
            return nil
        }
    }
}
