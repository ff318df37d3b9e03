extension Event {
    /// Format version of `encode(into:)`; bump it when the layout changes.
    static let codecVersion: UInt8 = 1

    private enum Field: UInt16 {
        case messageId = 1, userId = 2, anonymousId = 4, previousId = 8, groupId = 16, name = 32
        case timestamp = 64, sentAt = 128, receivedAt = 256
    }

    /// Appends this event in the journal's binary form.
    public func encode(into writer: inout BinaryWriter) {
        writer.writeByte(Event.codecVersion)
        writer.writeByte(UInt8(type.ordinal))
        var present: UInt16 = 0
        if messageId != nil { present |= Field.messageId.rawValue }
        if userId != nil { present |= Field.userId.rawValue }
        if anonymousId != nil { present |= Field.anonymousId.rawValue }
        if previousId != nil { present |= Field.previousId.rawValue }
        if groupId != nil { present |= Field.groupId.rawValue }
        if name != nil { present |= Field.name.rawValue }
        if timestamp != nil { present |= Field.timestamp.rawValue }
        if sentAt != nil { present |= Field.sentAt.rawValue }
        if receivedAt != nil { present |= Field.receivedAt.rawValue }
        writer.writeVarint(UInt64(present))
        // One by one: an array literal of the fields would allocate for every event.
        if let messageId { writer.write(messageId) }
        if let userId { writer.write(userId) }
        if let anonymousId { writer.write(anonymousId) }
        if let previousId { writer.write(previousId) }
        if let groupId { writer.write(groupId) }
        if let name { writer.write(name) }
        if let timestamp { writer.write(timestamp) }
        if let sentAt { writer.write(sentAt) }
        if let receivedAt { writer.write(receivedAt) }
        writer.write(time)
        writer.write(properties)
        writer.write(traits)
        writer.write(context)
    }

    /// An event with no fields set, decoded into where it lies (`read(from:)`). Made afresh
    /// each time: a copy of a shared blank event counted a reference on each of its fields.
    fileprivate init(blank: Void) {
        type = .track
        properties = JSONObject()
        traits = [:]
        context = [:]
        time = Timestamp(milliseconds: 0)
    }

    /// Reads an event written by `encode(into:)` over this one. Decoding in place: a decoded
    /// event returned and then appended was copied on the way (a reference count per string
    /// and object), however the function was written. With `skippingMessageId`, `messageId`
    /// stays nil and where its bytes lie is returned instead (nil when the event has none): a
    /// caller needing only the id's bytes makes no string.
    @discardableResult
    fileprivate mutating func read(from reader: inout BinaryReader, skippingMessageId: Bool = false) throws(CodecError) -> Range<Int>? {
        var messageIdBytes: Range<Int>?
        let version = try reader.readByte()
        guard version == Event.codecVersion else {
            throw CodecError(offset: reader.offset - 1, message: "event format version \(version) is not supported (expected \(Event.codecVersion))")
        }
        let ordinal = Int(try reader.readByte())
        guard ordinal < EventType.allCases.count else {
            throw CodecError(offset: reader.offset - 1, message: "unknown event type \(ordinal)")
        }
        let present = UInt16(truncatingIfNeeded: try reader.readVarint())
        func text(_ field: Field) throws(CodecError) -> String? {
            present & field.rawValue != 0 ? try reader.readString() : nil
        }
        func date(_ field: Field) throws(CodecError) -> Timestamp? {
            present & field.rawValue != 0 ? try reader.readTimestamp() : nil
        }
        type = EventType.allCases[ordinal]
        if skippingMessageId {
            messageId = nil
            if present & Field.messageId.rawValue != 0 { messageIdBytes = try reader.skip(try reader.readCount()) }
        } else {
            messageId = try text(.messageId)
        }
        userId = try text(.userId)
        anonymousId = try text(.anonymousId)
        previousId = try text(.previousId)
        groupId = try text(.groupId)
        name = try text(.name)
        timestamp = try date(.timestamp)
        sentAt = try date(.sentAt)
        receivedAt = try date(.receivedAt)
        time = try reader.readTimestamp()
        // Into the object already there: an event decoded over an earlier one (replay reuses
        // its arrays) keeps the room of its properties instead of allocating it again.
        try reader.readJSONObject(into: &properties)
        traits = try reader.readObject()
        context = try reader.readObject()
        return messageIdBytes
    }
}

extension [Event] {
    /// A batch of events in the journal's binary form.
    public func encoded() -> [UInt8] {
        var writer = BinaryWriter(capacity: count * 160)
        writer.writeVarint(UInt64(count))
        for event in self { event.encode(into: &writer) }
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(CodecError) -> [Event] {
        var events: [Event] = []
        try decode(bytes, appendingTo: &events)
        return events
    }

    /// Decodes a batch straight onto the end of `events` (no array of its own to copy from).
    /// On an error, `events` may hold some of the batch's events, the last one partly read.
    public static func decode(_ bytes: [UInt8], appendingTo events: inout [Event]) throws(CodecError) {
        try decode(bytes, range: bytes.indices, appendingTo: &events)
    }

    /// Decodes a batch lying in `bytes[range]` into `events` from `start` on, over the events
    /// already there (their storage reused) and appending past the end; returns where the
    /// batch's events end. Replay decodes each run over the events of a run before it: making
    /// and destroying every event was a tenth of the reading side's work. On an error, the
    /// events from `start` may be partly read.
    public static func decode(_ bytes: [UInt8], range: Range<Int>, into events: inout [Event], at start: Int) throws(CodecError) -> Int {
        var unused: [Range<Int>] = []
        return try decode(bytes, range: range, into: &events, at: start, messageIds: &unused, skippingMessageIds: false)
    }

    /// `decode(_:range:into:at:)` that leaves the events' `messageId`s nil and appends where
    /// their bytes lie in `bytes` to `messageIds` (in order; events without one add nothing):
    /// replay only hashes them, and a string per event was an allocation and a release each.
    public static func decode(
        _ bytes: [UInt8], range: Range<Int>, into events: inout [Event], at start: Int, messageIds: inout [Range<Int>]
    ) throws(CodecError) -> Int {
        try decode(bytes, range: range, into: &events, at: start, messageIds: &messageIds, skippingMessageIds: true)
    }

    private static func decode(
        _ bytes: [UInt8], range: Range<Int>, into events: inout [Event], at start: Int, messageIds: inout [Range<Int>],
        skippingMessageIds: Bool
    ) throws(CodecError) -> Int {
        var reader = BinaryReader(bytes, range: range)
        let count = try reader.readElementCount()
        let end = start + count
        // Grown by doubling: an exact reservation per command would copy the whole array every
        // few commands.
        if events.capacity < end { events.reserveCapacity(Swift.max(end, events.capacity * 2)) }
        for index in start..<end {
            if index == events.count { events.append(Event(blank: ())) }
            if let idBytes = try events[index].read(from: &reader, skippingMessageId: skippingMessageIds) { messageIds.append(idBytes) }
        }
        guard reader.isAtEnd else {
            throw CodecError(offset: reader.offset, message: "\(range.upperBound - reader.offset) bytes left after the last event")
        }
        return end
    }

    /// `decode(_:appendingTo:)` for a batch lying in `bytes[range]` (a journal slice's buffer).
    public static func decode(_ bytes: [UInt8], range: Range<Int>, appendingTo events: inout [Event]) throws(CodecError) {
        _ = try decode(bytes, range: range, into: &events, at: events.count)
    }
}
