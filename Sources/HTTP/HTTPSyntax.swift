import Reactor
/// The bytes HTTP/1.1 allows where, checked on bytes (never on Characters: in Swift "\r\n" is
/// one Character, which slips past a check for "\r" or "\n").
public enum HTTPSyntax {
    /// RFC 9110 `tchar`: what a method or a header name is made of.
    public static func isTokenByte(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) && !"\"(),/:;<=>?@[\\]{}".utf8.contains(byte)
    }

    /// RFC 9110 `field-value`: visible characters, space, tab and any byte from 0x80 (UTF-8);
    /// never CR, LF, NUL, another control byte or DEL.
    public static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (0x20...0x7E).contains(byte) || byte >= 0x80
    }
}
