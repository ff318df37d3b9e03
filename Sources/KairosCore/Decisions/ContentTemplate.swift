import Foundation
import Mustache

/// What a variant's content is, which decides how substituted values are escaped.
public enum ContentFormat: String, Sendable, Hashable, CaseIterable, Codable {
    /// HTML-escaped values (`<` becomes `&lt;`).
    case html
    /// Values as they are.
    case text
    /// Values escaped for the inside of a JSON string.
    case json
}

/// A compiled Mustache template (hummingbird-project/swift-mustache). Missing variables
/// render as empty text; a template that does not compile is refused with its line and column.
public struct ContentTemplate: Sendable {
    public let source: String
    public let format: ContentFormat
    private let template: MustacheTemplate?
    /// Templates made only of text and variables (most content) also get a compiled form that
    /// renders without the library's dynamic lookups; anything else renders with the library.
    private let pieces: [Piece]?

    enum Piece: Sendable, Equatable {
        case text(String)
        case value(path: [String], escaped: Bool)
    }

    /// Compiles `source`; errors point at `pointer` and say where in the text it failed.
    public init(_ source: String, format: ContentFormat, pointer: String = "") throws(DefinitionError) {
        self.source = source
        self.format = format
        guard source.contains("{{") else {
            // Plain text needs no engine: it is its own rendering.
            template = nil
            pieces = nil
            return
        }
        ContentTemplate.registerFormats
        let directive: String
        switch format {
        case .html: directive = ""
        case .text: directive = "{{% CONTENT_TYPE: TEXT}}"
        case .json: directive = "{{% CONTENT_TYPE: KAIROS_JSON}}"
        }
        do {
            template = try MustacheTemplate(string: directive + source)
            pieces = ContentTemplate.simplePieces(source)
        } catch let error as MustacheTemplate.ParserError {
            var column = error.context.columnNumber
            if error.context.lineNumber == 1 { column = max(1, column - directive.count) }
            throw DefinitionError(
                pointer: pointer,
                message: "template does not compile at line \(error.context.lineNumber), column \(column): "
                    + ContentTemplate.explain(error.error))
        } catch {
            throw DefinitionError(pointer: pointer, message: "template does not compile: \(error)")
        }
    }

    /// Renders with `scope`; never fails (a missing value renders as empty text).
    public func render(_ scope: any MustacheParent) -> String {
        guard let template else { return source }
        return template.render(scope)
    }

    /// Renders for a decision: the compiled form when the template has one and every value
    /// it reads is a scalar, otherwise the library.
    func render(scope: TemplateScope, forceLibrary: Bool = false) -> String {
        guard let template else { return source }
        guard let pieces, !forceLibrary else { return template.render(scope) }
        var output = ""
        output.reserveCapacity(source.utf8.count + 32)
        for piece in pieces {
            switch piece {
            case .text(let text): output += text
            case .value(let path, let escaped):
                switch scope.scalar(at: path) {
                case .missing: break
                case .text(let text):
                    guard escaped else { output += text; break }
                    switch format {
                    case .html: ContentTemplate.appendHTMLEscaped(text, to: &output)
                    case .text: output += text
                    case .json: output += JSONStringContent().escapeText(text)
                    }
                case .unsupported: return template.render(scope)
                }
            }
        }
        return output
    }

    /// Text and `{{name}}`, `{{a.b}}`, `{{{name}}}`, `{{& name}}` tags only; nil for anything else.
    static func simplePieces(_ source: String) -> [Piece]? {
        var pieces: [Piece] = []
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { pieces.append(.text(String(rest[..<open.lowerBound]))) }
            var tag = rest[open.upperBound...]
            var escaped = true
            let close: Range<Substring.Index>
            if tag.first == "{" {
                tag = tag.dropFirst()
                guard let end = tag.range(of: "}}}") else { return nil }
                close = end
                escaped = false
            } else {
                guard let end = tag.range(of: "}}") else { return nil }
                close = end
            }
            var name = tag[..<close.lowerBound].trimmingCharacters(in: .whitespaces)[...]
            if escaped, name.first == "&" {
                escaped = false
                name = name.dropFirst().drop { $0 == " " }
            }
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
            guard !name.isEmpty, name.allSatisfy({ allowed.contains($0) }), name.first != ".", name.last != ".",
                !name.contains("..")
            else { return nil }
            pieces.append(.value(path: name.split(separator: ".").map(String.init), escaped: escaped))
            rest = tag[close.upperBound...]
        }
        if !rest.isEmpty { pieces.append(.text(String(rest))) }
        return pieces
    }

    /// The library's HTML escaping (`<`, `>`, `&`, `"`, `'`).
    static func appendHTMLEscaped(_ text: String, to output: inout String) {
        guard text.utf8.contains(where: { $0 == 60 || $0 == 62 || $0 == 38 || $0 == 34 || $0 == 39 }) else {
            output += text
            return
        }
        for character in text {
            switch character {
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "&": output += "&amp;"
            case "\"": output += "&quot;"
            case "'": output += "&#39;"
            default: output.append(character)
            }
        }
    }

    private static let registerFormats: Void = {
        MustacheContentTypes.register(JSONStringContent(), named: "KAIROS_JSON")
    }()

    private static func explain(_ error: any Error) -> String {
        guard let error = error as? MustacheTemplate.Error else { return "\(error)" }
        switch error {
        case .sectionCloseNameIncorrect: return "a section is closed with a different name than it was opened with"
        case .unfinishedName: return "a tag is not closed (expected '}}')"
        case .expectedSectionEnd: return "a section is never closed (expected '{{/name}}')"
        case .invalidSetDelimiter: return "the set-delimiter tag is malformed"
        case .transformAppliedToInheritanceSection, .illegalTokenInsideInheritSection, .textInsideInheritSection:
            return "template inheritance is not supported here"
        case .invalidConfigVariableSyntax, .unrecognisedConfigVariable: return "'{{%' configuration tags are not supported"
        }
    }
}

/// Escapes substituted values for the inside of a JSON string.
struct JSONStringContent: MustacheContentType {
    func escapeText(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where scalar.value < 0x20 || scalar == "\u{2028}" || scalar == "\u{2029}":
                escaped += String(format: "\\u%04x", scalar.value)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}

/// A JSON object as templates see it: nested objects and arrays are walked with dots
/// and sections; numbers print without a needless `.0`.
/// A value a compiled template reads.
enum TemplateScalar {
    case missing
    case text(String)
    /// An array or object: only the library renders those.
    case unsupported
}

/// A contact's traits as a template sees them (`{{traits.plan}}`).
struct TemplateTraits: MustacheParent {
    let traits: JSONObject

    func child(named name: String) -> Any? { traits[name].flatMap(TemplateObject.value) }
}

struct TemplateObject: MustacheParent {
    let object: [String: JSONValue]

    func child(named name: String) -> Any? { object[name].flatMap(TemplateObject.value) }

    static func value(_ json: JSONValue) -> Any? {
        switch json {
        case .null: return nil
        case .bool(let value): return value
        case .string(let value): return value
        case .number(let value): return TemplateObject.format(value)
        case .array(let items): return items.compactMap(TemplateObject.value)
        case .object(let object): return TemplateObject(object: object)
        }
    }

    /// The scalar at `path` below a contact's traits.
    static func scalar(_ traits: JSONObject, _ path: ArraySlice<String>) -> TemplateScalar {
        guard let first = path.first else { return .missing }
        return scalar(found: traits[first], below: path.dropFirst())
    }

    /// The scalar at `path` below `object`, as the library would render it.
    static func scalar(_ object: [String: JSONValue], _ path: ArraySlice<String>) -> TemplateScalar {
        guard let first = path.first else { return .missing }
        return scalar(found: object[first], below: path.dropFirst())
    }

    /// The scalar at `rest` below `value` (the value the path's first name found, if any).
    private static func scalar(found value: JSONValue?, below rest: ArraySlice<String>) -> TemplateScalar {
        guard let value else { return .missing }
        guard !rest.isEmpty else { return scalar(value) }
        switch value {
        case .object(let inner): return scalar(inner, rest)
        case .array: return .unsupported
        default: return .missing
        }
    }

    static func scalar(_ value: JSONValue) -> TemplateScalar {
        switch value {
        case .null: return .missing
        case .bool(let flag): return .text(flag ? "true" : "false")
        case .string(let text): return .text(text)
        case .number(let number): return .text(format(number))
        case .array, .object: return .unsupported
        }
    }

    static func format(_ number: Double) -> String {
        if number.rounded() == number, abs(number) < 1e15 { return String(Int64(number)) }
        return String(number)
    }
}
