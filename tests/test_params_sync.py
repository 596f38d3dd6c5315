"""The committed params.yaml must be exactly the composition of conf/."""

from tests.conftest import ROOT


def test_params_yaml_is_the_composition_of_conf(tmp_path):
    from dvc.utils.hydra import compose_and_dump

    fresh = tmp_path / "params.yaml"
    compose_and_dump(fresh, str(ROOT / "conf"), None, "config", str(ROOT), [])
    committed = (ROOT / "params.yaml").read_text(encoding="utf-8")
    assert committed == fresh.read_text(encoding="utf-8"), (
        "params.yaml differs from the composition of conf/. Regenerate it with:\n"
        "    make params        (or: python -m pipeline.compose)\n"
        "and commit the result."
    )
