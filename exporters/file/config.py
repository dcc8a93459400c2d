from pathlib import Path
from typing import Literal

from pydantic import Field

from otelml.configmodel import ComponentConfig, Duration
from otelml.exporterhelper import ExporterHelperConfig, QueueConfig


class RotationConfig(ComponentConfig):
    max_megabytes: int = Field(100, ge=1)
    max_backups: int = Field(100, ge=0)

    unsupported_keys = {
        "max_days": "files rotate by size only: bound how many are kept with max_backups (or remove old ones with a cron job)",
        "localtime": "rotated files are named with the UTC time: remove it",
    }


class FileConfig(ExporterHelperConfig):
    path: str
    format: Literal["json", "proto"] = "json"
    rotation: RotationConfig | None = None
    compression: Literal["", "zstd"] = ""
    flush_interval: Duration = 1.0
    append: bool = False
    # Writes are local and synchronous: queueing them only delays errors.
    sending_queue: QueueConfig = QueueConfig(enabled=False)

    unsupported_keys = {
        "group_by": "one exporter writes one file: route the data to several file exporters instead",
        "encoding": "encoding extensions are not supported: choose the file format with format: json or proto",
    }

    def validate_config(self) -> list[str]:
        problems = super().validate_config()
        if not self.path.strip():
            problems.append("path: must not be empty")
        elif Path(self.path).is_dir():
            problems.append(f"path: {self.path} is a directory: name a file (in it or elsewhere)")
        if self.flush_interval < 0:
            problems.append("flush_interval: must not be negative (0 flushes every write)")
        if self.append and self.rotation is not None:
            problems.append("append: cannot be used together with rotation")
        return problems
