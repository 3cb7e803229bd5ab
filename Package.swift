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
        .target(name: "HTTP", dependencies: ["Reactor", "CLinux"]),
        .target(name: "Watchers", dependencies: ["Reactor", "HTTP", "CLinux"]),
        .target(name: "Sinks", dependencies: ["Reactor", "HTTP", "CLinux"]),
        .executableTarget(name: "portsync", dependencies: ["Reactor", "HTTP", "Watchers", "Sinks", "CLinux"]),
        .target(name: "CTestSupport", path: "Tests/CTestSupport"),
        .target(name: "TestSupport", dependencies: ["Reactor", "HTTP", "CLinux", "CTestSupport"], path: "Tests/TestSupport"),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor", "CLinux", "TestSupport"]),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", "Reactor", "CLinux", "TestSupport"]),
        .testTarget(name: "WatchersTests", dependencies: ["Watchers", "Reactor", "HTTP", "CLinux", "TestSupport"]),
        .testTarget(name: "SinksTests", dependencies: ["Sinks", "Reactor", "HTTP", "CLinux", "TestSupport"]),
        .testTarget(name: "portsyncTests", dependencies: ["portsync", "Reactor", "HTTP", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
