// The values every layer speaks of (`Port`, `Instant`, `PortObservation`, …) come with the loop:
// whatever imports Reactor sees them.
@_exported import Domain
