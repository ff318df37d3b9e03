import ArgumentParser
import KairosCLI

@main
struct Kairos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kairos",
        abstract: "Kairos: a real-time marketing automation engine.",
        discussion: """
            Every tenant and every known contact lives in memory as an actor: events update \
            lead scores and live segments the moment they arrive, and time windows lapse on \
            their own.
            """,
        version: "0.1.0",
        subcommands: [Serve.self, Tenant.self, Demo.self, Import.self, Contact.self, SnapshotCommand.self, Validate.self]
    )

    static func main() async { await runKairosCommandLine(Kairos.self) }
}
