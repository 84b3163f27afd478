"""A pod's track (DESIGN §3 "Tracks"): its labels file decides which ConfigMap key it applies."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from thermostat_runtime.routing_config import (
    CANARY,
    STABLE,
    ConfigMapSource,
    RoutingSetting,
    TrackFile,
    track_from_labels,
)

DATA = {"routing_temperature": "0.8", "canary.routing_temperature": "0.5"}


def test_the_labels_file_names_the_track() -> None:
    assert track_from_labels('app="chat"\nthermostat.dev/track="canary"\n') == CANARY
    assert track_from_labels('thermostat.dev/track="stable"\n') == STABLE
    assert track_from_labels('app="chat"\n') == STABLE


def test_a_relabelled_pod_applies_the_key_of_its_new_track_at_once(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_text('app="chat"\n')
    track, setting = TrackFile(labels), RoutingSetting()
    source = ConfigMapSource("ns", "chat-routing", setting, track=lambda: track.track)
    track.on_change.append(source.reapply)
    source._apply(SimpleNamespace(data=DATA))
    assert setting.value == 0.8
    labels.write_text('app="chat"\nthermostat.dev/track="canary"\n')
    track.read_once()
    assert setting.value == 0.5
    source._apply(SimpleNamespace(data={"routing_temperature": "0.8"}))  # promoted/rolled back: no canary key
    assert setting.value == 0.8
    labels.write_text('app="chat"\nthermostat.dev/track="stable"\n')
    track.read_once()
    assert setting.value == 0.8
