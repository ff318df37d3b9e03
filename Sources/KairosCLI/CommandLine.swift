import ArgumentParser
import KairosMemory

/// Runs an executable's root command as ArgumentParser's own `main()` would, after setting up
/// the memory allocator (before the engine allocates anything).
public func runKairosCommandLine<Root: AsyncParsableCommand>(_ root: Root.Type) async {
    MemoryAllocator.useLargePages()
    do {
        var command = try root.parseAsRoot()
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    } catch {
        root.exit(withError: error)
    }
}
