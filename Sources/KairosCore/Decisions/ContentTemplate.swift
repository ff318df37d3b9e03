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

    /// Compiles `source`; errors point at `pointer` and say where in the text it failed.
    public init(_ source: String, format: ContentFormat, pointer: String = "") throws(DefinitionError) {
        self.source = source
        self.format = format
        guard source.contains("{{") else {
            // Plain text needs no engine: it is its own rendering.
            template = nil
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

    static func format(_ number: Double) -> String {
        if number.rounded() == number, abs(number) < 1e15 { return String(Int64(number)) }
        return String(number)
    }
}
