import Domain
import Reactor
import Sinks
import Watchers

/// The daemon's side of `[notify]`: the `Notifier` when one is configured (kept across a
/// reload that changes nothing of it, told of new settings, made or dropped), fed the history's
/// records of port changes, the clients' health, and connectability from whoever decides it.
final class Notifications {
    private let loop: EventLoop
    private(set) var notifier: Notifier?

    init(loop: EventLoop, settings: NotifySettings?) {
        self.loop = loop
        update(settings)
    }

    /// Settings from a reloaded configuration; nil: `[notify]` is off.
    func update(_ settings: NotifySettings?) {
        guard let settings else { return notifier = nil }
        if let notifier { return notifier.update(settings) }
        notifier = Notifier(loop: loop, settings: settings)
    }

    /// What was delivered and given up; nil while off.
    var counters: NotifyCounters? { notifier?.counters }

    /// Tells the person, as the rate limit allows: the entry point for what the daemon decides
    /// outside the history and the clients (connectability lost and recovered).
    func notify(_ event: NotifyEvent) {
        notifier?.notify(event)
    }

    /// A record of the history: a port change (not a repair, not a withdrawal) is told, with
    /// what each client did.
    func recorded(_ record: ChangeRecord, clients: [DaemonSnapshot.Client], sources: [(source: PortObservation.Source, status: SourceStatus)]) {
        guard let notifier, let port = record.port, !record.reason.isRepair, record.previous != port else { return }
        let sourceTitle = sources.first { $0.source.rawValue == record.source }?.source.title ?? record.source
        let outcomes = record.clients.map { outcome in
            let title = clients.first { $0.label == outcome.label }?.title ?? outcome.label
            let result: NotifyEvent.ClientOutcome.Result = switch outcome.result {
            case .set, .already, .repaired, .kept: .verified
            case .failed: .failed
            case .superseded: .superseded
            }
            return NotifyEvent.ClientOutcome(label: outcome.label, title: title, result: result, detail: outcome.detail)
        }
        notifier.notify(.portChanged(NotifyEvent.PortMove(previous: record.previous, port: port, source: record.source, sourceTitle: sourceTitle,
                                                          reason: record.reason, clients: outcomes)))
    }

    /// After any client's status changed: each client's health, whose new troubles are told.
    func observe(_ clients: [DaemonSnapshot.Client]) {
        guard let notifier else { return }
        for client in clients { notifier.clientHealth(label: client.label, title: client.title, client.status.health) }
    }
}
