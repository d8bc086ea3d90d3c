// Text that came from the network, made safe to log: a peer must not be able to forge log lines
// (a newline) or drive the operator's terminal (ANSI escapes).

/// `text` with every control character (C0, DEL, C1, and the Unicode line and paragraph separators)
/// written as `\xNN` or `\u{NNNN}`, and cut to `limit` characters (marked with "…").
public func escapedForLog(_ text: String, limit: Int = 200) -> String {
    var out = ""
    var count = 0
    for scalar in text.unicodeScalars {
        if count >= limit { out += "…"; break }
        let v = scalar.value
        if v < 0x20 || v == 0x7f || (0x80...0x9f).contains(v) {
            out += "\\x" + String(v, radix: 16, uppercase: false).leftPadded(to: 2)
        } else if v == 0x2028 || v == 0x2029 || (0x202a...0x202e).contains(v) || (0x2066...0x2069).contains(v) {
            out += "\\u{" + String(v, radix: 16) + "}"
        } else if scalar == "\\" {
            out += "\\\\"
        } else {
            out.unicodeScalars.append(scalar)
        }
        count += 1
    }
    return out
}

extension String {
    fileprivate func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
