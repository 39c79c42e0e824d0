import Foundation

/// The real Gemini error bodies shipped in `Fixtures/` (copies of shared/gemini/errors/), by name
/// without `.json`.
enum FixtureStore {
    static let all: [String: [UInt8]] = load()

    private static func load() -> [String: [UInt8]] {
        guard let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else { return [:] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var result: [String: [UInt8]] = [:]
        for name in names where name.hasSuffix(".json") {
            let url = directory.appendingPathComponent(name)
            if let data = FileManager.default.contents(atPath: url.path) {
                result[String(name.dropLast(5))] = [UInt8](data)
            }
        }
        return result
    }

    /// The HTTP status a fixture stands for: the number its name starts with.
    static func status(of name: String) -> Int? {
        Int(name.prefix { $0.isNumber })
    }
}

extension FakeGemini {
    /// Names of the bundled fixtures (e.g. `"429-per-minute"`), sorted.
    public static var fixtureNames: [String] { FixtureStore.all.keys.sorted() }

    /// The exact bytes of a bundled fixture, or nil if there is none by that name.
    public static func fixtureBody(_ name: String) -> [UInt8]? { FixtureStore.all[name] }

    /// The status a fixture is replayed with (its name's numeric prefix).
    public static func fixtureStatus(_ name: String) -> Int? {
        FixtureStore.all[name] == nil ? nil : FixtureStore.status(of: name)
    }
}
