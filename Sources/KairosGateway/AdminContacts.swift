import Foundation
import KairosCore
import KairosEngine
import Synchronization

extension AdminAPI {
    // MARK: Contacts

    static let contactRoutes: [AdminRoute] = [
        AdminRoute("GET", "contacts/search", .tenant) { api, call in
            let query = call.query
            guard let trait = query["trait"], !trait.isEmpty, let prefix = query["prefix"], !prefix.isEmpty else {
                throw AdminAPI.invalid("give trait (such as email) and prefix in the query")
            }
            let page = try await api.engine.searchContacts(
                tenant: call.tenant, trait: trait, prefix: prefix, after: try AdminAPI.cursor(query),
                limit: try AdminAPI.integer(query, "limit", 1...1000, default: 50), now: call.now)
            var object: [String: JSONValue] = ["contacts": .array(page.contacts.map(ContactExportWriter.json))]
            if let next = page.nextCursor { object["next"] = .string(String(next)) }
            return .json(200, .object(object))
        },
        AdminRoute(
            "GET", "contacts/events", .tenant,
            immediate: { api, call in try AdminAPI.contactViewIfIdle(api, call).map { try AdminAPI.events(of: $0, call) } }
        ) { api, call in try AdminAPI.events(of: try await AdminAPI.contactView(api, call), call) },
        AdminRoute(
            "GET", "contacts/scores", .tenant,
            immediate: { api, call in try AdminAPI.contactViewIfIdle(api, call).map(AdminAPI.scores(of:)) }
        ) { api, call in AdminAPI.scores(of: try await AdminAPI.contactView(api, call)) },
        AdminRoute("GET", "contacts/export", .tenant) { api, call in
            let format = call.query["format"] ?? "ndjson"
            guard let fileFormat = ContactFileFormat(rawValue: format) else { throw AdminAPI.invalid("format must be csv or ndjson") }
            let segment = call.query["segment"].flatMap { $0.isEmpty ? nil : $0 }
            return try await AdminAPI.export(api, call, segment: segment, format: fileFormat)
        },
        AdminRoute("POST", "contacts/import", .tenant) { api, call in try await api.importContacts(call) },
        AdminRoute(
            "GET", "contacts", .tenant,
            immediate: { api, call in try AdminAPI.contactJSONIfIdle(api, call).map { .jsonBytes(200, $0) } }
        ) { api, call in .jsonBytes(200, try await AdminAPI.contactView(api, call).jsonBytes()) },
        AdminRoute("PATCH", "contacts", .tenant) { api, call in
            let object = try AdminAPI.object(call.body)
            try AdminAPI.refuseUnknown(object, allowed: ["traits"])
            guard case .object(let traits)? = object["traits"], !traits.isEmpty else {
                throw AdminAPI.invalid("\"traits\" must be an object of the traits to set (null clears one)")
            }
            let view = try await api.engine.updateTraits(tenant: call.tenant, try AdminAPI.reference(call.query), traits: traits, now: call.now)
            return .jsonBytes(200, view.jsonBytes())
        },
    ]

    /// Which contact a query or body names: userId, anonymousId, email or id.
    static func reference(_ fields: [String: String]) throws(HTTPResponseError) -> Engine.ContactReference {
        if let userId = fields["userId"], !userId.isEmpty { return .userId(userId) }
        if let anonymousId = fields["anonymousId"], !anonymousId.isEmpty { return .anonymousId(anonymousId) }
        if let email = fields["email"], !email.isEmpty { return .email(email) }
        if let raw = fields["id"], !raw.isEmpty {
            guard let id = UInt64(raw) else { throw invalid("id must be a contact id (a whole number), got '\(raw)'") }
            return .id(id)
        }
        throw invalid("say which contact: userId, anonymousId, email or id")
    }

    static func events(of view: ContactView, _ call: AdminCall) throws -> HTTPResponse {
        let limit = try AdminAPI.integer(call.query, "limit", 1...1000, default: 50)
        var writer = JSONWriter()
        writer.object { json in
            json.field("id", integer: Int64(bitPattern: view.id))
            json.field("recentEvents", array: view.recentEvents.prefix(limit)) { $1.write(into: &$0) }
            json.field("eventCounts", array: view.eventCounts) { $1.write(into: &$0) }
        }
        return .jsonBytes(200, writer.bytes)
    }

    static func scores(of view: ContactView) -> HTTPResponse {
        var writer = JSONWriter()
        writer.object { json in
            json.field("id", integer: Int64(bitPattern: view.id))
            json.field("scores", array: view.scores) { $1.write(into: &$0) }
            json.field("history", array: view.scoreHistory) { $1.write(into: &$0) }
        }
        return .jsonBytes(200, writer.bytes)
    }

    /// The contact without waiting for its actor; nil while the actor is changing it.
    static func contactViewIfIdle(_ api: AdminAPI, _ call: AdminCall) throws -> ContactView? {
        switch try api.engine.contactIfIdle(tenant: call.tenant, try reference(call.query), now: call.now) {
        case .found(let view): return view
        case .unknown: throw HTTPResponseError(.error(404, "not_found", "no such contact"))
        case .busy: return nil
        }
    }

    static func contactJSONIfIdle(_ api: AdminAPI, _ call: AdminCall) throws -> [UInt8]? {
        switch try api.engine.contactJSONIfIdle(tenant: call.tenant, try reference(call.query), now: call.now) {
        case .found(let bytes): return bytes
        case .unknown: throw HTTPResponseError(.error(404, "not_found", "no such contact"))
        case .busy: return nil
        }
    }

    static func contactView(_ api: AdminAPI, _ call: AdminCall) async throws -> ContactView {
        guard let view = try await api.engine.contact(tenant: call.tenant, try reference(call.query), now: call.now) else {
            throw HTTPResponseError(.error(404, "not_found", "no such contact"))
        }
        return view
    }

    /// Contacts as CSV or NDJSON, `limit` at a time; `x-next-cursor` says where the next page starts.
    static func export(_ api: AdminAPI, _ call: AdminCall, segment: String?, format: ContactFileFormat) async throws -> HTTPResponse {
        let limit = try integer(call.query, "limit", 1...1_000_000, default: 100_000)
        let page = try await api.engine.exportContacts(
            tenant: call.tenant, segment: segment, after: try cursor(call.query), limit: limit, now: call.now)
        var headers: [(name: String, value: String)] = [
            ("content-type", format == .csv ? "text/csv; charset=utf-8" : "application/x-ndjson"),
            ("content-disposition", "attachment; filename=\"\(segment ?? "contacts").\(format.rawValue)\""),
        ]
        if let next = page.nextCursor { headers.append(("x-next-cursor", String(next))) }
        return HTTPResponse(status: 200, headers: headers, body: ContactExportWriter.write(page.contacts, format: format))
    }

    // MARK: Import

    /// Imports a CSV or NDJSON body (by Content-Type, or `?format=`) in batches as it reads it.
    /// Answers with the outcome when done, or at once with `?async=true` (then poll
    /// `GET /v1/admin/imports/{id}`). `Idempotency-Key` (or `?importId=`) names the import, so
    /// sending the same file again under the same name changes nothing.
    func importContacts(_ call: AdminCall) async throws -> HTTPResponse {
        let query = call.query
        let contentType = call.request.header("content-type")?.lowercased() ?? ""
        let format: ContactFileFormat
        if let given = query["format"] {
            guard let parsed = ContactFileFormat(rawValue: given) else { throw AdminAPI.invalid("format must be csv or ndjson") }
            format = parsed
        } else if contentType.hasPrefix("text/csv") {
            format = .csv
        } else if contentType.hasPrefix("application/x-ndjson") || contentType.hasPrefix("application/ndjson") {
            format = .ndjson
        } else {
            return .error(415, "unsupported_media_type", "send text/csv or application/x-ndjson (or say ?format=csv|ndjson)")
        }
        let importId = query["importId"] ?? call.request.header("idempotency-key") ?? ImportJobs.newId()
        guard !importId.isEmpty, importId.count <= 64, importId.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw AdminAPI.invalid("the import id must be 1–64 letters, digits, '-' or '_'")
        }
        let reader: ContactImportReader
        do {
            let parser = FastJSONBox()
            reader = try ContactImportReader(call.request.body, format: format) { bytes in try parser.parse(bytes) }
        } catch {
            return .error(400, "invalid_file", error.message)
        }
        guard let job = imports.start(tenant: call.tenant, id: importId, totalBytes: reader.totalBytes) else {
            return .error(409, "import_running", "import '\(importId)' is still running")
        }
        let engine = self.engine
        let tenant = call.tenant, now = call.now
        let work = Task { await ImportJobs.run(reader, job: job, engine: engine, tenant: tenant, importId: importId, now: now) }
        if query["async"] == "true" {
            var response = HTTPResponse.json(202, job.snapshot().json)
            response.headers.append(("location", "/v1/admin/imports/\(importId)"))
            return response
        }
        await work.value
        let outcome = job.snapshot()
        if outcome.status == "failed", outcome.imported == 0 {
            return .json(503, outcome.json)
        }
        return .json(200, outcome.json)
    }
}

/// The simdjson parser for one import (a parser is not shared between threads).
final class FastJSONBox: @unchecked Sendable {
    // @unchecked: used by one import task at a time.
    private let parser = FastJSON()
    func parse(_ bytes: [UInt8]) throws -> JSONValue { try parser.parse(bytes) }
}

/// How an import is going (or went).
struct ImportProgress: Sendable {
    var id: String
    var status = "running"
    var totalBytes: Int
    var bytesRead = 0
    var rows = 0
    var imported = 0
    var duplicates = 0
    var failed = 0
    /// The first 1,000 row errors.
    var errors: [ImportRowError] = []
    var message: String?
    var started = ContinuousClock.now
    var seconds = 0.0

    var json: JSONValue {
        var object: [String: JSONValue] = [
            "importId": .string(id), "status": .string(status), "bytesRead": .number(Double(bytesRead)),
            "totalBytes": .number(Double(totalBytes)), "rows": .number(Double(rows)), "imported": .number(Double(imported)),
            "duplicates": .number(Double(duplicates)), "failed": .number(Double(failed)),
            "errors": .array(errors.map { ["line": .number(Double($0.line)), "message": .string($0.message)] }),
            "seconds": .number((seconds * 1000).rounded() / 1000),
            "rowsPerSecond": .number(seconds > 0 ? (Double(rows) / seconds).rounded() : 0),
        ]
        if let message { object["message"] = .string(message) }
        return .object(object)
    }
}

/// Imports since the server started, by tenant and id, for progress reads.
final class ImportJobs: Sendable {
    final class Job: Sendable {
        let progress: Mutex<ImportProgress>
        init(_ progress: ImportProgress) { self.progress = Mutex(progress) }
        func snapshot() -> ImportProgress { progress.withLock { $0 } }
        func update(_ change: (inout ImportProgress) -> Void) { progress.withLock { change(&$0) } }
    }

    private let jobs = Mutex<[String: Job]>([:])
    static let batchSize = 5_000
    static let keptErrors = 1_000

    static func newId() -> String {
        var generator = SystemRandomNumberGenerator()
        return "imp_" + String(generator.next() as UInt64, radix: 36)
    }

    /// Registers a new run of an import; nil while one of the same id runs.
    func start(tenant: String, id: String, totalBytes: Int) -> Job? {
        jobs.withLock { jobs in
            let key = tenant + "/" + id
            if let existing = jobs[key], existing.snapshot().status == "running" { return nil }
            let job = Job(ImportProgress(id: id, totalBytes: totalBytes))
            jobs[key] = job
            return job
        }
    }

    func progress(tenant: String, id: String) -> ImportProgress? { jobs.withLock { $0[tenant + "/" + id] }?.snapshot() }

    struct Batch: Sendable {
        var rows: [ImportRow] = []
        var errors: [ImportRowError] = []
        var bytesRead = 0
    }

    static func nextBatch(_ reader: ContactImportReader) -> (ContactImportReader, Batch) {
        var reader = reader
        var batch = Batch()
        while batch.rows.count < batchSize, let next = reader.next() {
            switch next {
            case .success(let row): batch.rows.append(row)
            case .failure(let error): batch.errors.append(error)
            }
        }
        batch.bytesRead = reader.bytesRead
        return (reader, batch)
    }

    /// Reads rows in batches and imports each; a batch the journal refuses stops the import
    /// (rows before it are in, and sending the file again under the same id finishes it).
    static func run(_ reader: ContactImportReader, job: Job, engine: Engine, tenant: String, importId: String, now: Timestamp) async {
        // The next batch is read while the current one is journaled and applied.
        var (reader, batch) = nextBatch(reader)
        while !batch.rows.isEmpty || !batch.errors.isEmpty {
            async let following = nextBatch(reader)
            var result = ImportBatchResult()
            var failure: String?
            do { result = try await engine.importContacts(tenant: tenant, rows: batch.rows, importId: importId, now: now) } catch {
                failure = "\(error)"
            }
            let current = batch
            job.update { progress in
                progress.bytesRead = current.bytesRead
                progress.rows += current.rows.count + current.errors.count
                progress.imported += result.imported
                progress.duplicates += result.duplicates
                let errors = (current.errors + result.errors).sorted { $0.line < $1.line }
                progress.failed += errors.count
                progress.errors += errors.prefix(max(0, keptErrors - progress.errors.count))
                if let failure {
                    progress.status = "failed"
                    progress.message = "stopped at line \(current.rows.first?.line ?? 0): \(failure); rows before it are imported — send the file again with the same import id to finish"
                }
                progress.seconds = (ContinuousClock.now - progress.started).seconds
            }
            if failure != nil { return }
            (reader, batch) = await following
        }
        job.update { progress in
            progress.status = "done"
            progress.bytesRead = progress.totalBytes
            progress.seconds = (ContinuousClock.now - progress.started).seconds
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
