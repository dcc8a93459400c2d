from pathlib import Path

from pydantic import Field

from otelml.configmodel import ComponentConfig, Duration


class CompactionConfig(ComponentConfig):
    """When to rewrite store files without the space that deleted records left free."""

    on_start: bool = False
    on_rebound: bool = False
    # Where the compacted copy is written first; the storage directory when unset.
    directory: str | None = None
    rebound_needed_threshold_mib: int = Field(100, ge=1)
    rebound_trigger_threshold_mib: int = Field(10, ge=0)
    check_interval: Duration = 5.0

    def validate_config(self) -> list[str]:
        problems = []
        if self.directory == "":
            problems.append("directory: must not be empty (leave it out to use the storage directory)")
        if self.rebound_trigger_threshold_mib >= self.rebound_needed_threshold_mib:
            problems.append("rebound_trigger_threshold_mib: must be smaller than rebound_needed_threshold_mib")
        if self.check_interval <= 0:
            problems.append("check_interval: must be positive")
        return problems


class FileStorageConfig(ComponentConfig):
    """The collector's file_storage extension settings (otelml keeps each store in SQLite)."""

    directory: str = "/var/lib/otelml/file_storage"
    # How long to wait for a store another process holds.
    timeout: Duration = 1.0
    fsync: bool = False
    create_directory: bool = False
    compaction: CompactionConfig = CompactionConfig()

    def validate_config(self) -> list[str]:
        problems = []
        if not self.directory:
            problems.append("directory: must not be empty")
        if self.timeout < 0:
            problems.append("timeout: must not be negative")
        for setting, directory in self.directories().items():
            # A directory start creates need not exist yet.
            if not directory.is_dir() and not (setting == "directory" and self.create_directory):
                problems.append(missing_directory(setting, directory))
        return problems

    def directories(self) -> dict[str, Path]:
        """The directories the stores need, by setting: each must exist once the extension has started."""
        directories = {"directory": Path(self.directory)} if self.directory else {}
        if self.compaction.directory:
            directories["compaction::directory"] = Path(self.compaction.directory)
        return directories


def missing_directory(setting: str, directory: Path) -> str:
    advice = "create it, or set create_directory: true" if setting == "directory" else "create it"
    return f"{setting}: {directory} does not exist ({advice})"
