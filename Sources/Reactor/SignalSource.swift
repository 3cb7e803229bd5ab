import CLinux
import Glibc

/// The signals the daemon handles, all through signalfd: no signal handlers anywhere.
public enum Signal: Sendable, CaseIterable, CustomStringConvertible {
    case hangup
    case interrupt
    case terminate

    public var number: Int32 {
        switch self {
        case .hangup: SIGHUP
        case .interrupt: SIGINT
        case .terminate: SIGTERM
        }
    }

    public init?(number: Int32) {
        guard let signal = Signal.allCases.first(where: { $0.number == number }) else { return nil }
        self = signal
    }

    public var description: String {
        switch self {
        case .hangup: "SIGHUP"
        case .interrupt: "SIGINT"
        case .terminate: "SIGTERM"
        }
    }
}

/// Blocks the given signals and delivers them through a signalfd in the loop.
/// Block before any child is spawned: children must unblock them again (the mask survives exec).
public final class SignalSource {
    private var source: Registration?
    private var mask: sigset_t

    /// The signalfd is vital: if reading it failed, the signals would stay blocked for good, so
    /// the loop stops instead (`FailurePolicy.stopLoop`).
    public init(loop: EventLoop, signals: [Signal] = Signal.allCases, handler: @escaping (Signal) -> Void) throws {
        var mask = sigset_t()
        clinux_sigemptyset(&mask)
        for signal in signals { clinux_sigaddset(&mask, signal.number) }
        self.mask = mask
        _ = try systemCall("sigprocmask") { sigprocmask(SIG_BLOCK, &mask, nil) }
        let fd = FileDescriptor(rawValue: try systemCall("signalfd") { signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) })
        source = try Registration(loop: loop, owning: fd, interest: .readable, name: "signal", onFailure: .stopLoop) { _ in
            // Drain every pending record: one read may hold several.
            var info = signalfd_siginfo()
            while true {
                let result = try withUnsafeMutableBytes(of: &info) { try fd.read(into: $0) }
                guard case .done(let count) = result, count == MemoryLayout<signalfd_siginfo>.size else { return }
                if let signal = Signal(number: Int32(bitPattern: info.ssi_signo)) {
                    loop.logger.trace("signal", "\(signal) from pid \(info.ssi_pid)")
                    handler(signal)
                }
            }
        }
    }

    /// Stops delivery and unblocks the signals again.
    public func close() {
        guard let source else { return }
        source.cancel()
        self.source = nil
        sigprocmask(SIG_UNBLOCK, &mask, nil)
    }

    deinit { close() }
}
