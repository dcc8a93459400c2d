from pydantic import Field

from otelml.configmodel import ComponentConfig, Duration


class AnomalyAlertsConfig(ComponentConfig):
    anomalies: bool = True
    predicted_incidents: bool = True
    # A key quiet this long has its alert resolved (see the README for how quiet is judged).
    resolve_after: Duration = 60.0
    # Time between updates of an alert while its incident goes on; 0 sends none.
    repeat_interval: Duration = 0.0
    # Anomaly incidents whose score reaches this are critical, the others warnings.
    critical_score: float = Field(0.9, gt=0, le=1)
    # Resource attributes whose values group the incidents of many keys into one alert while they
    # overlap (Alertmanager's group_by); [] groups every key, unset gives each key its own alert.
    group_by: list[str] | None = None
    # A prediction becomes an alert only when it warns at least this long before the crossing it forecasts.
    min_lead: Duration = 30.0

    def validate_config(self) -> list[str]:
        problems = []
        if not (self.anomalies or self.predicted_incidents):
            problems.append("anomalies: with predicted_incidents also false, no alert would ever be sent")
        if self.resolve_after <= 0:
            problems.append("resolve_after: must be positive")
        if self.repeat_interval < 0:
            problems.append("repeat_interval: must not be negative (0 sends no updates)")
        if self.min_lead < 0:
            problems.append("min_lead: must not be negative (0 alerts on every prediction)")
        if self.group_by is not None and len(set(self.group_by)) != len(self.group_by):
            problems.append("group_by: lists an attribute twice")
        return problems
