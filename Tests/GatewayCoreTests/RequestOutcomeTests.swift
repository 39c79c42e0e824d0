import GatewayCore
import Testing

/// The words a request's row stores: the views of migrations 0002, 0005 and 0007 match them as text, so
/// they may never change.
@Suite struct RequestOutcomeTests {
    @Test func outcomesAreStoredAsTheWordsOfTheSchema() {
        #expect(RequestOutcome.allCases.map(\.rawValue) == [
            "success", "client_error", "unauthorized", "too_large", "throttled", "no_capacity", "upstream_error",
            "key_error", "gateway_error", "cancelled", "truncated", "interrupted", "client_limit",
        ])
        #expect(UsageStatus.allCases.map(\.rawValue) == ["complete", "missing", "truncated", "none"])
    }

    @Test func everyCategoryCountsSomeOutcome() {
        let counted = Set(RequestOutcome.allCases.map(\.category))
        #expect(counted == Set(RequestOutcome.Category.allCases))
    }

    @Test func usageStatusOfACall() {
        #expect(UsageStatus.of(expectsUsage: false, sawUsage: true, truncated: true) == .none)
        #expect(UsageStatus.of(expectsUsage: true, sawUsage: true, truncated: true) == .truncated)
        #expect(UsageStatus.of(expectsUsage: true, sawUsage: false, truncated: true) == .truncated)
        #expect(UsageStatus.of(expectsUsage: true, sawUsage: true, truncated: false) == .complete)
        #expect(UsageStatus.of(expectsUsage: true, sawUsage: false, truncated: false) == .missing)
    }
}
