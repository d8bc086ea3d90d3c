// A small TOML reader for Sixgate's config files: tables, dotted-less keys, strings, integers,
// booleans and arrays of those, each value remembering its line so every error can name
// file:line:key. (The TOML package on this machine's registry, TOMLKit, cannot be resolved here:
// it depends on a package that is not available; see docs/ARCHITECTURE.md.)

import Foundation

/// A config value and where it was written.
public struct ConfigValue: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case string(String), integer(Int), boolean(Bool), array([ConfigValue])
    }
    public var kind: Kind
    public var line: Int
}

/// Something in a config file that is accepted but worth the operator's attention, named like an
/// error (file:line:key) and said as a warning.
public struct ConfigWarning: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var key: String?
    public var message: String
    public init(file: String, line: Int, key: String?, message: String) {
        self.file = file; self.line = line; self.key = key; self.message = message
    }
    public var description: String {
        "\(file):\(line): " + (key.map { "\(escapedForLog($0, limit: 40)): " } ?? "") + "warning: \(message)"
    }
}

/// Errors in config files: always the file, the line and (when there is one) the key.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var key: String?
    public var message: String
    public init(file: String, line: Int, key: String?, message: String) {
        self.file = file; self.line = line; self.key = key; self.message = message
    }
    /// A key longer than 40 characters (a token the parser did not know) is cut short, with
    /// control characters escaped.
    public var description: String {
        if let key { return "\(file):\(line): \(escapedForLog(key, limit: 40)): \(message)" }
        return "\(file):\(line): \(message)"
    }
}

/// A parsed file: `table.key` -> value, plus the line where each table began.
public struct ConfigFile: Sendable {
    public let path: String
    public private(set) var values: [String: ConfigValue] = [:]
    public private(set) var tables: [String: Int] = [:]
    /// Keys in file order, to report unknown ones in order.
    public private(set) var order: [String] = []

    /// Parses TOML text (the subset above). `path` is used in messages only.
    public init(text: String, path: String) throws(ConfigError) {
        self.path = path
        // A UTF-8 byte-order mark (Windows editors) is not part of the first key; CR is trimmed below.
        let text = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        var table = ""
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = Self.stripComment(String(raw)).trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), !line.hasPrefix("[["), line.count > 2 else {
                    throw ConfigError(file: path, line: lineNumber, key: nil, message: "a table header looks like [name]")
                }
                table = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespacesAndNewlines)
                guard Self.isBareKey(table) else { throw ConfigError(file: path, line: lineNumber, key: nil, message: "table name \(table.debugDescription) must be letters, digits, - or _") }
                guard tables[table] == nil else { throw ConfigError(file: path, line: lineNumber, key: nil, message: "table [\(table)] appears twice") }
                tables[table] = lineNumber
                continue
            }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigError(file: path, line: lineNumber, key: nil, message: "expected key = value")
            }
            let key = String(line[..<eq]).trimmingCharacters(in: .whitespacesAndNewlines)
            guard Self.isBareKey(key) else { throw ConfigError(file: path, line: lineNumber, key: key, message: "a key must be letters, digits, - or _") }
            let full = table.isEmpty ? key : table + "." + key
            guard values[full] == nil else { throw ConfigError(file: path, line: lineNumber, key: full, message: "set twice (first on line \(values[full]!.line))") }
            var rest = Substring(String(line[line.index(after: eq)...]).trimmingCharacters(in: .whitespacesAndNewlines))
            let value: ConfigValue
            do { value = try Self.parseValue(&rest, line: lineNumber) } catch {
                throw ConfigError(file: path, line: lineNumber, key: full, message: error.message)
            }
            guard rest.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw ConfigError(file: path, line: lineNumber, key: full, message: "unexpected text after the value") }
            values[full] = value
            order.append(full)
        }
    }

    struct ValueError: Error { var message: String }

    /// Arrays nest at most this deep (no config needs more than 2; a deeper one once overflowed
    /// the stack: found by fuzz-config-toml).
    static let maximumNesting = 16

    static func parseValue(_ s: inout Substring, line: Int, depth: Int = 0) throws(ValueError) -> ConfigValue {
        s = s.drop(while: { $0 == " " || $0 == "\t" })
        guard let first = s.first else { throw ValueError(message: "missing value") }
        switch first {
        case "\"":
            s = s.dropFirst()
            var out = ""
            while let c = s.first {
                s = s.dropFirst()
                if c == "\"" { return ConfigValue(kind: .string(out), line: line) }
                if c == "\\" {
                    guard let e = s.first else { break }
                    s = s.dropFirst()
                    switch e {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "\"": out.append("\"")
                    case "\\": out.append("\\")
                    default: throw ValueError(message: "unknown escape \\\(e) in a string")
                    }
                } else {
                    out.append(c)
                }
            }
            throw ValueError(message: "unterminated string")
        case "'":
            s = s.dropFirst()
            guard let end = s.firstIndex(of: "'") else { throw ValueError(message: "unterminated string") }
            let v = String(s[..<end])
            s = s[s.index(after: end)...]
            return ConfigValue(kind: .string(v), line: line)
        case "[":
            guard depth < Self.maximumNesting else { throw ValueError(message: "arrays nested deeper than \(Self.maximumNesting)") }
            s = s.dropFirst()
            var items: [ConfigValue] = []
            while true {
                s = s.drop(while: { $0 == " " || $0 == "\t" })
                if s.first == "]" { s = s.dropFirst(); return ConfigValue(kind: .array(items), line: line) }
                items.append(try parseValue(&s, line: line, depth: depth + 1))
                s = s.drop(while: { $0 == " " || $0 == "\t" })
                if s.first == "," { s = s.dropFirst(); continue }
                guard s.first == "]" else { throw ValueError(message: "expected , or ] in an array") }
            }
        default:
            let word = s.prefix(while: { !$0.isWhitespace && $0 != "," && $0 != "]" })
            s = s.dropFirst(word.count)
            if word == "true" { return ConfigValue(kind: .boolean(true), line: line) }
            if word == "false" { return ConfigValue(kind: .boolean(false), line: line) }
            if let i = Int(String(word.filter { $0 != "_" })) { return ConfigValue(kind: .integer(i), line: line) }
            throw ValueError(message: "\(String(word).debugDescription) is not a value (strings go in double quotes)")
        }
    }

    static func stripComment(_ line: String) -> String {
        var inDouble = false, inSingle = false, escaped = false
        var out = ""
        for c in line {
            if escaped { escaped = false; out.append(c); continue }
            if c == "\\" && inDouble { escaped = true; out.append(c); continue }
            if c == "\"" && !inSingle { inDouble.toggle() }
            if c == "'" && !inDouble { inSingle.toggle() }
            if c == "#" && !inDouble && !inSingle { break }
            out.append(c)
        }
        return out
    }

    static func isBareKey(_ k: String) -> Bool {
        !k.isEmpty && k.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
    }

    // MARK: Typed reads

    /// An error about `key`, at the line where it was written (or its table began).
    public func error(_ key: String, _ message: String) -> ConfigError {
        let line = values[key]?.line ?? tables[key.split(separator: ".").dropLast().joined(separator: ".")] ?? 0
        return ConfigError(file: path, line: line, key: key, message: message)
    }

    /// Whether `key` was written in the file.
    public func has(_ key: String) -> Bool { values[key] != nil }

    public func string(_ key: String) throws(ConfigError) -> String? {
        guard let v = values[key] else { return nil }
        guard case .string(let s) = v.kind else { throw error(key, "expected a string in double quotes") }
        return s
    }

    public func integer(_ key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let v = values[key] else { return nil }
        guard case .integer(let i) = v.kind else { throw error(key, "expected a whole number") }
        guard range.contains(i) else { throw error(key, "\(i) is out of range \(range.lowerBound)-\(range.upperBound)") }
        return i
    }

    public func boolean(_ key: String) throws(ConfigError) -> Bool? {
        guard let v = values[key] else { return nil }
        guard case .boolean(let b) = v.kind else { throw error(key, "expected true or false") }
        return b
    }

    public func strings(_ key: String) throws(ConfigError) -> [String]? {
        guard let v = values[key] else { return nil }
        if case .string(let s) = v.kind { return [s] }
        guard case .array(let items) = v.kind else { throw error(key, "expected a list of strings") }
        var out: [String] = []
        for item in items {
            guard case .string(let s) = item.kind else { throw error(key, "expected a list of strings") }
            out.append(s)
        }
        return out
    }

    /// Parses a string with `parse`, turning its failure into an error at the key's line.
    public func parsed<T>(_ key: String, _ what: String, _ parse: (String) -> T?) throws(ConfigError) -> T? {
        guard let s = try string(key) else { return nil }
        guard let v = parse(s) else { throw error(key, "\(s.debugDescription) is not \(what)") }
        return v
    }

    /// Every key that is not in `known`: a typo should not be silently ignored.
    public func rejectUnknownKeys(_ known: Set<String>) throws(ConfigError) {
        for key in order where !known.contains(key) {
            let suggestion = known.min { Self.distance($0, key) < Self.distance($1, key) }
            var message = "unknown key"
            if let s = suggestion, Self.distance(s, key) <= 3 { message += "; did you mean \(s)?" }
            throw error(key, message)
        }
        for (table, line) in tables where !known.contains(where: { $0.hasPrefix(table + ".") }) {
            throw ConfigError(file: path, line: line, key: nil, message: "unknown table [\(table)]")
        }
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var prev = row[0]; row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }
}
