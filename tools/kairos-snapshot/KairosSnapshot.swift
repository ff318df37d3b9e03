import ArgumentParser
import KairosCLI

@main
struct KairosSnapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kairos-snapshot",
        abstract: SnapshotCommand.abstract + " (Same as 'kairos snapshot'.)",
        subcommands: SnapshotCommand.subcommands
    )

    static func main() async { await runKairosCommandLine(KairosSnapshot.self) }
}
