import KairosCore

/// A page of contacts found by a trait search.
public struct ContactSearchPage: Sendable {
    public var contacts: [ExportedContact]
    /// Pass as `after` to go on; nil when the search reached the last contact.
    public var nextCursor: UInt64?
}

/// What one batch of an import did.
public struct ImportBatchResult: Sendable, Hashable {
    public var imported = 0
    /// Rows whose identify event was already applied (the same import sent again).
    public var duplicates = 0
    public var errors: [ImportRowError] = []

    public init() {}
}

extension Engine {
    // MARK: Finding contacts

    func actor(_ runtime: TenantRuntime, _ reference: ContactReference) -> ContactActor? {
        switch reference {
        case .userId(let userId): return runtime.directory.lookup(.user(userId))
        case .anonymousId(let anonymousId): return runtime.directory.lookup(.anonymous(anonymousId))
        case .id(let contactId): return runtime.directory.lookup(id: contactId)
        case .email(let email): return runtime.emails.contact(email: email).flatMap { runtime.directory.lookup(id: $0) }
        }
    }

    func exported(_ state: ContactState, runtime: TenantRuntime, now: Timestamp) -> ExportedContact {
        let definitions = runtime.definitions
        var scores: [String: Double] = [:]
        for (number, model) in definitions.models.enumerated() {
            scores[model.id] = state.score(model: number, definitions: definitions, now: now)
        }
        let segments = state.segments.compactMap { definitions.listedSegment($0.segment)?.id }.sorted()
        return ExportedContact(
            id: state.id, userId: state.userId, anonymousIds: state.anonymousIds, traits: state.traits.dictionary, segments: segments,
            scores: scores, firstSeen: state.firstSeen, lastSeen: state.lastSeen)
    }

    /// Contacts whose trait `trait` is text starting with `prefix` (case-insensitive), ascending by
    /// id after `cursor`. `email` is answered from its index; other traits are scanned, at most
    /// `scanLimit` contacts per call (then `nextCursor` says where to go on).
    public func searchContacts(
        tenant id: String, trait: String, prefix: String, after cursor: UInt64 = 0, limit: Int = 50, scanLimit: Int = 100_000,
        now: Timestamp
    ) async throws(EngineError) -> ContactSearchPage {
        let runtime = try tenant(id).runtime
        guard (1...1000).contains(limit) else { throw EngineError(.invalidArgument, "limit must be 1–1000, got \(limit)") }
        guard !prefix.isEmpty else { throw EngineError(.invalidArgument, "give a prefix of at least one character") }
        var found: [ExportedContact] = []
        if trait == "email" {
            let ids = runtime.emails.search(prefix: prefix, after: cursor, limit: limit)
            for contactId in ids {
                guard let actor = runtime.directory.lookup(id: contactId) else { continue }
                found.append(exported(await actor.snapshot(), runtime: runtime, now: now))
            }
            return ContactSearchPage(contacts: found, nextCursor: ids.count == limit ? ids.last : nil)
        }
        let needle = prefix.lowercased()
        let end = runtime.directory.nextContactId
        var contactId = cursor + 1
        var scanned = 0
        while contactId < end, found.count < limit, scanned < scanLimit {
            defer { contactId += 1 }
            guard let actor = runtime.directory.lookup(id: contactId) else { continue }
            scanned += 1
            let state = await actor.snapshot()
            guard case .string(let value)? = state.traits[trait], value.lowercased().hasPrefix(needle) else { continue }
            found.append(exported(state, runtime: runtime, now: now))
        }
        return ContactSearchPage(contacts: found, nextCursor: contactId < end ? contactId - 1 : nil)
    }

    /// Contacts in id order after `cursor` (all, or one segment's members), as exports hold them.
    public func exportContacts(
        tenant id: String, segment: String? = nil, after cursor: UInt64 = 0, limit: Int = 100_000, now: Timestamp
    ) async throws(EngineError) -> (contacts: [ExportedContact], nextCursor: UInt64?) {
        let runtime = try tenant(id).runtime
        guard (1...1_000_000).contains(limit) else { throw EngineError(.invalidArgument, "limit must be 1–1,000,000, got \(limit)") }
        var ids: [UInt64]
        if let segment {
            guard runtime.definitions.segment(segment) != nil else { throw EngineError(.unknownDefinition, "no segment '\(segment)'") }
            ids = runtime.members.page(segment, after: cursor, limit: limit).ids
        } else {
            ids = []
            let end = runtime.directory.nextContactId
            var contactId = cursor + 1
            while contactId < end, ids.count < limit {
                if runtime.directory.lookup(id: contactId) != nil { ids.append(contactId) }
                contactId += 1
            }
        }
        var contacts: [ExportedContact] = []
        contacts.reserveCapacity(ids.count)
        for contactId in ids {
            guard let actor = runtime.directory.lookup(id: contactId) else { continue }
            contacts.append(exported(await actor.snapshot(), runtime: runtime, now: now))
        }
        return (contacts, ids.count == limit ? ids.last : nil)
    }

    // MARK: Changing contacts

    /// Sets (or, with null, clears) traits of a known contact: an identify event, journaled and
    /// applied like any other, so segments, scores and journeys react to it.
    public func updateTraits(tenant id: String, _ reference: ContactReference, traits: [String: JSONValue], now: Timestamp)
        async throws(EngineError) -> ContactView
    {
        let runtime = try tenant(id).runtime
        guard let actor = actor(runtime, reference) else { throw EngineError(.unknownDefinition, "no such contact") }
        let state = await actor.snapshot()
        var generator = SystemRandomNumberGenerator()
        let event = Event(
            type: .identify, messageId: "admin-" + String(generator.next() as UInt64, radix: 36), userId: state.userId,
            anonymousId: state.userId == nil ? state.anonymousIds.first : nil, traits: traits,
            context: ["library": ["name": "kairos-admin"]], time: now)
        _ = try await ingest(tenant: id, events: [event], now: now)
        guard let view = try await contact(tenant: id, .id(state.id), now: now) else {
            throw EngineError(.unknownDefinition, "the contact was merged away meanwhile")
        }
        return view
    }

    /// Imports one batch of rows as identify events (message ids `import-<importId>-<line>`, so the
    /// same import sent again changes nothing). A row with only an email updates the contact with
    /// that email, or creates one whose userId is the email.
    public func importContacts(tenant id: String, rows: [ImportRow], importId: String, now: Timestamp)
        async throws(EngineError) -> ImportBatchResult
    {
        let runtime = try tenant(id).runtime
        var result = ImportBatchResult()
        var events: [Event] = []
        var lines: [Int] = []
        events.reserveCapacity(rows.count)
        for row in rows {
            var userId = row.userId
            var anonymousId = row.anonymousId
            if userId == nil, anonymousId == nil, let email = row.email {
                if let contactId = runtime.emails.contact(email: email), let actor = runtime.directory.lookup(id: contactId) {
                    let keys = actor.keys.array
                    for key in keys {
                        if case .user(let known) = key { userId = known }
                    }
                    if userId == nil, case .anonymous(let known)? = keys.first { anonymousId = known }
                }
                if userId == nil && anonymousId == nil { userId = EmailIndex.key(email) }
            }
            events.append(
                Event(
                    type: .identify, messageId: "import-\(importId)-\(row.line)", userId: userId, anonymousId: anonymousId,
                    traits: row.traits, context: ["library": ["name": "kairos-import"]], time: now))
            lines.append(row.line)
        }
        guard !events.isEmpty else { return result }
        let report = try await ingest(tenant: id, events: events, now: now)
        for (index, outcome) in report.results.enumerated() {
            switch outcome {
            case .applied: result.imported += 1
            case .duplicate: result.duplicates += 1
            case .overContactLimit:
                let limit = runtime.limits.maxContacts ?? 0
                result.errors.append(ImportRowError(line: lines[index], message: "the tenant's limit of \(limit) contacts is reached"))
            }
        }
        return result
    }

    // MARK: The contact limit

    /// `ingest` for a tenant with `maxContacts`: events that would create a contact past it are
    /// refused (checked per batch against the contacts held when it starts).
    func ingest(tenant id: String, events: [Event], now: Timestamp, contactLimit: Int) async throws(EngineError) -> IngestReport {
        let runtime = try tenant(id).runtime
        var room = contactLimit - runtime.directory.count
        var allowed: [Bool] = []
        var seen: Set<ContactDirectory.IdentityKey> = []
        allowed.reserveCapacity(events.count)
        for event in events {
            var keys: [ContactDirectory.IdentityKey] = []
            if let userId = event.userId { keys.append(.user(userId)) }
            if let anonymousId = event.anonymousId { keys.append(.anonymous(anonymousId)) }
            let known = keys.contains { seen.contains($0) || runtime.directory.lookup($0) != nil }
            if known || room > 0 {
                if !known { room -= 1 }
                seen.formUnion(keys)
                allowed.append(true)
            } else {
                allowed.append(false)
            }
        }
        let admitted = zip(events, allowed).filter(\.1).map(\.0)
        var report = IngestReport(results: [], effects: [])
        if !admitted.isEmpty {
            report = try await ingestAdmitted(tenant: id, events: admitted, now: now)
        }
        var results: [IngestResult] = []
        var next = report.results.makeIterator()
        for isAllowed in allowed { results.append(isAllowed ? next.next() ?? .applied : .overContactLimit) }
        return IngestReport(results: results, effects: report.effects)
    }
}
