"""After `terraform destroy`: the emulators hold exactly what they held before `apply`."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import env
from inventory import inventory


def test_destroy_leaves_nothing_behind():
    before = json.loads(Path(env("SWITCHBOARD_INVENTORY_BEFORE")).read_text())
    after = inventory(env("LOCALSTACK_ENDPOINT"), env("MOTO_ENDPOINT"))
    assert before.keys() == after.keys()
    left = {kind: sorted(set(after[kind]) - set(before[kind])) for kind in after}
    gone = {kind: sorted(set(before[kind]) - set(after[kind])) for kind in after}
    assert {k: v for k, v in left.items() if v} == {}, "left behind by destroy"
    assert {k: v for k, v in gone.items() if v} == {}, "destroy removed something it did not create"


def test_the_inventory_sees_a_deployment():
    # Guards the test above: the inventory taken while the stack was up must have differed.
    during = json.loads(Path(env("SWITCHBOARD_INVENTORY_DURING")).read_text())
    before = json.loads(Path(env("SWITCHBOARD_INVENTORY_BEFORE")).read_text())
    grew = {kind for kind in during if set(during[kind]) - set(before[kind])}
    assert {"iam roles", "ec2 vpcs", "lambda functions", "ecs clusters", "ecs active task definitions",
            "s3 buckets", "logs groups", "ec2 vpc endpoints", "ec2 security groups"} <= grew, grew
