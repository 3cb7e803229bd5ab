import Reactor

/// What systemd hears from the daemon: READY=1 once the first sync was tried (or after 10 s,
/// whatever answers), STATUS= whenever the status line changes, WATCHDOG=1 from the loop itself
/// (a stuck loop stops pinging and systemd restarts it), RELOADING=1 and STOPPING=1. Silent
/// when not started by systemd with a notify socket.
final class SystemdService {
    private let notifier: SystemdNotifier?
    private let statusLine: () -> String
    private var watchdogTimer: Timer!
    private var readyTimer: Timer!
    private var ready = false
    private var lastStatusLine: String?

    init(loop: EventLoop, environment: [String: String], statusLine: @escaping () -> String) {
        notifier = SystemdNotifier(environment: environment, logger: loop.logger)
        self.statusLine = statusLine
        watchdogTimer = loop.makeTimer(name: "systemd.watchdog") { [unowned self] in self.pingWatchdog() }
        readyTimer = loop.makeTimer(name: "systemd.ready") { [unowned self] in self.becomeReady() }
    }

    deinit {
        watchdogTimer.cancel()
        readyTimer.cancel()
    }

    func start() {
        readyTimer.schedule(after: .seconds(10))
        pingWatchdog()
    }

    /// After every change: ready once `settled`, then the status line when it changed.
    func update(settled: Bool) {
        if settled { becomeReady() }
        guard ready, let notifier else { return }
        let line = statusLine()
        guard line != lastStatusLine else { return }
        lastStatusLine = line
        notifier.notify("STATUS=\(line)")
    }

    func reloading() {
        notifier?.reloading()
    }

    func reloaded() {
        notifier?.notify("READY=1", "STATUS=\(statusLine())")
    }

    func stopping() {
        notifier?.notify("STOPPING=1")
    }

    private func becomeReady() {
        guard !ready else { return }
        ready = true
        readyTimer.cancel()
        lastStatusLine = statusLine()
        notifier?.notify("READY=1", "STATUS=\(lastStatusLine!)")
    }

    private func pingWatchdog() {
        guard let notifier, let interval = notifier.watchdogInterval else { return }
        notifier.notify("WATCHDOG=1")
        watchdogTimer.schedule(after: interval)
    }
}
