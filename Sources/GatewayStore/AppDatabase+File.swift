import Foundation
import GRDB

/// Which file a path names: its device and inode. A file deleted and made again, or another file
/// moved to the same path, has another identity.
struct FileIdentity: Sendable, Equatable {
    let device: UInt64
    let inode: UInt64

    /// The file at `path` now, or nil when there is none (or it cannot be looked at).
    static func of(_ path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}

/// Whether the database file is still where it was opened.
public enum DatabaseFileState: String, Sendable {
    /// The file opened is at its path.
    case present
    /// Nothing is at the path (deleted, or moved away).
    case missing
    /// Another file is at the path.
    case replaced
}

extension AppDatabase {
    /// Whether the file this database was opened from is still at its path. SQLite goes on
    /// reading and writing a file deleted or replaced while it is open, without an error: what
    /// it writes then is lost when the process ends. In memory: always `.present`.
    public func fileState() -> DatabaseFileState {
        guard let path, let openedFile else { return .present }
        guard let now = FileIdentity.of(path) else { return .missing }
        return now == openedFile ? .present : .replaced
    }

    /// Writes a complete copy of the open database (keys, clients, cooldowns, every request row)
    /// to `copyPath` with SQLite's online backup: consistent while writes go on, and readable by
    /// the owner only (mode 0600, like the database). A file already at `copyPath` is replaced.
    public func saveCopy(to copyPath: String) throws {
        let fd = Foundation.open(copyPath, O_WRONLY | O_CREAT, 0o600)
        if fd < 0 {
            throw StoreError.cannotCreate(path: copyPath, reason: String(cString: strerror(errno)))
        }
        close(fd)
        do {
            let copy = try DatabaseQueue(path: copyPath)
            try writer.backup(to: copy)
            try copy.close()
        } catch {
            throw StoreError(error, path: copyPath, busyTimeout: busyTimeout)
        }
    }
}
