from otelml.configmodel import ComponentConfig


class AnomalyAlertsConfig(ComponentConfig):
    anomalies: bool = True
    predicted_incidents: bool = True

    def validate_config(self) -> list[str]:
        if not (self.anomalies or self.predicted_incidents):
            return ["anomalies: with predicted_incidents also false, no alert would ever be sent"]
        return []
