@testable import HTTP
import Sinks

/// Every form of the settings' password a peer may echo: none may reach a message.
func checkNoSecret(_ message: String, _ settings: ClientSettings) {
    require(!hasLineBreak(message), "a line break in \(message.debugDescription)")
    guard let password = settings.password?.value else { return }
    let basic = Base64.encode(Array("\(settings.username):\(password)".utf8))
    for form in [password, FormEncoding.percentEncode(password), String(JSONValue.quoted(password).dropFirst().dropLast()), basic] {
        require(!message.contains(form), "the password (as \(form.debugDescription)) in \(message.debugDescription)")
    }
}

func checkNoSecret(_ status: SinkStatus, _ settings: ClientSettings) {
    switch status.health {
    case .failing(let text), .unreachable(let text), .loginRefused(let text): checkNoSecret(text, settings)
    case .idle, .applying, .verified: break
    }
    if let version = status.version { checkNoSecret(version, settings) }
}
