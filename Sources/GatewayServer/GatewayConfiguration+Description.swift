import GatewayCore

/// The settings as one log line, with every secret shown as its fingerprint: whatever prints a
/// configuration (the startup line at debug, a service group describing its services, an error)
/// never prints a token whole.
extension GatewayConfiguration: CustomStringConvertible {
    public var description: String { SettingsDescription.describe(self) }
}

extension ReloadableSettings: CustomStringConvertible {
    public var description: String { SettingsDescription.describe(self) }
}

/// `name=value` for each stored property of a settings value. A text setting whose name says it
/// is a key or a token (`proxyKey`, `adminToken`, and any added later with such a name) is shown
/// as `fingerprint:<first 12 hex digits of its SHA-256>`, the same fingerprint the CLI and the
/// logs use for keys.
public enum SettingsDescription {
    public static func describe(_ settings: Any) -> String {
        Mirror(reflecting: settings).children.compactMap { child in
            guard let label = child.label else { return nil }
            return "\(label)=\(value(child.value, secret: isSecret(label)))"
        }.joined(separator: " ")
    }

    static func isSecret(_ label: String) -> Bool {
        let name = label.lowercased()
        return name.hasSuffix("key") || name.contains("token") || name.contains("secret") || name.contains("password")
    }

    private static func value(_ value: Any, secret: Bool) -> String {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return "none" }
            return Self.value(wrapped, secret: secret)
        }
        if let text = value as? String { return secret ? shown(text) : text }
        // A nested value (the cooldown policy): described the same way.
        if mirror.displayStyle == .struct, !(value is any CustomStringConvertible) { return "{" + describe(value) + "}" }
        return String(describing: value)
    }

    private static func shown(_ secret: String) -> String {
        secret.isEmpty ? "empty" : "fingerprint:" + Secret.fingerprint(secret)
    }
}
