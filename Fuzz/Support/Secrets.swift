@testable import HTTP
import Sinks

/// Every form of the settings' password a peer may echo (as it is, percent-encoded, as a JSON
/// string, as Basic credentials): none may reach a message or the status.
struct SecretForms {
    let settings: ClientSettings
    private let forms: [[UInt8]]

    init(_ settings: ClientSettings) {
        self.settings = settings
        guard let password = settings.password?.value, !password.isEmpty else {
            forms = []
            return
        }
        let basic = Base64.encode(Array("\(settings.username):\(password)".utf8))
        forms = [password, FormEncoding.percentEncode(password), String(JSONValue.quoted(password).dropFirst().dropLast()), basic].map { Array($0.utf8) }
    }

    func check(_ message: String) {
        require(!hasLineBreak(message), "a line break in \(message.debugDescription)")
        let bytes = Array(message.utf8)
        for form in forms where bytes.count >= form.count {
            let found = (0...(bytes.count - form.count)).contains { bytes[$0..<($0 + form.count)].elementsEqual(form) }
            require(!found, "the password (as \(String(decoding: form, as: UTF8.self).debugDescription)) in \(message.debugDescription)")
        }
    }

    func check(_ status: SinkStatus) {
        switch status.health {
        case .failing(let text), .unreachable(let text), .loginRefused(let text): check(text)
        case .idle, .applying, .verified: break
        }
        if let version = status.version { check(version) }
    }
}
