from pydantic import Field

from otelml.configmodel import ComponentConfig, Duration

MIB = 1 << 20


class MemoryLimiterConfig(ComponentConfig):
    """The collector's memory_limiter settings.

    ``limit_mib`` takes precedence over ``limit_percentage`` (of the
    machine's memory, or the cgroup limit when lower). The spike limit
    defaults to 20% of the limit.
    """

    check_interval: Duration = 0.0
    limit_mib: int = Field(0, ge=0)
    spike_limit_mib: int = Field(0, ge=0)
    limit_percentage: int = Field(0, ge=0)
    spike_limit_percentage: int = Field(0, ge=0)
    # Forced collections cost CPU: at most this often while soft / hard limited.
    min_gc_interval_when_soft_limited: Duration = 10.0
    min_gc_interval_when_hard_limited: Duration = 0.0

    unsupported_keys = {"ballast_size_mib": "no memory ballast is needed (the collector removed it too): remove it"}

    def validate_config(self) -> list[str]:
        problems = []
        if self.check_interval <= 0:
            problems.append("check_interval: must be greater than zero (1s suits most loads)")
        for name in ("min_gc_interval_when_soft_limited", "min_gc_interval_when_hard_limited"):
            if getattr(self, name) < 0:
                problems.append(f"{name}: must not be negative")
        if self.limit_mib == 0 and self.limit_percentage == 0:
            problems.append("limit_mib: set limit_mib or limit_percentage")
        for name in ("limit_percentage", "spike_limit_percentage"):
            if getattr(self, name) > 100:
                problems.append(f"{name}: must be at most 100")
        if self.limit_mib and self.spike_limit_mib >= self.limit_mib:
            problems.append("spike_limit_mib: must be smaller than limit_mib")
        if not self.limit_mib and self.limit_percentage and self.spike_limit_percentage >= self.limit_percentage:
            problems.append("spike_limit_percentage: must be smaller than limit_percentage")
        return problems

    def limits(self, total_memory: int) -> tuple[int, int]:
        """(hard, soft) limits in bytes, given the memory available to the process.

        >>> MemoryLimiterConfig(check_interval=1, limit_mib=100).limits(0)
        (104857600, 83886080)
        >>> MemoryLimiterConfig(check_interval=1, limit_percentage=50, spike_limit_percentage=10).limits(1000)
        (500, 400)
        """
        if self.limit_mib:
            hard = self.limit_mib * MIB
            spike = self.spike_limit_mib * MIB
        else:
            hard = total_memory * self.limit_percentage // 100
            spike = total_memory * self.spike_limit_percentage // 100
        return hard, hard - (spike or hard // 5)
