import Foundation

// MARK: - EgressRule

/// When a burst of 429s is blamed on the upstream they came through (its egress IP throttled by
/// Google, or a relay's own limit) rather than on the keys: the evidence rule of
/// `serve --egress-window`, `--egress-projects` and `--egress-cooldown`.
///
/// Google's quotas are per project. So 429s for keys of *several different projects*, all through
/// one upstream, within a short window, while another upstream still serves, say that the
/// upstream is the common factor, not the projects. Then (``Scheduler``):
///
/// - the upstream cools for ``cooldown`` (reason ``reason``);
/// - the key and project cooldowns that this burst set are lifted (those a later 429 extended stay),
///   and the keys' throttle streaks go back to where they were;
/// - the request that met the last 429 is retried elsewhere, as after any 429.
///
/// What counts:
///
/// - only per-minute and bare 429s (``Throttle/Kind/perMinute``): a per-day or `limit: 0` answer
///   is a fact about the project's quota, whatever the route;
/// - projects by their label; a key without a label counts as a project of its own (the gateway
///   cannot tell two unlabelled keys of one project apart: label them at import);
/// - at least ``minimumProjects`` distinct projects throttled through the upstream within
///   ``window`` seconds: keys of one project throttled together (an honest per-project quota)
///   never count for more than one;
/// - and another upstream answered a request successfully within ``window`` seconds. With one
///   upstream there is nothing to compare with, and a 429 is the key's (it cools as always); the
///   same holds when every upstream throttles alike.
public struct EgressRule: Sendable, Hashable {
    /// Seconds within which the 429s and the other upstream's success must fall.
    public var window: Double = 10
    /// Distinct projects throttled through one upstream within the window that blame it; 0 never does.
    public var minimumProjects = 3
    /// Seconds the blamed upstream cools.
    public var cooldown: Double = 300

    /// The defaults above.
    public init() {}

    /// The reason stored with the upstream's cooldown.
    public static let reason = "EGRESS_THROTTLED"

    /// Whether the rule is in force at all.
    public var isOn: Bool { minimumProjects > 0 && window > 0 }

    /// Whether `marks` (the 429s through one upstream, the newest last) and the latest success
    /// through any *other* upstream blame that upstream at `now`.
    func blames(_ marks: [ThrottleMark], otherSuccess: Double, now: Double) -> Bool {
        guard isOn, otherSuccess > now - window else { return false }
        var projects = Set<String>()
        for mark in marks where mark.time > now - window {
            projects.insert(mark.project)
            if projects.count >= minimumProjects { return true }
        }
        return false
    }
}

// MARK: - ThrottleMark

/// One per-minute or bare 429 through an upstream, kept for ``EgressRule/window`` seconds with
/// what it did, so that an upstream blamed for it can undo it.
struct ThrottleMark: Sendable {
    var time: Double
    var keyID: Int64
    /// The key's project label, or a name of the key's own when it has none.
    var project: String
    var model: String
    /// The end of the key's cooldown this 429 set; nil when a longer one was in force already.
    var keyUntil: Double?
    /// Likewise for the project's cooldown.
    var projectUntil: Double?
}
