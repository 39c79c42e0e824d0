/// Fake keys for tests, shaped like real ones (and never a real one).
public func testKey(_ letter: String) -> String { "AIzaFAKE-key-\(letter)-0000000000000000000\(letter)" }
