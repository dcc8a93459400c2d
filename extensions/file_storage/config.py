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
        return problems
