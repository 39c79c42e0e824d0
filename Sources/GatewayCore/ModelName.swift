// MARK: - ModelName

/// Well-known values of the model name used as the scope of key cooldowns.
///
/// Cooldowns are scoped per (key, model) because Gemini quotas are enforced per project and per
/// model. A request whose model is not known (model listing, file upload, most OpenAI-compatible
/// calls before their body is read) uses ``unknown``; a cooldown that applies to every model of a
/// key (a key whose project has the API disabled) uses ``all``.
public enum ModelName {
    /// The model of a request whose model could not be determined: `"-"`.
    ///
    /// It is deliberately distinct from ``all``: a 429 on a request without a known model cools the
    /// key only for other requests without a known model, never for every model.
    public static let unknown = "-"

    /// A cooldown scope that covers every model: `"*"`. Only valid in cooldowns, never as the model
    /// of a request.
    public static let all = "*"
}
