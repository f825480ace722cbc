"""NegWorld: negbench's offline procedural world, written in the real datasets' formats.

    from negbench.world import generate_world
    manifest = generate_world("/tmp/w", seed=0, size="tiny")

Layout under the output folder: coco/ (COCO 2017 instances + captions), VOC/ (Pascal VOC
XML), msrvtt/ (MP4 clips, videodatainfo.json, objects.json), chexpert/ (CheXpert-v1.0-small
CSVs + films), corpus/ (CC12M-style corpus.tsv + images), vocab.txt and world.json.
"""
from negbench.world.categories import CATEGORIES, category_names, vocab_lines
from negbench.world.generate import GENERATOR_VERSION, SIZES, WorldExistsError, generate_world, resolve_config

__all__ = ["CATEGORIES", "GENERATOR_VERSION", "SIZES", "WorldExistsError", "category_names", "generate_world",
           "resolve_config", "vocab_lines", "contact_sheet"]


def contact_sheet(*args, **kwargs):
    """See negbench.world.sheet.contact_sheet."""
    from negbench.world.sheet import contact_sheet as _cs

    return _cs(*args, **kwargs)
