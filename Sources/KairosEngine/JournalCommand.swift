import KairosCore
import Synchronization

/// A state-changing command as the journal stores it. Replaying these in sequence order
/// rebuilds exactly the state the engine had acknowledged.
enum JournalCommand: Sendable {
    case createTenant(name: String)
    case defineScoringModel(JSONValue)
    case defineSegment(JSONValue)
    case deleteDefinition(DefinitionKind, id: String)
    /// Only the events that were new (not duplicates) when accepted.
    case ingest([Event])
    /// Timers that fired: each contact and the due time it fired at.
    case timers([TimerFiring])
    case definePlacement(JSONValue)
    case defineExperiment(JSONValue)
    /// What a decision changed for a visitor (assignments, served decisions).
    case decisions(VisitorDecisions)
    /// A journey version; `migrate` moves runs of older versions where their step still exists.
    case defineJourney(JSONValue, migrate: Bool)
    case setJourneyStatus(id: String, JourneyStatus)
    /// Manual or API enrollment of one contact.
    case enroll(Enrollment)
    /// A new write key for the tenant: its label and SHA-256 (the key itself is never stored).
    case addWriteKey(label: String, sha256: String)
    case defineTemplate(JSONValue)
    case setLimits(JSONValue)
    /// The tenant and everything it holds go.
    case deleteTenant
    /// A key stops working at a time (milliseconds): the end of a rotation's overlap.
    case expireKey(label: String, at: Int64)

    struct Enrollment: Sendable, Hashable {
        var journey: String
        var userId: String?
        var anonymousId: String?
        var key: String?
    }

    struct VisitorDecisions: Sendable, Hashable {
        var userId: String?
        var anonymousId: String?
        var record: DecisionRecord
    }

    struct TimerFiring: Sendable, Hashable {
        var contact: UInt64
        var due: Int64
    }

    var kind: UInt8 {
        switch self {
        case .createTenant: return 1
        case .defineScoringModel: return 2
        case .defineSegment: return 3
        case .deleteDefinition: return 4
        case .ingest: return JournalCommand.ingestKind
        case .timers: return 6
        case .definePlacement: return 7
        case .defineExperiment: return 8
        case .decisions: return 9
        case .defineJourney: return 10
        case .setJourneyStatus: return 11
        case .enroll: return 12
        case .addWriteKey: return 13
        case .defineTemplate: return 14
        case .setLimits: return 15
        case .deleteTenant: return 16
        case .expireKey: return 17
        }
    }

    func encoded() -> [UInt8] {
        switch self {
        case .ingest(let events):
            return events.encoded()
        default:
            var writer = BinaryWriter()
            switch self {
            case .createTenant(let name): writer.write(name)
            case .defineScoringModel(let json), .defineSegment(let json), .definePlacement(let json), .defineExperiment(let json),
                .defineTemplate(let json), .setLimits(let json):
                writer.write(json)
            case .decisions(let visitor):
                writer.writeOptional(visitor.userId)
                writer.writeOptional(visitor.anonymousId)
                writer.writeVarint(UInt64(visitor.record.exposures.count))
                for exposure in visitor.record.exposures {
                    writer.write(exposure.experiment)
                    writer.writeSigned(Int64(exposure.variant))
                    writer.writeSigned(exposure.exposedAt)
                }
                writer.writeVarint(UInt64(visitor.record.served.count))
                for served in visitor.record.served {
                    writer.writeVarint(served.id)
                    writer.write(served.placement)
                    writer.write(served.variant)
                    writer.writeOptional(served.experiment)
                    writer.writeByte(served.optimized ? 1 : 0)
                    writer.writeSigned(served.time)
                }
            case .deleteDefinition(let kind, let id):
                writer.write(kind.rawValue)
                writer.write(id)
            case .timers(let firings):
                writer.writeVarint(UInt64(firings.count))
                for firing in firings {
                    writer.writeVarint(firing.contact)
                    writer.writeSigned(firing.due)
                }
            case .defineJourney(let json, let migrate):
                writer.write(json)
                writer.writeByte(migrate ? 1 : 0)
            case .setJourneyStatus(let id, let status):
                writer.write(id)
                writer.write(status.rawValue)
            case .enroll(let enrollment):
                writer.write(enrollment.journey)
                writer.writeOptional(enrollment.userId)
                writer.writeOptional(enrollment.anonymousId)
                writer.writeOptional(enrollment.key)
            case .addWriteKey(let label, let hash):
                writer.write(label)
                writer.write(hash)
            case .deleteTenant: break
            case .expireKey(let label, let expiry):
                writer.write(label)
                writer.writeSigned(expiry)
            case .ingest: break
            }
            return writer.bytes
        }
    }

    /// The record kind of `ingest`, whose events replay decodes straight into its runs.
    static let ingestKind: UInt8 = 5

    static func decode(kind: UInt8, payload: [UInt8]) throws(CodecError) -> JournalCommand {
        var reader = BinaryReader(payload)
        let command: JournalCommand
        switch kind {
        case 1: command = .createTenant(name: try reader.readString())
        case 2: command = .defineScoringModel(try reader.readJSON())
        case 3: command = .defineSegment(try reader.readJSON())
        case 4:
            let raw = try reader.readString()
            guard let definitionKind = DefinitionKind(rawValue: raw) else {
                throw CodecError(offset: 0, message: "unknown definition kind '\(raw)'")
            }
            command = .deleteDefinition(definitionKind, id: try reader.readString())
        case ingestKind: return .ingest(try [Event].decode(payload))
        case 6:
            let count = try reader.readCount()
            var firings: [TimerFiring] = []
            firings.reserveCapacity(count)
            for _ in 0..<count { firings.append(TimerFiring(contact: try reader.readVarint(), due: try reader.readSigned())) }
            command = .timers(firings)
        case 7: command = .definePlacement(try reader.readJSON())
        case 8: command = .defineExperiment(try reader.readJSON())
        case 9:
            var visitor = VisitorDecisions(
                userId: try reader.readOptionalString(), anonymousId: try reader.readOptionalString(), record: DecisionRecord())
            for _ in 0..<(try reader.readCount()) {
                visitor.record.exposures.append(
                    ExperimentAssignment(
                        experiment: try reader.readString(), variant: Int(try reader.readSigned()), exposedAt: try reader.readSigned()))
            }
            for _ in 0..<(try reader.readCount()) {
                visitor.record.served.append(
                    ServedDecision(
                        id: try reader.readVarint(), placement: try reader.readString(), variant: try reader.readString(),
                        experiment: try reader.readOptionalString(), optimized: try reader.readByte() == 1,
                        time: try reader.readSigned()))
            }
            command = .decisions(visitor)
        case 10: command = .defineJourney(try reader.readJSON(), migrate: try reader.readByte() == 1)
        case 11:
            let id = try reader.readString()
            let raw = try reader.readString()
            guard let status = JourneyStatus(rawValue: raw) else { throw CodecError(offset: 0, message: "unknown journey status '\(raw)'") }
            command = .setJourneyStatus(id: id, status)
        case 12:
            command = .enroll(
                Enrollment(
                    journey: try reader.readString(), userId: try reader.readOptionalString(),
                    anonymousId: try reader.readOptionalString(), key: try reader.readOptionalString()))
        case 13: command = .addWriteKey(label: try reader.readString(), sha256: try reader.readString())
        case 14: command = .defineTemplate(try reader.readJSON())
        case 15: command = .setLimits(try reader.readJSON())
        case 16: command = .deleteTenant
        case 17: command = .expireKey(label: try reader.readString(), at: try reader.readSigned())
        default: throw CodecError(offset: 0, message: "unknown command kind \(kind)")
        }
        guard reader.isAtEnd else { throw CodecError(offset: reader.offset, message: "unexpected bytes after the command") }
        return command
    }
}

/// Lets a tenant's commands apply in the order the journal sequenced them: each gets a
/// ticket when it is enqueued (under the same lock), and waits for its turn to apply.
final class CommandGate: Sendable {
    private struct State {
        var nextTicket: UInt64 = 0
        var turn: UInt64 = 0
        var waiting: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    /// Runs `enqueue` under the gate's lock and returns its result with a ticket, so ticket
    /// order is journal order.
    func submit<Result>(_ enqueue: () -> Result) -> (ticket: UInt64, result: Result) {
        state.withLock { state in
            let ticket = state.nextTicket
            state.nextTicket += 1
            return (ticket, enqueue())
        }
    }

    func waitForTurn(_ ticket: UInt64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.turn == ticket { return true }
                state.waiting[ticket] = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Ends the current turn (applied, or failed and skipped) and wakes the next ticket.
    func finishTurn() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.turn += 1
            return state.waiting.removeValue(forKey: state.turn)
        }
        next?.resume()
    }
}

/// The journal sequence of a tenant's last applied command.
final class AppliedSequence: Sendable {
    private let sequence = Atomic<UInt64>(0)
    var value: UInt64 { sequence.load(ordering: .acquiring) }
    func set(_ value: UInt64) { sequence.store(value, ordering: .releasing) }
}
