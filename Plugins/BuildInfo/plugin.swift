// Writes BuildInfo.swift into the module it is applied to: the git commit the package was built
// from ("unknown" outside a git checkout), for every executable's --version. A prebuild command,
// so it runs on every build and a new commit is never reported as the old one.
import Foundation
import PackagePlugin

@main
struct BuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "BuildInfo.swift")
        let package = context.package.directoryURL.path
        let script = """
            commit=$(git -C '\(package)' rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
            if [ "$commit" != unknown ] && [ -n "$(git -C '\(package)' status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit-modified"; fi
            text="/// Written by the BuildInfo plugin at build time.
            enum BuildInfo { static let commit = \\"$commit\\" }"
            [ "$(cat '\(output.path)' 2>/dev/null)" = "$text" ] || printf '%s\\n' "$text" > '\(output.path)'
            """
        return [.prebuildCommand(displayName: "BuildInfo: the git commit", executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: ["-c", script], outputFilesDirectory: context.pluginWorkDirectoryURL)]
    }
}
