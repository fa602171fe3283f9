"""The pipeline layer: the stage API notebooks use (`stage`), the runner, profiles, and the ``vlstudy`` command."""
