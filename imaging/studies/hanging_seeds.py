"""The hanging protocols a new installation starts with (imaging/models/hanging.py). Plain data
and a loader that takes the models as arguments, so migration 0013 runs it with its historical
models and the tests that empty the tables put them back with the real ones."""

# Seeded by migration 0013 and put back by the tests that empty the tables: a clinic edits
# them in the admin (Imaging › Hanging protocols); loading again never overwrites its edits.
RIGHT_LATERAL = ("Right lateral", "RL, RLD", "right lateral, right lat, R lat, rt lat, RL")
LEFT_LATERAL = ("Left lateral", "LL, LLD", "left lateral, left lat, L lat, lt lat, LL")
VENTRODORSAL = ("VD", "VD, DV", "VD, ventrodorsal, ventro-dorsal, DV, dorsoventral, dorso-ventral")
LATERAL = ("Lateral", "RL, LL, RLD, LLD", "lateral, lat, RL, LL")
SEEDS = [
    *(
        (f"Thorax three views ({modality})", modality, "CHEST, THORAX", "2x2",
         [RIGHT_LATERAL, LEFT_LATERAL, VENTRODORSAL])
        for modality in ("DX", "CR")
    ),
    *(
        (f"Abdomen two views ({modality})", modality, "ABDOMEN", "1x2", [LATERAL, VENTRODORSAL])
        for modality in ("DX", "CR")
    ),
    ("CT: one series", "CT", "", "1x1", [("Axial", "", "axial, transverse, ax")]),
]  # fmt: skip


def hanging_protocols_load(HangingProtocol, HangingViewport) -> None:  # noqa: N803 (a migration's models)
    """Add the seeded protocols that are missing (by name)."""
    for name, modality, body_part, layout, rules in SEEDS:
        protocol, created = HangingProtocol.objects.get_or_create(
            name=name, defaults={"modality": modality, "body_part": body_part, "layout": layout}
        )
        if created:
            for position, (label, positions, keywords) in enumerate(rules, start=1):
                HangingViewport.objects.create(
                    protocol=protocol,
                    position=position,
                    label=label,
                    view_positions=positions,
                    keywords=keywords,
                )
