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
        .target(name: "Domain"),
        .target(name: "Reactor", dependencies: ["CLinux", "Domain"]),
        .target(name: "Coordination", dependencies: ["Domain", "Reactor"]),
        .target(name: "HTTP", dependencies: ["Domain", "Reactor", "CLinux"]),
        .target(name: "Watchers", dependencies: ["Domain", "Reactor", "HTTP", "CLinux"]),
        .target(name: "Sinks", dependencies: ["Domain", "Reactor", "HTTP", "CLinux"]),
        .executableTarget(name: "portsync", dependencies: ["Domain", "Reactor", "Coordination", "HTTP", "Watchers", "Sinks", "CLinux"]),
        .target(name: "CTestSupport", path: "Tests/CTestSupport"),
        .target(name: "TestSupport", dependencies: ["Domain", "Reactor", "HTTP", "CLinux", "CTestSupport"], path: "Tests/TestSupport"),
        .testTarget(name: "ReactorTests", dependencies: ["Domain", "Reactor", "CLinux", "TestSupport"]),
        .testTarget(name: "HTTPTests", dependencies: ["Domain", "HTTP", "Reactor", "CLinux", "TestSupport"]),
        .testTarget(name: "WatchersTests", dependencies: ["Domain", "Watchers", "Reactor", "HTTP", "CLinux", "TestSupport"]),
        .testTarget(name: "SinksTests", dependencies: ["Domain", "Sinks", "Reactor", "HTTP", "CLinux", "TestSupport"]),
        .testTarget(name: "portsyncTests", dependencies: ["Domain", "portsync", "Coordination", "Reactor", "HTTP", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
