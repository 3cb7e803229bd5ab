// swift-tools-version:6.0
// portsync: keeps a BitTorrent client's listening port equal to the VPN's forwarded port.
// No package dependencies: the toolchain and our own C shim only.
import PackageDescription

let package = Package(
    name: "portsync",
    products: [
        .executable(name: "portsync", targets: ["portsync"]),
    ],
    targets: [
        .target(name: "CLinux"),
        .target(name: "Reactor", dependencies: ["CLinux"]),
        .target(name: "Watchers", dependencies: ["Reactor", "CLinux"]),
        .target(name: "Sinks", dependencies: ["Reactor", "CLinux"]),
        .executableTarget(name: "portsync", dependencies: ["Reactor", "Watchers", "Sinks", "CLinux"]),
        .target(name: "TestSupport", dependencies: ["Reactor", "CLinux"], path: "Tests/TestSupport"),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor", "CLinux", "TestSupport"]),
        .testTarget(name: "WatchersTests", dependencies: ["Watchers", "Reactor", "CLinux", "TestSupport"]),
        .testTarget(name: "SinksTests", dependencies: ["Sinks", "Reactor", "CLinux", "TestSupport"]),
        .testTarget(name: "portsyncTests", dependencies: ["portsync", "Reactor", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
