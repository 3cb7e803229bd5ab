import Glibc

exit(Main.run(arguments: Array(CommandLine.arguments.dropFirst()), environment: ProcessEnvironment.variables()).rawValue)
